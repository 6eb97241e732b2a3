"""The service's settings are what its builder hands it, and nothing else."""

from __future__ import annotations

import pytest

from adapters import open_service
from domain.settings import ServiceSettings


def test_settings_spelled_as_text_become_typed_values() -> None:
    settings = ServiceSettings.from_strings(
        {"COMMAND_DEADLINE_SECONDS": "0.5", "COMMAND_MAX_ATTEMPTS": "3", "ARGON2_TIME_COST": ""}
    )

    assert settings.command_deadline_seconds == 0.5
    assert settings.command_max_attempts == 3
    assert settings.argon2_time_cost == ServiceSettings().argon2_time_cost  # empty: default


def test_text_settings_change_only_what_they_name_of_a_base() -> None:
    base = ServiceSettings(snapshot_interval=7)

    settings = ServiceSettings.from_strings({"COMMAND_MAX_ATTEMPTS": "2"}, base=base)

    assert (settings.snapshot_interval, settings.command_max_attempts) == (7, 2)


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"COMMAND_MAX_ATTEMPTS": "many"}, "COMMAND_MAX_ATTEMPTS"),
        ({"SNAPSHOT_INTERVAL": "2.5"}, "SNAPSHOT_INTERVAL"),
        ({"SNAPSHOT_INTERVAL": "0"}, "SNAPSHOT_INTERVAL"),
        ({"COMMAND_DEADLINE_SECONDS": "-1"}, "COMMAND_DEADLINE_SECONDS"),
        ({"COMMAND_MAX_ATTEMTPS": "3"}, "COMMAND_MAX_ATTEMTPS"),
    ],
)
def test_a_setting_that_is_no_setting_or_no_usable_number_is_refused_by_name(
    values: dict[str, str], named: str
) -> None:
    with pytest.raises(ValueError, match=named):
        ServiceSettings.from_strings(values)


def test_admin_emails_are_a_comma_separated_list_held_in_every_spelling_of_an_account() -> None:
    settings = ServiceSettings.from_strings({"ADMIN_EMAILS": " Boss@Bücher.example, ops@x.org ,"})

    assert ServiceSettings().admin_emails == frozenset()
    assert {"boss@xn--bcher-kva.example", "boss@bücher.example", "ops@x.org"} <= (
        settings.admin_emails
    )


def test_an_admin_email_that_is_no_email_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="ADMIN_EMAILS lists 'boss@', which is no email"):
        ServiceSettings.from_strings({"ADMIN_EMAILS": "ops@x.org, boss@"})


def test_the_settings_given_to_open_service_reach_the_service(database_url: str) -> None:
    service = open_service(
        database_url,
        create_tables=True,
        settings=ServiceSettings(command_deadline_seconds=0.5),
        COMMAND_MAX_ATTEMPTS="3",
        ARGON2_MEMORY_COST="1024",
        ARGON2_TIME_COST="1",
    )
    try:
        assert service.settings.command_deadline_seconds == 0.5
        assert service.settings.command_max_attempts == 3
        assert service.passwords.hash("pw").startswith("$argon2id$v=19$m=1024,t=1,")
    finally:
        service.close()


def test_a_setting_in_the_process_environment_does_not_reach_the_service(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COMMAND_MAX_ATTEMPTS", "3")
    monkeypatch.setenv("SNAPSHOT_INTERVAL", "2")

    service = open_service(database_url, create_tables=True)
    try:
        assert service.settings == ServiceSettings()
        assert "COMMAND_MAX_ATTEMPTS" not in service.env
    finally:
        service.close()
