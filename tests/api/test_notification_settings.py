"""The notification settings, read where every other setting is."""

from __future__ import annotations

import pytest

from api.config import ConfigError, load_notification_settings

ISOLATED = {"WEBHOOK_ALLOW_PRIVATE": "", "WEBHOOK_ALLOW_HTTP": "", "SMTP_URL": "", "MAIL_FROM": ""}


def test_webhooks_go_to_public_https_endpoints_and_nothing_is_mailed_by_default() -> None:
    settings = load_notification_settings(ISOLATED)
    assert not settings.allow_private and not settings.allow_http
    assert settings.smtp_url is None and not settings.mail


def test_the_relaxing_settings_and_the_mail_server_are_taken_as_given() -> None:
    settings = load_notification_settings(
        ISOLATED
        | {
            "WEBHOOK_ALLOW_PRIVATE": "true",
            "WEBHOOK_ALLOW_HTTP": "TRUE",
            "SMTP_URL": "smtps://user:secret@mail.example:465",
            "MAIL_FROM": "tickets@example.com",
        }
    )
    assert settings.allow_private and settings.allow_http
    assert settings.mail and settings.smtp_url == "smtps://user:secret@mail.example:465"
    assert settings.mail_from == "tickets@example.com"


@pytest.mark.parametrize(
    "overrides",
    [
        {"SMTP_URL": "http://mail.example"},
        {"SMTP_URL": "smtp://"},
        {"SMTP_URL": "smtp://mail.example:port"},
        {"WEBHOOK_ALLOW_PRIVATE": "sometimes"},
    ],
)
def test_a_setting_that_cannot_be_meant_stops_the_service(overrides: dict) -> None:
    with pytest.raises(ConfigError):
        load_notification_settings(ISOLATED | overrides)
