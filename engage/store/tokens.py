"""Editor/admin API tokens and the daily nonce of the address hashes.

A token is `<id>.<secret>`; Redis keeps only the id and a SHA-256 of the secret, and
the secret is compared in constant time. The address nonce is random per UTC day and
expires shortly after its day ends, so a past day's address hashes cannot be
recomputed; the hashing key itself is derived from it with the app secret (identity.py)
and never stored.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from engage.store import Store

ROLES = ("editor", "admin")
# How long a day's nonce outlives its day: requests begun just before midnight, and
# servers whose clocks run a little behind, still find it.
NONCE_GRACE = timedelta(minutes=10)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create(store: Store, role: str, name: str = "",
           sites: list[str] | None = None,
           expires_days: int | None = None,
           sections: dict[str, list[str]] | None = None) -> tuple[str, dict[str, Any]]:
    """A new token, shown once. An editor's may be limited to `sites` (None: every
    site), and within a site to some of its sections (`sections`: site -> section
    names; a site not named there is theirs whole); an admin's covers every site. With
    `expires_days` it is refused after."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    if (sites is not None or sections) and role != "editor":
        raise ValueError("only editor tokens are limited to sites")
    if sections and sites is not None and set(sections) - set(sites):
        raise ValueError("sections are limited within the token's sites")
    token_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(24)
    now = store.now()
    record: dict[str, Any] = {
        "id": token_id,
        "role": role,
        "name": name,
        "hash": _digest(secret),
        "created_at": now.isoformat(),
        "expires_at": (now + timedelta(days=expires_days)).isoformat() if expires_days else None,
    }
    if sites is not None:
        record["sites"] = list(sites)
    if sections:
        record["sections"] = {site: sorted(set(names)) for site, names in sections.items()}
    store.redis.hset(store.keys.tokens, token_id, json.dumps(record))
    return f"eng_{token_id}.{secret}", record


def _live(store: Store, record: dict[str, Any], last_used: str | None) -> dict[str, Any] | None:
    """The record, with when it was last used, unless it has expired."""
    expires = record.get("expires_at")
    if expires and datetime.fromisoformat(expires) <= store.now():
        return None
    return {**record, "last_used": last_used}


def mark_used(store: Store, record: dict[str, Any]) -> None:
    """Note a request the token was answered for; written at most once a minute, so
    most requests write nothing (`verify` read the last use in its round trip)."""
    if "hash" not in record:  # a sign-in through OpenID Connect: no token was used
        return
    minute = store.now().astimezone(UTC).replace(second=0, microsecond=0).isoformat()
    if record.get("last_used") != minute:
        store.redis.hset(store.keys.tokens_used, record["id"], minute)


def verify(store: Store, token: str) -> dict[str, Any] | None:
    """The token's record when it is valid (and not expired), else None."""
    if not token.startswith("eng_") or "." not in token:
        return None
    token_id, _, secret = token[4:].partition(".")
    if not token_id or not secret or len(token) > 200:
        return None
    pipe = store.redis.pipeline(transaction=False)
    pipe.hget(store.keys.tokens, token_id)
    pipe.hget(store.keys.tokens_used, token_id)
    raw, last_used = pipe.execute()
    if not raw:
        return None
    record: dict[str, Any] = json.loads(raw)
    if not hmac.compare_digest(record["hash"], _digest(secret)):
        return None
    return _live(store, record, last_used)


def list_all(store: Store) -> list[dict[str, Any]]:
    """Every token (no digests), oldest first, with when it was last used."""
    pipe = store.redis.pipeline(transaction=False)
    pipe.hgetall(store.keys.tokens)
    pipe.hgetall(store.keys.tokens_used)
    raw, used = pipe.execute()
    records = [json.loads(v) for v in raw.values()]
    return sorted(
        ({**{k: v for k, v in r.items() if k != "hash"}, "last_used": used.get(r["id"])}
         for r in records),
        key=lambda r: r["created_at"],
    )


def revoke(store: Store, token_id: str) -> bool:
    store.redis.hdel(store.keys.tokens_used, token_id)
    return bool(store.redis.hdel(store.keys.tokens, token_id))


def address_nonce(store: Store, day: str) -> bytes:
    """The day's random nonce (`day` is YYYYMMDD), created by whichever process needs it
    first and deleted by Redis when the day, and its grace, are over."""
    key = store.keys.addrnonce(day)
    day_ends = datetime.strptime(day, "%Y%m%d").replace(tzinfo=UTC) + timedelta(days=1)
    ttl = max(1, int((day_ends + NONCE_GRACE - store.now()).total_seconds()))
    pipe = store.redis.pipeline(transaction=False)
    pipe.set(key, secrets.token_hex(32), nx=True, ex=ttl)
    pipe.get(key)
    _, value = pipe.execute()
    return bytes.fromhex(value)


def _session_key(store: Store, session_id: str) -> str:
    # Redis keeps a digest of the id only: what it holds cannot be replayed as a cookie.
    return store.keys.session(hashlib.sha256(session_id.encode()).hexdigest()[:32])


def start_session(store: Store, owner: str, ttl: int) -> str:
    """A new dashboard session of `owner` (a token's id, or what engage/web/session.py
    keeps of a sign-in through OpenID Connect): its id, live on the server for `ttl`
    seconds after its last use or until `end_session`."""
    session_id = secrets.token_urlsafe(24)
    store.redis.set(_session_key(store, session_id), owner, ex=ttl)
    return session_id


def _touch_session(store: Store, session_id: str, ttl: int) -> Any:
    """A pipeline that reads the owner of a session and starts its lifetime over; more
    reads may join it, for one round trip."""
    key = _session_key(store, session_id)
    pipe = store.redis.pipeline(transaction=False)
    pipe.get(key)
    pipe.expire(key, ttl)
    return pipe


def session_owner(store: Store, session_id: str, ttl: int) -> str | None:
    """The owner a live session was started for; its lifetime starts over."""
    owner, _ = _touch_session(store, session_id, ttl).execute()
    return owner


def end_session(store: Store, session_id: str) -> None:
    store.redis.delete(_session_key(store, session_id))


def session_record(store: Store, session_id: str, token_id: str, digest: str,
                   ttl: int) -> dict[str, Any] | None:
    """The record of a signed-in dashboard session's token while both are still valid;
    a live session's lifetime starts over (one round trip).

    The session keeps its id, the token id and its stored digest, never the secret. A
    session signed out is gone from Redis; a revoked or re-issued token no longer
    matches: either ends the session at once, whatever cookie is shown.
    """
    pipe = _touch_session(store, session_id, ttl)
    pipe.hget(store.keys.tokens, token_id)
    pipe.hget(store.keys.tokens_used, token_id)
    owner, _, raw, last_used = pipe.execute()
    if not raw or not owner or not hmac.compare_digest(owner, token_id):
        return None
    record: dict[str, Any] = json.loads(raw)
    if not hmac.compare_digest(record["hash"], digest):
        return None
    return _live(store, record, last_used)
