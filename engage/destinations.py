"""Where webhooks may deliver: public internet addresses only.

An admin's webhook URL must not turn the worker into a way into the network it runs
in (the cloud metadata service, Redis, the admin ports of neighbours). So loopback,
private, link-local, unique-local, unspecified, multicast and reserved addresses are
refused, however they are written, when a webhook is registered and again at every
delivery on the address the name resolves to then; the delivery connects to that
checked address, so a name that changes its answer in between gains nothing.
ENGAGE_WEBHOOK_ALLOW_PRIVATE turns the check off for receivers on a private network.

Names are looked up with the system's resolver (getaddrinfo), or, when
ENGAGE_WEBHOOK_DNS names DNS servers, at those servers (A and AAAA records) within
ENGAGE_WEBHOOK_DNS_TIMEOUT.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import dns.exception
import dns.nameserver
import dns.resolver

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

# Names that always mean this machine (RFC 6761), whatever a resolver says.
_LOCAL_NAME = re.compile(r"(.+\.)?localhost(\.localdomain)?|localhost6?(\.localdomain6?)?")
# What a resolver reads as an IPv4 address besides the dotted quad: 2130706433,
# 0x7f000001, 0177.0.0.1, 127.1.
_NUMERIC_HOST = re.compile(r"[0-9a-fx.]+", re.IGNORECASE)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class RefusedDestination(ValueError):
    """The destination is not a public address; the message says why."""


class Unresolved(OSError):
    """The name has no address now: no such name, no A or AAAA record, or no answer from
    the DNS servers in time."""


@dataclass(frozen=True)
class Rules:
    """How webhook destinations are judged. `resolver` None: the system's resolver."""

    allow_private: bool = False
    resolver: dns.resolver.Resolver | None = None


def rules(config: Mapping[str, Any]) -> Rules:
    """The rules an app's or worker's settings set."""
    allow_private = bool(config["WEBHOOK_ALLOW_PRIVATE"])
    servers = config["WEBHOOK_DNS"]
    if not servers:
        return Rules(allow_private)
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [dns.nameserver.Do53Nameserver(host, port) for host, port in servers]
    resolver.lifetime = float(config["WEBHOOK_DNS_TIMEOUT"])
    # Two questions (A, then AAAA), each asked of the servers in turn: a share per server
    # and question, so a silent first server leaves time to ask the next one.
    resolver.timeout = resolver.lifetime / (2 * len(servers))
    return Rules(allow_private, resolver)


DEFAULT_RULES = Rules()  # public addresses only, names looked up by the system


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """IPv4 addresses an IPv6 address carries to (mapped, 6to4, Teredo, NAT64)."""
    found = [ip.ipv4_mapped, ip.sixtofour, *(ip.teredo or ())]
    if ip in _NAT64:
        found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return [v4 for v4 in found if v4 is not None]


def is_forbidden(ip: Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return is_forbidden(ip.ipv4_mapped)
    if not ip.is_global or ip.is_multicast or ip.is_reserved or ip.is_unspecified:
        return True
    if isinstance(ip, ipaddress.IPv6Address):
        return ip.is_site_local or any(is_forbidden(v4) for v4 in _embedded_ipv4(ip))
    return False


def literal_address(host: str) -> Address | None:
    """The address a host names by itself, in any form a resolver accepts; None for a name."""
    try:
        return ipaddress.ip_address(host.partition("%")[0])
    except ValueError:
        pass
    if not _NUMERIC_HOST.fullmatch(host):
        return None
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def _host_of(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise RefusedDestination("The URL's port is not valid.") from None
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        raise RefusedDestination("The URL names no host.")
    return host, port


def _refuse(host: str) -> RefusedDestination:
    return RefusedDestination(
        f"{host} is not a public internet address; webhooks deliver only to public ones."
    )


def _addresses(host: str, port: int, resolver: dns.resolver.Resolver | None) -> list[Address]:
    if resolver is None:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        return [ipaddress.ip_address(str(info[4][0]).partition("%")[0]) for info in infos]
    # Both questions within one lifetime (Resolver.resolve_name caps each at one
    # server's timeout, which leaves a second server unasked). IPv4 first: the family
    # every network the worker may run in routes.
    deadline = time.monotonic() + resolver.lifetime
    found: list[Address] = []
    try:
        for record in ("A", "AAAA"):
            answer = resolver.resolve(host, record, raise_on_no_answer=False,
                                      lifetime=deadline - time.monotonic())
            found += [ipaddress.ip_address(rdata.address) for rdata in answer]
    except dns.exception.DNSException as exc:
        raise Unresolved(f"{host}: {exc}") from exc
    return found


def resolve(url: str, rules: Rules = DEFAULT_RULES) -> tuple[str, int]:
    """The checked address (and port) to deliver `url` to. Raises RefusedDestination for
    a non-public one (any of a name's addresses), and OSError when the name does not
    resolve."""
    host, port = _host_of(url)
    ip = literal_address(host)
    if ip is not None:
        if is_forbidden(ip) and not rules.allow_private:
            raise _refuse(host)
        return str(ip), port
    if _LOCAL_NAME.fullmatch(host) and not rules.allow_private:
        raise _refuse(host)
    addresses = _addresses(host, port, rules.resolver)
    if not addresses:
        raise Unresolved(f"{host} has no address")
    if not rules.allow_private and any(is_forbidden(a) for a in addresses):
        raise _refuse(host)
    return str(addresses[0]), port


def refused(url: str | None, config: Mapping[str, Any]) -> str | None:
    """Why a webhook URL (or an alert rule's Slack address, if any) is refused when it is
    saved: its host is, or resolves to, a non-public address; None lets it through. A
    name that does not resolve yet (or not in time) is let through: every delivery checks
    again."""
    if not url:
        return None
    try:
        resolve(url, rules(config))
    except RefusedDestination as exc:
        return str(exc)
    except OSError:
        pass
    return None
