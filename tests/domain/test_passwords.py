"""Password hashes follow the configured argon2 parameters: a hash made with others is
replaced at the account's next login, as a domain event that revokes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from uuid import UUID

import pytest
from argon2 import extract_parameters

from adapters import open_service
from domain.errors import InvalidCredentials
from domain.service import TicketingService
from tests.conftest import FAST_HASHING

PASSWORD = "correct horse"
STRONGER = {"ARGON2_TIME_COST": "2", "ARGON2_MEMORY_COST": "2048", "ARGON2_PARALLELISM": "2"}


@pytest.fixture
def stronger(database_url: str, service: TicketingService) -> Iterator[TicketingService]:
    """The same store as ``service``, with other argon2 parameters (as after an upgrade)."""
    upgraded = open_service(database_url, **STRONGER)
    yield upgraded
    upgraded.close()


def topics(service: TicketingService, user_id: str) -> list[str]:
    return [stored.topic for stored in service.recorder.select_events(UUID(user_id))]


def stored_hash(service: TicketingService, user_id: str) -> str:
    return service.repository.get(UUID(user_id)).password_hash


def test_parameters_come_from_the_argon2_settings(stronger: TicketingService) -> None:
    hashed = stronger.passwords.hash(PASSWORD)

    parameters = extract_parameters(hashed)
    assert (parameters.time_cost, parameters.memory_cost, parameters.parallelism) == (2, 2048, 2)


def test_login_rehashes_a_password_hashed_with_other_parameters(
    service: TicketingService, stronger: TicketingService
) -> None:
    user = service.accounts.register_user("ann", "ann@example.com", PASSWORD)

    logged_in = stronger.accounts.authenticate("ann@example.com", PASSWORD)

    assert topics(stronger, user.id)[-1] == "ticketing:User.PasswordRehashed"
    assert not stronger.passwords.needs_rehash(stored_hash(stronger, user.id))
    assert extract_parameters(stored_hash(stronger, user.id)).memory_cost == 2048
    # The password is the same: tokens issued before the rehash still stand.
    assert logged_in.credential_version == user.credential_version == 1
    stronger.credentials.record(
        user.id, len(topics(stronger, user.id)), topics(stronger, user.id)[-1]
    )
    assert stronger.credentials.stands(user.id, 1)
    # And the rehashed password is the one that logs in, on either parameters.
    assert stronger.accounts.authenticate("ann@example.com", PASSWORD).id == user.id
    assert service.accounts.authenticate("ann@example.com", PASSWORD).id == user.id


def test_login_stores_nothing_when_the_hash_has_the_current_parameters(
    service: TicketingService,
) -> None:
    user = service.accounts.register_user("ann", "ann@example.com", PASSWORD)
    before = topics(service, user.id)

    service.accounts.authenticate("ann@example.com", PASSWORD)

    assert topics(service, user.id) == before


def test_a_wrong_password_rehashes_nothing(
    service: TicketingService, stronger: TicketingService
) -> None:
    user = service.accounts.register_user("ann", "ann@example.com", PASSWORD)
    before = topics(service, user.id)

    with pytest.raises(InvalidCredentials):
        stronger.accounts.authenticate("ann@example.com", "wrong password")

    assert topics(stronger, user.id) == before
    assert extract_parameters(stored_hash(stronger, user.id)).memory_cost == int(
        FAST_HASHING["ARGON2_MEMORY_COST"]
    )
