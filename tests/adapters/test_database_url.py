"""``DATABASE_URL`` parsing takes the URL it is given: api.config is what reads the setting."""

from __future__ import annotations

import pytest

from adapters.database_url import DEFAULT_DATABASE_URL, parse_database_url


def test_no_url_is_the_default_store_whatever_the_process_environment_says(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://someone@elsewhere:5433/theirs")

    assert parse_database_url(None).url == DEFAULT_DATABASE_URL
    assert parse_database_url("postgresql://me@here/mine").dbname == "mine"
