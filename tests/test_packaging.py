"""A non-editable install (the README's serve command, the Docker image) ships every package."""

from __future__ import annotations

import tomllib
from pathlib import Path

from setuptools import find_packages

ROOT = Path(__file__).resolve().parent.parent


def test_every_application_package_is_installed_by_pip_install_dot() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    include = config["tool"]["setuptools"]["packages"]["find"]["include"]
    shipped = set(find_packages(where=str(ROOT), include=include))
    on_disk = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for top in ("domain", "adapters", "projections", "api", "bench")
        for init in (ROOT / top).rglob("__init__.py")
    }
    assert on_disk <= shipped
    assert {"api.routes", "api.schemas"} <= shipped
