"""Where a webhook may be delivered: URL rules and address rules, with and without the
settings that relax them."""

from __future__ import annotations

import pytest

from projections.notifications.ssrf import UnsafeUrl, check_url


def resolving_to(*addresses: str):  # type: ignore[no-untyped-def]
    return lambda host, port: list(addresses)


def allowed(url: str, *, private: bool = False, http: bool = False, resolver=None) -> bool:  # type: ignore[no-untyped-def]
    try:
        check_url(url, allow_http=http, allow_private=private, resolver=resolver)
    except UnsafeUrl:
        return False
    return True


PUBLIC = resolving_to("93.184.215.14")
INTERNAL_URLS = [
    "https://127.0.0.1/hook",
    "https://127.1.2.3:8443/hook",
    "https://10.0.0.7/hook",
    "https://172.16.4.4/hook",
    "https://192.168.1.1/hook",
    "https://169.254.10.10/hook",
    "https://100.64.0.1/hook",
    "https://[::1]/hook",
    "https://[fd12:3456::1]/hook",
    "https://[fe80::1]/hook",
    "https://[::ffff:10.0.0.1]/hook",
    "https://[2002:7f00:1::]/hook",
    "https://[64:ff9b::a00:1]/hook",
    "https://0x7f000001/hook",
    "https://2130706433/hook",
    "https://localhost/hook",
]


@pytest.mark.parametrize("url", INTERNAL_URLS)
def test_an_internal_address_is_refused_unless_private_ones_are_allowed(url: str) -> None:
    assert not allowed(url)
    assert allowed(url, private=True)


@pytest.mark.parametrize(
    "address", ["169.254.169.254", "fd00:ec2::254", "100.100.100.200", "168.63.129.16"]
)
def test_a_cloud_metadata_address_is_refused_even_where_private_ones_are_allowed(
    address: str,
) -> None:
    resolver = resolving_to(address)
    assert not allowed("https://metadata.example/", resolver=resolver)
    assert not allowed("https://metadata.example/", private=True, resolver=resolver)


@pytest.mark.parametrize("address", ["0.0.0.0", "::", "224.0.0.1", "ff02::1"])
def test_unspecified_and_multicast_addresses_are_never_a_destination(address: str) -> None:
    assert not allowed("https://nowhere.example/", private=True, resolver=resolving_to(address))


def test_a_name_that_resolves_to_an_internal_address_is_refused() -> None:
    for address in ("127.0.0.1", "10.1.2.3", "169.254.169.254", "::1"):
        with pytest.raises(UnsafeUrl) as refused:
            check_url(
                "https://innocent.example/hook",
                allow_http=False,
                allow_private=False,
                resolver=resolving_to(address),
            )
        assert refused.value.details == {"field": "url"}
        assert address in refused.value.message


def test_a_name_with_one_internal_address_among_public_ones_is_refused() -> None:
    resolver = resolving_to("93.184.215.14", "10.0.0.1")
    assert not allowed("https://mixed.example/", resolver=resolver)


def test_a_public_https_url_is_allowed_with_the_addresses_to_deliver_to() -> None:
    destination = check_url(
        "https://hooks.example:8443/in?x=1",
        allow_http=False,
        allow_private=False,
        resolver=resolving_to("93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"),
    )
    assert destination.host == "hooks.example" and destination.port == 8443
    assert destination.addresses == ("93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c")


def test_http_is_refused_unless_allowed() -> None:
    assert not allowed("http://hooks.example/", resolver=PUBLIC)
    assert allowed("http://hooks.example/", http=True, resolver=PUBLIC)
    assert (
        check_url(
            "http://hooks.example/", allow_http=True, allow_private=False, resolver=PUBLIC
        ).port
        == 80
    )


@pytest.mark.parametrize(
    "url",
    [
        "ftp://hooks.example/",
        "hooks.example/path",
        "https:///path",
        "https://user:secret@hooks.example/",
        "https://hooks.example:0/",
        "https://hooks.example:99999/",
        "https://hooks.example/a b",
        "https://hooks.exämple/",
        "https://hooks.example/\n",
    ],
)
def test_a_url_that_is_not_a_plain_absolute_https_one_is_refused(url: str) -> None:
    assert not allowed(url, private=True, http=True, resolver=PUBLIC)


def test_a_host_that_does_not_resolve_is_refused() -> None:
    assert not allowed("https://does-not-resolve.invalid/", private=True)
