"""One account per mailbox and per visible name: what normalisation makes equal is taken."""

from __future__ import annotations

import pytest

from domain.user import UniqueName, User, index_id
from tests.api.conftest import PASSWORD, Api, error_code


def _register(api: Api, username: str, email: str):
    return api.post(
        "/api/auth/register", json={"username": username, "email": email, "password": PASSWORD}
    )


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("x@exämple.org", "x@xn--exmple-cua.org"),
        ("x@xn--exmple-cua.org", "x@exämple.org"),
        ("x@EXÄMPLE.org", "x@exämple.org"),
        ("x@example.org", "x@ｅｘａｍｐｌｅ.org"),
        ("x@example.org", "ｘ@example.org"),
    ],
)
def test_one_mailbox_holds_one_account_whatever_its_spelling(api: Api, first, second):
    assert _register(api, "first", first).status_code == 201
    response = _register(api, "second", second)
    assert response.status_code == 409, response.json
    assert error_code(response) == "email_taken"


def test_an_internationalised_email_logs_in_under_either_spelling(api: Api):
    registered = _register(api, "ida", "Ida@Exämple.org")
    assert registered.status_code == 201
    assert registered.json["user"]["email"] == "ida@xn--exmple-cua.org"
    for spelling in ("ida@exämple.org", "IDA@XN--EXMPLE-CUA.ORG", "ida@ｅｘäｍｐｌｅ.org"):
        response = api.login(spelling)
        assert response.status_code == 200, spelling
        assert response.json["user"]["id"] == registered.json["user"]["id"]


def test_a_domain_without_an_idna_form_is_a_validation_error(api: Api):
    response = _register(api, "snow", "x@☃.net")
    assert response.status_code == 400
    assert error_code(response) == "validation_error"
    assert "email" in response.json["error"]["details"]


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("DupXYZ", "ＤｕｐＸＹＺ"),  # full-width letters
        ("DupXYZ", "dupxyz"),
        ("Straße", "STRASSE"),  # case folding, not lower-casing
        ("ﬁne name", "fine  name"),  # a ligature; runs of spaces
        ("Zoë", "Zoe\u0308"),  # composed and decomposed
    ],
)
def test_one_visible_name_holds_one_account(api: Api, first, second):
    assert _register(api, first, "first@example.com").status_code == 201
    response = _register(api, second, "second@example.com")
    assert response.status_code == 409, response.json
    assert error_code(response) == "username_taken"


@pytest.mark.parametrize(
    "hidden", ["\u200b", "\u2060", "\u3164", "\u115f", "\u034f", "\ufe0f", "\u00ad"]
)
def test_a_username_with_characters_that_show_nothing_is_refused(api: Api, hidden):
    assert _register(api, "DupXYZ", "first@example.com").status_code == 201
    response = _register(api, f"Du{hidden}pXYZ", "second@example.com")
    assert response.status_code == 400, response.json
    assert error_code(response) == "validation_error"
    assert "username" in response.json["error"]["details"]


def test_renaming_to_a_lookalike_of_a_taken_name_is_a_conflict(api: Api):
    api.user("DupXYZ")
    bob = api.user("bob")
    response = api.patch("/api/users/me", bob, json={"username": "ＤＵＰxyz"})
    assert response.status_code == 409
    assert error_code(response) == "username_taken"
    hidden = api.patch("/api/users/me", bob, json={"username": "Dup\u200bXYZ"})
    assert hidden.status_code == 400
    assert "username" in hidden.json["error"]["details"]


def test_moving_to_a_lookalike_of_a_taken_email_is_a_conflict(api: Api):
    api.user("alice")
    bob = api.user("bob")
    response = api.patch(
        "/api/users/me",
        bob,
        json={"email": "ALICE@ｅｘａｍｐｌｅ.com", "currentPassword": PASSWORD},
    )
    assert response.status_code == 409
    assert error_code(response) == "email_taken"


def _legacy_account(api: Api, username: str, email: str) -> str:
    """An account as stored before NFKC, case folding and IDNA: indexed by lower()."""
    service = api.components.service
    user = User(
        username=username, email=email.lower(), password_hash=service.passwords.hash(PASSWORD)
    )
    claims = [
        UniqueName(id=index_id(kind, value), kind=kind, value=value, owner_id=str(user.id))
        for kind, value in (("email", email.lower()), ("username", username.lower()))
    ]
    service.save(user, *claims)
    return str(user.id)


def test_accounts_stored_before_normalisation_keep_working(api: Api):
    legacy_id = _legacy_account(api, "ＬｅｇａｃｙＸ", "old@bücher.example")
    login = api.login("old@bücher.example")
    assert login.status_code == 200, login.json
    assert login.json["user"]["id"] == legacy_id
    assert api.login("old@xn--bcher-kva.example").json["user"]["id"] == legacy_id

    # Its names still refuse a second account, in the spelling it was stored under and in
    # the new normal forms.
    for username, email in (
        ("someone", "OLD@bücher.example"),
        ("someone", "old@xn--bcher-kva.example"),
        ("ｌｅｇａｃｙｘ", "new@example.com"),
    ):
        response = _register(api, username, email)
        assert response.status_code == 409, (username, email, response.json)

    # Renaming and deleting release what it held, so the names can be had again.
    token = {"Authorization": f"Bearer {login.json['token']}"}
    renamed = api.request("PATCH", "/api/users/me", headers=token, json={"username": "Renamed"})
    assert renamed.status_code == 200, renamed.json
    assert _register(api, "ＬｅｇａｃｙＸ", "new@example.com").status_code == 201
    assert api.request("DELETE", "/api/users/me", headers=token).status_code == 204
    assert _register(api, "again", "old@bücher.example").status_code == 201
