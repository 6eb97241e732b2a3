"""Settings from the environment, and refusing to start on an unsafe JWT secret."""

from __future__ import annotations

import os
import subprocess

import pytest

from api.config import ConfigError, load_settings
from domain.user import normalise_email
from tests.api.conftest import PASSWORD, Api, open_app
from tests.api.servers import ticketing_command


def test_defaults_are_those_of_the_contract(monkeypatch):
    for name in list(os.environ):
        if name.startswith(("RATE", "JWT_ACCESS", "ADMIN", "DATABASE", "READMODEL", "TICKETING")):
            monkeypatch.delenv(name)
    settings = load_settings({"JWT_SECRET_KEY": "s" * 32})
    assert settings.jwt_access_token_expires == 3600
    assert settings.rate_limit_default == "100 per 15 minutes"
    assert settings.rate_limit_auth == "10 per minute"
    assert settings.ratelimit_storage_uri == "memory://"
    assert settings.readmodel_lag_threshold == 1000
    assert settings.database_url == "sqlite:///var/ticketing.db"
    assert settings.service.admin_emails == frozenset()


def test_admin_emails_are_a_comma_separated_case_insensitive_list():
    settings = load_settings(
        {"JWT_SECRET_KEY": "s" * 32, "ADMIN_EMAILS": " Boss@Example.com,ops@example.com ,"}
    )
    assert settings.service.admin_emails == {"boss@example.com", "ops@example.com"}


@pytest.mark.parametrize("secret", ["", "short-secret"])
def test_a_missing_or_weak_secret_refuses_to_start_and_says_how_to_fix_it(secret):
    with pytest.raises(ConfigError) as refused:
        load_settings({"JWT_SECRET_KEY": secret, "TICKETING_ENV": "production"})
    assert "JWT_SECRET_KEY" in str(refused.value)
    assert "export JWT_SECRET_KEY=" in str(refused.value)
    assert "TICKETING_ENV=development" in str(refused.value)


def test_development_mode_runs_with_a_throwaway_secret():
    settings = load_settings({"JWT_SECRET_KEY": "", "TICKETING_ENV": "development"})
    assert len(settings.jwt_secret_key) >= 32


def test_nonsense_numbers_are_refused():
    with pytest.raises(ConfigError, match="JWT_ACCESS_TOKEN_EXPIRES"):
        load_settings({"JWT_SECRET_KEY": "s" * 32, "JWT_ACCESS_TOKEN_EXPIRES": "soon"})


def test_the_serve_command_refuses_without_a_secret(tmp_path):
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("JWT_SECRET_KEY", "TICKETING_ENV")
    }
    env["DATABASE_URL"] = f"sqlite:///{tmp_path}/t.db"
    result = subprocess.run(
        [*ticketing_command(), "serve", "--port", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "JWT_SECRET_KEY is not set" in result.stderr
    assert "export JWT_SECRET_KEY=" in result.stderr


def test_several_workers_refuse_to_start_on_an_unmigrated_store(tmp_path):
    env = {**os.environ, "JWT_SECRET_KEY": "s" * 32, "DATABASE_URL": f"sqlite:///{tmp_path}/t.db"}
    result = subprocess.run(
        [*ticketing_command(), "serve", "--port", "1", "--workers", "2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "run `ticketing migrate` first" in result.stderr


def test_admin_emails_are_normalised_as_account_emails_are():
    settings = load_settings({"JWT_SECRET_KEY": "s" * 32, "ADMIN_EMAILS": "Boss@Bücher.example"})
    assert normalise_email("boss@bücher.example") in settings.service.admin_emails


def test_an_admin_email_with_an_accented_domain_makes_its_account_an_admin(sqlite_url):
    app = open_app(sqlite_url, ADMIN_EMAILS="Boss@Bücher.example")
    try:
        registered = Api(app).post(
            "/api/auth/register",
            json={"username": "boss", "email": "boss@bücher.example", "password": PASSWORD},
        )
        assert "admin" in registered.json["user"]["roles"]
    finally:
        app.extensions["ticketing"].close()


def test_an_admin_email_that_is_no_email_is_refused():
    with pytest.raises(ConfigError, match="ADMIN_EMAILS"):
        load_settings({"JWT_SECRET_KEY": "s" * 32, "ADMIN_EMAILS": "boss@"})


def test_service_settings_reach_the_service_without_being_in_the_process_environment(
    sqlite_url, monkeypatch
):
    for name in ("COMMAND_DEADLINE_SECONDS", "COMMAND_MAX_ATTEMPTS", "SNAPSHOT_INTERVAL"):
        monkeypatch.delenv(name, raising=False)
    app = open_app(
        sqlite_url,
        COMMAND_DEADLINE_SECONDS="0.5",
        COMMAND_MAX_ATTEMPTS="3",
        SNAPSHOT_INTERVAL="7",
    )
    try:
        service = app.extensions["ticketing"].service
        assert "COMMAND_DEADLINE_SECONDS" not in os.environ
        assert service.settings.command_deadline_seconds == 0.5
        assert service.settings.command_max_attempts == 3
        assert service.settings.snapshot_interval == 7
    finally:
        app.extensions["ticketing"].close()


def test_a_service_setting_that_is_no_number_is_refused_by_name():
    with pytest.raises(ConfigError, match="COMMAND_DEADLINE_SECONDS"):
        load_settings({"JWT_SECRET_KEY": "s" * 32, "COMMAND_DEADLINE_SECONDS": "soon"})
