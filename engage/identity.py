"""Who is calling: readers (signed tokens), editors/admins (API tokens), client addresses.

Nothing here stores a client address: addresses become keyed hashes under a random key
that changes every UTC day and is forgotten after two.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import secrets
import threading
from collections.abc import Callable, Iterable
from functools import wraps
from typing import Any, TypeVar

from flask import Flask, Request, current_app, g, request
from itsdangerous import BadSignature, Signer

from engage import errors
from engage.store import get_store, tokens

READER_HEADER = "X-Engage-Reader"
F = TypeVar("F", bound=Callable[..., Any])

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class Identity:
    """Per-app identity state: the reader signer, the hashing keys, trusted proxies."""

    def __init__(self, secret: str, trusted_proxies: Iterable[str]) -> None:
        self.signer = Signer(secret, salt="engage.reader", digest_method=hashlib.sha256)
        self.reader_key = hashlib.sha256(b"engage.reader-hash:" + secret.encode()).digest()
        self.trusted: list[Network] = [
            ipaddress.ip_network(cidr, strict=False) for cidr in trusted_proxies
        ]
        self._day_keys: dict[str, bytes] = {}
        self._lock = threading.Lock()

    # -- readers ------------------------------------------------------------------
    def mint_reader(self) -> str:
        return self.signer.sign(secrets.token_urlsafe(12)).decode()

    def reader_from_token(self, token: str) -> str:
        """The reader's opaque hash, or InvalidReader for a forged or malformed token."""
        if not token or len(token) > 128:
            raise errors.InvalidReader()
        try:
            reader_id = self.signer.unsign(token.encode())
        except (BadSignature, UnicodeError, ValueError):
            raise errors.InvalidReader() from None
        digest = hashlib.blake2b(reader_id, key=self.reader_key, digest_size=9).digest()
        return base64.urlsafe_b64encode(digest).decode()

    # -- addresses ----------------------------------------------------------------
    def is_trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in net for net in self.trusted)

    def client_address(self, req: Request) -> str:
        """The direct peer, or the first untrusted hop of X-Forwarded-For behind a proxy."""
        peer = req.remote_addr or ""
        if not self.trusted or not self.is_trusted(peer):
            return peer
        hops = [h.strip() for h in req.headers.get("X-Forwarded-For", "").split(",")]
        for hop in reversed([h for h in hops if h]):
            if not self.is_trusted(hop):
                try:
                    return str(ipaddress.ip_address(hop))
                except ValueError:
                    return peer  # a garbled header is no better than the proxy itself
        return peer

    def address_hash(self, address: str, day: str, fetch_key: Callable[[str], bytes]) -> str:
        key = self._day_keys.get(day)
        if key is None:
            with self._lock:
                key = self._day_keys.get(day)
                if key is None:
                    key = fetch_key(day)
                    self._day_keys = {day: key}  # drop yesterday's key from memory too
        digest = hashlib.blake2b(address.encode(), key=key, digest_size=9).digest()
        return base64.urlsafe_b64encode(digest).decode()


def get_identity() -> Identity:
    identity: Identity = current_app.extensions["engage.identity"]
    return identity


def current_reader(required: bool = True) -> str | None:
    """The calling reader's hash from `X-Engage-Reader`; None when absent and optional."""
    if "reader" in g:
        return g.reader
    token = request.headers.get(READER_HEADER)
    if token is None:
        if required:
            raise errors.InvalidReader("Send a reader token in the X-Engage-Reader header.")
        return None
    reader = g.reader = get_identity().reader_from_token(token)
    return reader


def current_address_hash() -> str:
    """Keyed hash of the client address under today's key; the address is not kept."""
    if "address_hash" in g:
        return g.address_hash
    store = get_store()
    identity = get_identity()
    day = store.keys.day_stamp(store.now())
    address = identity.client_address(request)
    address_hash = g.address_hash = identity.address_hash(
        address, day, lambda d: tokens.address_key(store, d)
    )
    return address_hash


def bearer_token() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def current_staff() -> dict[str, Any]:
    """The editor/admin record behind the request's bearer token, or 401."""
    if "staff" in g:
        return g.staff
    token = bearer_token()
    if token is None:
        raise errors.Unauthorized("Send an API token as `Authorization: Bearer <token>`.")
    record = tokens.verify(get_store(), token)
    if record is None:
        raise errors.Unauthorized("The API token is invalid or revoked.")
    g.staff = record
    return record


# Editors may do editor things; admins may do everything.
_ROLES_ALLOWED = {"editor": {"editor", "admin"}, "admin": {"admin"}}


def check_role(role: str) -> None:
    """401 without a valid staff token, 403 when its role does not cover `role`."""
    if current_staff()["role"] not in _ROLES_ALLOWED[role]:
        raise errors.Forbidden(f"This needs the {role} role.")


def require_role(role: str) -> Callable[[F], F]:
    """Declare (as `required_role`) and check the staff role a view needs."""
    if role not in _ROLES_ALLOWED:
        raise ValueError(f"unknown role {role!r}")

    def decorator(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            check_role(role)
            return view(*args, **kwargs)

        wrapper.required_role = role  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorator


def init_app(app: Flask) -> None:
    app.extensions["engage.identity"] = Identity(
        app.config["SECRET_KEY"], app.config["TRUSTED_PROXIES"]
    )
