"""The rooms keep their boundaries: every import contract in pyproject.toml holds.

The contracts (``[tool.importlinter]``) say that ``domain`` imports no adapter, read side,
web framework or driver; that ``projections`` never import the API; and that no two of
``api``'s modules import each other, directly or round a longer loop. import-linter reads
every import, those inside functions included.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CONTRACTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"][
    "contracts"
]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def test_the_layering_is_under_contract() -> None:
    assert {contract["id"] for contract in CONTRACTS} >= {
        "domain-pure",
        "read-side-no-api",
        "api-acyclic",
    }


@pytest.mark.parametrize("contract", [contract["id"] for contract in CONTRACTS])
def test_import_contract_is_kept(contract: str) -> None:
    checked = subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo", "--contract", contract],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "1 kept, 0 broken" in checked.stdout
