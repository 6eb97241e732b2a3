"""Where a webhook may be delivered: the URL rules and the address rules against SSRF.

A webhook URL is a request this service makes on a stranger's behalf, so it must not reach
what only this service can reach. ``check_url`` holds a URL to the rules and resolves its
host; it is called at registration (a refusal is a 400 naming ``url``) and again before each
delivery, whose connection must then go to one of the ``addresses`` it returns (resolving
again would let a name switch to an internal address in between: DNS rebinding).

- The scheme is ``https``; ``http`` only with ``allow_http`` (WEBHOOK_ALLOW_HTTP). No user
  name or password in the URL, printable ASCII only (a host in another script is written in
  its IDNA form), a port in 1..65535.
- Every address the host resolves to must be public. One that is not refuses the URL (a
  name that resolves to a public and an internal address is refused). Loopback, private
  (IPv4's RFC 1918 and shared space, IPv6 unique local), link-local and the other
  non-global ranges are allowed only with ``allow_private`` (WEBHOOK_ALLOW_PRIVATE, for a
  receiver on the same host or network). Never allowed, whatever the settings: the
  unspecified address (0.0.0.0 and :: reach the host itself), multicast, and the cloud
  metadata services (169.254.169.254 and its IPv6 fd00:ec2::254, Alibaba's
  100.100.100.200, Azure's 168.63.129.16), which hand out the host's credentials: no
  receiver lives there.
- An IPv6 address that carries an IPv4 one (IPv4-mapped ``::ffff:a.b.c.d``, 6to4
  ``2002::/16``, NAT64 ``64:ff9b::/96``) is judged by the IPv4 address it reaches.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from domain.errors import InvalidCommand

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]

METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(address)
    for address in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200", "168.63.129.16")
)
NAT64 = ipaddress.ip_network("64:ff9b::/96")
DEFAULT_PORTS = {"https": 443, "http": 80}
# What WEBHOOK_ALLOW_PRIVATE lets through; every other refusal stands.
PRIVATE_KINDS = frozenset({"loopback", "link-local", "private"})


class UnsafeUrl(InvalidCommand):
    """The URL breaks a rule above: a 400 ``validation_error`` naming ``url``."""

    def __init__(self, message: str) -> None:
        super().__init__(message, field="url")


@dataclass(frozen=True)
class Destination:
    url: str
    scheme: str
    host: str
    port: int
    # What the host resolved to, every one allowed: a delivery connects to one of these.
    addresses: tuple[str, ...]


def resolve(host: str, port: int) -> list[str]:
    """The addresses ``host`` resolves to (the system's resolver)."""
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return []
    return list(dict.fromkeys(str(info[4][0]) for info in found))


def check_url(
    url: str, *, allow_http: bool, allow_private: bool, resolver: Resolver | None = None
) -> Destination:
    """``url`` where a webhook may go, with the addresses it may be delivered to; raises
    ``UnsafeUrl`` saying which rule it breaks. ``resolver`` defaults to ``resolve``."""
    if not url.isascii() or not url.isprintable() or " " in url:
        raise UnsafeUrl("Must be printable ASCII without spaces (an IDN host in its xn-- form).")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme != "https" and not (scheme == "http" and allow_http):
        allowed = "https or http" if allow_http else "https"
        raise UnsafeUrl(f"Must be an absolute {allowed} URL.")
    if parts.username is not None or parts.password is not None:
        raise UnsafeUrl("Must not carry a user name or password.")
    host = parts.hostname
    if not host:
        raise UnsafeUrl("Must name a host.")
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        raise UnsafeUrl("Must have a port between 1 and 65535.")
    port = port or DEFAULT_PORTS[scheme]
    addresses = (resolver or resolve)(host, port)
    if not addresses:
        raise UnsafeUrl(f"The host {host} does not resolve.")
    for address in addresses:
        kind = refusal(ipaddress.ip_address(address.split("%", 1)[0]))
        if kind is not None and not (allow_private and kind in PRIVATE_KINDS):
            article = "an" if kind[0] in "aeiou" else "a"
            raise UnsafeUrl(f"The host {host} resolves to {address}, {article} {kind} address.")
    return Destination(url, scheme, host, port, tuple(addresses))


def refusal(address: IPAddress) -> str | None:
    """What kind of address ``address`` is when it is not a public one; None when it is."""
    address = _reached(address)
    if address.is_unspecified:
        return "unspecified"
    if address in METADATA_ADDRESSES:
        return "metadata"
    if address.is_multicast:
        return "multicast"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if not address.is_global:
        return "private"
    return None


def _reached(address: IPAddress) -> IPAddress:
    """The IPv4 address an IPv6 one carries and reaches, if any; else ``address``."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address.sixtofour is not None:
            return address.sixtofour
        if address in NAT64:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address
