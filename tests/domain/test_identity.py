"""The identity rules of ``domain.user``: what makes two emails one mailbox and two usernames
one name, and what a username may not hide."""

from __future__ import annotations

import pytest

from domain.errors import InvalidCommand
from domain.user import check_username, email_keys, normalise_email, username_key, username_keys


def test_an_email_domain_is_compared_in_its_idna_form():
    assert normalise_email("X@Exämple.org") == "x@xn--exmple-cua.org"
    assert normalise_email("x@XN--EXMPLE-CUA.org") == "x@xn--exmple-cua.org"
    assert normalise_email("x@ｅｘａｍｐｌｅ.org") == "x@example.org"
    assert normalise_email("x@exa\u200bmple.org") == "x@example.org"  # UTS 46 drops it


def test_an_ascii_email_normalises_as_it_always_did():
    for email in ("Alice@Example.com", " bob.smith+tag@sub.example.co.uk ", "a--b@ab--cd.com"):
        assert normalise_email(email) == email.strip().lower()
        assert email_keys(email) == [email.strip().lower()]


def test_an_email_local_part_loses_compatibility_forms_and_case():
    assert normalise_email("ＡＬＩＣＥ@example.com") == "alice@example.com"


def test_a_domain_without_an_idna_form_is_invalid():
    for email in ("x@☃.net", "x@exä mple.org", "x@ä..org", "nobody"):
        with pytest.raises(InvalidCommand) as refused:
            normalise_email(email)
        assert refused.value.details == {"field": "email"}


def test_email_keys_name_the_spellings_older_accounts_were_stored_under():
    assert email_keys("x@XN--BCHER-KVA.example") == [
        "x@xn--bcher-kva.example",
        "x@bücher.example",
    ]
    assert email_keys("x@Bücher.example") == ["x@xn--bcher-kva.example", "x@bücher.example"]
    assert email_keys("x@☃.net") == ["x@☃.net"]


def test_a_username_key_folds_compatibility_forms_case_and_spaces():
    assert username_key("ＤｕｐＸＹＺ") == username_key("dupxyz") == "dupxyz"
    assert username_key("Straße") == "strasse"
    assert username_key("  ﬁne   Name ") == "fine name"
    assert username_key("Zoë") == username_key("Zoe\u0308")


def test_an_ascii_username_keeps_the_key_it_always_had():
    for name in ("alice", "Bob Smith", "x_y-z.9"):
        assert username_keys(name) == [name.strip().lower()]


def test_username_keys_end_with_the_spelling_older_accounts_were_stored_under():
    assert username_keys("ＤｕｐＸＹＺ") == ["dupxyz", "ｄｕｐｘｙｚ"]


@pytest.mark.parametrize(
    "hidden",
    ["\x00", "\x1b", "\n", "\t", "\x85", "\u200b", "\u200d", "\u202e", "\u2028", "\ufeff",
     "\u3164", "\u115f", "\u034f", "\ufe0f", "\U000e0100", "\ue000", "\u0378"],
    ids=repr,
)  # fmt: skip
def test_a_username_that_hides_characters_is_refused(hidden):
    with pytest.raises(InvalidCommand) as refused:
        check_username(f"Du{hidden}pXYZ")
    assert refused.value.details == {"field": "username"}


def test_a_visible_username_is_stored_as_typed_without_surrounding_spaces():
    assert check_username("  Jürgen Weiß ") == "Jürgen Weiß"
    assert check_username("山田 太郎") == "山田 太郎"
