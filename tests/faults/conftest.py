"""The fault tests' real stack, one per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.faults.stack import Stack, production_stack


@pytest.fixture
def stack(postgres_url: str, tmp_path) -> Iterator[Stack]:
    with production_stack(postgres_url, tmp_path) as running:
        yield running
