"""Who is calling: readers (signed tokens), editors/admins (API tokens), client addresses.

Nothing here stores a client address: an address is first widened to its group (an
IPv6 /64 is one household, an IPv4 /32 one address, by default), then hashed under a key
of the UTC day. The day's key is derived with the app secret from a random nonce that
Redis keeps only until the day ends (plus a short grace): Redis alone cannot recompute
a hash, and once the nonce is gone, neither can the secret.

An address also counts in the wider networks around its group (`WIDER_NETWORKS`), each
hashed the same way, so one network holding many groups (a /48 is 65,536 /64s) has a
budget of its own (store/budgets.py).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import secrets
import threading
from collections.abc import Callable, Iterable
from functools import partial, wraps
from typing import Any, TypeVar

from flask import Flask, Request, current_app, g, request
from itsdangerous import (
    BadSignature,
    BadTimeSignature,
    Signer,
    TimestampSigner,
    URLSafeSerializer,
)

from engage import errors
from engage.store import budgets, get_store, readers, sites, tokens

READER_HEADER = "X-Engage-Reader"
F = TypeVar("F", bound=Callable[..., Any])

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

# The networks above an address's group with budgets of their own: (name, IP version,
# prefix). Many providers hand one home a /56 and one site (or anyone, from a tunnel
# broker) a /48; an IPv4 /24 is the smallest block routed on the internet, and behind
# carrier NAT one holds many homes. Each budget is a setting named after the network
# (THROTTLE_VOTES_V6_48, ...).
WIDER_NETWORKS = (("v6_56", 6, 56), ("v6_48", 6, 48), ("v4_24", 4, 24))


def parse_address(text: str) -> Address | None:
    """An address as peers and proxies write it (`ip`, `ip:port`, `[ip]`, `[ip]:port`),
    with an IPv4-mapped IPv6 address as the IPv4 address it is; None for anything else."""
    text = text.strip()
    if text.startswith("["):
        host, closed, rest = text[1:].partition("]")
        if not closed or (rest and not (rest[:1] == ":" and rest[1:].isdigit())):
            return None
        text = host
    elif text.count(":") == 1:  # IPv4 with a port; a bare IPv6 address has several colons
        text, _, port = text.partition(":")
        if not port.isdigit():
            return None
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:
            ip = ipaddress.IPv6Address(int(ip))
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
    return ip


class Identity:
    """Per-app identity state: the reader signer, the hashing keys, trusted proxies and
    the prefixes that group addresses."""

    def __init__(self, secret: str, trusted_proxies: Iterable[str], prefix_v4: int = 32,
                 prefix_v6: int = 64) -> None:
        # Timestamped: a token carries its issue time (docs/privacy.md, token lifetime).
        self.signer = TimestampSigner(secret, salt="engage.reader",
                                      digest_method=hashlib.sha256)
        # Tokens minted before they carried a time; each can be renewed once.
        self.untimed = Signer(secret, salt="engage.reader", digest_method=hashlib.sha256)
        self.vote_links = URLSafeSerializer(secret, salt="engage.email-vote",
                                            signer_kwargs={"digest_method": hashlib.sha256})
        self.reader_key = hashlib.sha256(b"engage.reader-hash:" + secret.encode()).digest()
        self.address_secret = hashlib.sha256(b"engage.address-key:" + secret.encode()).digest()
        self.prefix_v4 = prefix_v4
        self.prefix_v6 = prefix_v6
        self.trusted: list[Network] = [
            ipaddress.ip_network(cidr, strict=False) for cidr in trusted_proxies
        ]
        self._day_keys: dict[str, bytes] = {}
        self._lock = threading.Lock()

    # -- readers ------------------------------------------------------------------
    def mint_reader(self, reader_id: bytes | None = None) -> str:
        """A new token: for a new reader, or (renewal) for `reader_id`, issued now; a
        renewal's carries a nonce after `~`, so no two tokens are ever the same."""
        if reader_id is None:
            return self.signer.sign(secrets.token_urlsafe(12)).decode()
        return self.signer.sign(reader_id + b"~" + secrets.token_urlsafe(6).encode()).decode()

    def read_token(self, token: str) -> tuple[bytes, str, int]:
        """(reader id, the reader's opaque hash, issue time in epoch s), or InvalidReader
        for a forged or malformed token. A token minted before tokens carried a time
        (signed alike, without one) reads as issued at 0."""
        if not token or len(token) > 128:
            raise errors.InvalidReader()
        try:
            reader_id, issued = self.signer.unsign(token.encode(), return_timestamp=True)
            issued_at = int(issued.timestamp())
        except BadTimeSignature:
            try:
                reader_id, issued_at = self.untimed.unsign(token.encode()), 0
            except (BadSignature, UnicodeError, ValueError):
                raise errors.InvalidReader() from None
        except (BadSignature, UnicodeError, ValueError):
            raise errors.InvalidReader() from None
        reader_id = reader_id.partition(b"~")[0]
        digest = hashlib.blake2b(reader_id, key=self.reader_key, digest_size=9).digest()
        return reader_id, base64.urlsafe_b64encode(digest).decode(), issued_at

    def reader_from_token(self, token: str) -> str:
        """The reader's opaque hash, or InvalidReader for a forged or malformed token."""
        return self.read_token(token)[1]

    def sign_vote_link(self, article_id: str, expires: int) -> str:
        """A newsletter's vote link for an article, valid until `expires` (epoch s)."""
        return self.vote_links.dumps([article_id, expires])

    def vote_link(self, token: str, now: float) -> str:
        """The article a vote link names; BadVoteLink when it was altered,
        ExpiredVoteLink when its time is over."""
        try:
            article_id, expires = self.vote_links.loads(token)
        except (BadSignature, TypeError, ValueError):
            raise errors.BadVoteLink() from None
        if now >= expires:
            raise errors.ExpiredVoteLink()
        return str(article_id)

    def mail_reader(self, article_id: str, recipient: str) -> str:
        """The reader a newsletter recipient votes as on an article: the same from every
        link and device that recipient opens, and unlike any widget reader's."""
        seed = f"mail\0{article_id}\0{recipient}".encode()
        digest = hashlib.blake2b(seed, key=self.reader_key, digest_size=9).digest()
        return base64.urlsafe_b64encode(digest).decode()

    # -- addresses ----------------------------------------------------------------
    def is_trusted(self, address: str) -> bool:
        ip = parse_address(address)
        return ip is not None and any(ip in net for net in self.trusted)

    def client_address(self, req: Request) -> str:
        """The direct peer, or the first untrusted hop of X-Forwarded-For behind a proxy."""
        return str(self.client_ip(req))

    def client_ip(self, req: Request) -> Address | str:
        """`client_address` as parsed, so it is parsed once a request; a unix socket's
        peer stays text: nobody to tell apart."""
        peer = req.remote_addr or ""
        peer_ip = parse_address(peer)
        if peer_ip is None:
            return peer
        if not any(peer_ip in net for net in self.trusted):
            return peer_ip
        hops = [h for h in req.headers.get("X-Forwarded-For", "").split(",") if h.strip()]
        for hop in reversed(hops):
            ip = parse_address(hop)
            if ip is None:
                return peer_ip  # a garbled header is no better than the proxy itself
            if not any(ip in net for net in self.trusted):
                return ip
        return peer_ip

    def networks(self, address: Address | str) -> tuple[str, dict[str, str]]:
        """The network an address is counted as (its group: one household, not one
        device), and name -> network for each of WIDER_NETWORKS that holds the group and
        more: none for a unix socket (its own group), nor for a network no wider than
        the group. The address is parsed once for all of them."""
        ip = parse_address(address) if isinstance(address, str) else address
        if ip is None:
            return str(address), {}
        network = ipaddress.IPv4Network if ip.version == 4 else ipaddress.IPv6Network
        group = self.prefix_v4 if ip.version == 4 else self.prefix_v6
        return str(network((int(ip), group), strict=False)), {
            name: str(network((int(ip), prefix), strict=False))
            for name, version, prefix in WIDER_NETWORKS
            if version == ip.version and prefix < group
        }

    def day_key(self, day: str, nonce: bytes) -> bytes:
        """The day's hashing key: the nonce alone (all Redis holds) does not give it."""
        return hmac.new(self.address_secret, day.encode() + b":" + nonce, hashlib.sha256).digest()

    def address_hashes(self, address: Address | str, day: str, fetch_nonce: Callable[[str], bytes]
                       ) -> tuple[str, dict[str, str]]:
        """Keyed hash of the address's group under the day's key, and name -> keyed hash
        of each of its wider networks alike (a network's text names its prefix, so no two
        levels share one)."""
        group, wider = self.networks(address)
        return self._hash(group, day, fetch_nonce), {
            name: self._hash(network, day, fetch_nonce) for name, network in wider.items()}

    def _hash(self, network: str, day: str, fetch_nonce: Callable[[str], bytes]) -> str:
        key = self._day_keys.get(day)
        if key is None:
            with self._lock:
                key = self._day_keys.get(day)
                if key is None:
                    key = self.day_key(day, fetch_nonce(day))
                    self._day_keys = {day: key}  # drop yesterday's key from memory too
        digest = hashlib.blake2b(network.encode(), key=key, digest_size=9).digest()
        return base64.urlsafe_b64encode(digest).decode()


def get_identity() -> Identity:
    identity: Identity = current_app.extensions["engage.identity"]
    return identity


def reader_token(renewing: bool = False, voting: bool = False, token: str | None = None,
                 reading: bool = False) -> tuple[bytes, str, int] | None:
    """The caller's `X-Engage-Reader` token (or `token`, a form's cookie) read
    (identity.read_token), or None without one. Refused: one older than READER_TOKEN_DAYS
    (ReaderExpired) unless `renewing`, which takes one up to READER_RETENTION_DAYS old;
    one renewed since or erased (ReaderRevoked), which a vote (`voting`) looks up in
    this process's copy of the revocations (read at most a second ago: no round trip)
    and `reading` not at all."""
    token = token or request.headers.get(READER_HEADER)
    if token is None:
        return None
    read = get_identity().read_token(token)
    store = get_store()
    days = store.config["READER_RETENTION_DAYS" if renewing else "READER_TOKEN_DAYS"]
    if store.now().timestamp() - read[2] > int(days) * 86400 and not (renewing and not read[2]):
        raise errors.InvalidReader() if renewing else errors.ReaderExpired()
    if reading:
        return read
    revoked = readers.refused_to_vote if voting else readers.is_revoked
    if revoked(store, read[1], token):
        raise errors.ReaderRevoked()
    return read


def renew_reader(read: tuple[bytes, str, int]) -> str:
    """A new token for the reader of `read` (their votes stay theirs); every other token
    of theirs is refused from now on."""
    token = get_identity().mint_reader(read[0])
    readers.revoke(get_store(), read[1], keep=token)
    return token


def current_reader(required: bool = True, voting: bool = False,
                   reading: bool = False) -> str | None:
    """The calling reader's hash from `X-Engage-Reader`; None when absent and optional.
    With `voting`, a revoked token is refused as this process last read the revocations
    (`reader_token`). With `reading` (counts, the reader's own votes) an erased token is
    not looked up: it finds nothing of the reader's left, and a read costs no round trip
    for it."""
    if "reader" in g:
        return g.reader
    read = reader_token(voting=voting, reading=reading)
    if read is None:
        if required:
            raise errors.InvalidReader("Send a reader token in the X-Engage-Reader header.")
        return None
    g.reader = read[1]
    return read[1]


def current_address_hash() -> str:
    """Keyed hash of the client's address group under today's key; the address is not
    kept. Every per-address limit (mint limit, vote and poll throttles) keys on it."""
    if "address_hash" not in g:
        _hash_client_address()
    address_hash: str = g.address_hash
    return address_hash


def current_network_hashes() -> dict[str, str]:
    """Name -> keyed hash of each wider network the client's address is in (for an
    IPv6 address its /56 and /48, for IPv4 its /24); the budgets above the group's."""
    if "network_hashes" not in g:
        _hash_client_address()
    networks: dict[str, str] = g.network_hashes
    return networks


def _hash_client_address() -> None:
    store = get_store()
    identity = get_identity()
    day = store.keys.day_stamp(store.now())
    address = identity.client_ip(request)

    def fetch(d: str) -> bytes:
        return tokens.address_nonce(store, d)

    g.address_hash, g.network_hashes = identity.address_hashes(address, day, fetch)


def _spend_client_budget(what: str, limits: Callable[[budgets.Networks], str]) -> None:
    """Spend one `what` from the client's address group's budget and each of its wider
    networks' (`limits` of them, store/budgets.py), for a MINUTE; RateLimited when one
    is used up."""
    networks = current_network_hashes()
    budgets.spend(get_store(), what, current_address_hash(), networks, limits(networks),
                  budgets.MINUTE)


def spend_reader_data_budget() -> None:
    """Spend one export or erasure from the client's budgets."""
    _spend_client_budget("data", budgets.reader_data_limits)


def spend_page_queue_budget() -> None:
    """Spend one read's queueing of unknown ids from the client's budgets."""
    _spend_client_budget("page", budgets.page_queue_limits)


def mint_for_client() -> str:
    """A new reader token, spent from the client's mint budgets (its address group's and
    its wider networks')."""
    _spend_client_budget("mint", partial(budgets.mint_limits, current_app.config))
    return get_identity().mint_reader()


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


def site_scope() -> list[str] | None:
    """The sites the calling staff member (API token or dashboard session) may see; None
    is every site. Admins see every site."""
    staff = g.get("staff") or {}
    sites = staff.get("sites")
    return None if sites is None or staff.get("role") == "admin" else list(sites)


def check_site(site: str | None) -> None:
    """403 when the caller is limited to sites and `site` (known) is not one of them."""
    scope = site_scope()
    if scope is not None and site is not None and site not in scope:
        raise errors.Forbidden("This belongs to a site your token does not cover.")


def section_scope() -> dict[str, list[str]] | None:
    """Site -> the sections the calling staff member is limited to there (a site not
    named is theirs whole); None when limited to no section. Admins have none."""
    staff = g.get("staff") or {}
    found = staff.get("sections")
    return None if not found or staff.get("role") == "admin" else dict(found)


def _placed(article_id: str) -> tuple[str, str] | None:
    """(site, section) of a stored article; None for none stored."""
    store = get_store()
    title, site, section = store.redis.hmget(store.keys.article(article_id),
                                             "title", "site", "section")
    if title is None:
        return None
    return site or store.config["DEFAULT_SITE"], section or ""


def check_section(site: str, section: str) -> None:
    """403 when the caller is limited to some of `site`'s sections and `section` is
    none of them."""
    scope = section_scope()
    if scope is not None and site in scope and section not in scope[site]:
        raise errors.Forbidden("This belongs to a section your token does not cover.")


def check_article_site(article_id: str | None, site: str | None = None,
                       section: str | None = None) -> None:
    """`check_site` for what a write puts in a site: the site it names, else the
    article's (the default site's for none, or a new article); for a caller limited to
    sections, the article's section as it stands and as the write puts it too."""
    if site_scope() is None and section_scope() is None:
        return
    store = get_store()
    target = (site or (sites.owner(store, article_id) if article_id else None)
              or store.config["DEFAULT_SITE"])
    check_site(target)
    if section_scope() is None or not article_id:
        return
    placed = _placed(article_id)
    if placed is not None:
        check_section(*placed)
    check_section(target, section if section is not None else placed[1] if placed else "")


def visible_articles(article_ids: Iterable[str], only: str | None = None) -> set[str] | None:
    """Of these articles (`""`: none, as a poll may have, the default site's), those the
    caller may see, of site `only` when named (one the caller may see); None when the
    caller sees every site and names none."""
    scope = site_scope() if only is None else [only]
    within = section_scope()
    if scope is None and within is None:
        return None
    store = get_store()
    found = sites.of_articles(store, [a for a in dict.fromkeys(article_ids) if a])
    found[""] = store.config["DEFAULT_SITE"]
    shown = {article for article, site in found.items() if scope is None or site in scope}
    limited = sorted(a for a in shown if a and found[a] in (within or {}))
    if limited:  # those of a site the caller sees some sections of: theirs only
        pipe = store.redis.pipeline(transaction=False)
        for article_id in limited:
            pipe.hget(store.keys.article(article_id), "section")
        shown -= {a for a, section in zip(limited, pipe.execute(), strict=True)
                  if (section or "") not in (within or {})[str(found[a])]}
    return shown


def figures_site(name: str | None) -> str:
    """The site whose figures (rankings, sections, totals: kept per site) a caller asks
    for: the one named (422 unknown, 403 not theirs), else their first (the default for
    a caller who sees every site)."""
    if name is None:
        return home_site()
    if name not in sites.listing(get_store()):
        raise errors.ValidationFailed(fields={"site": ["No such site."]})
    check_site(name)
    return name


def home_site() -> str:
    """The caller's first site: the default for one who sees every site; for one limited
    to sites none of which exists yet, the first named (it has no figures)."""
    names = visible_sites()
    return names[0] if names else (site_scope() or [get_store().config["DEFAULT_SITE"]])[0]


def visible_sites() -> list[str]:
    """The names of the sites the caller may see, the default first."""
    scope = site_scope()
    return [name for name in sites.listing(get_store()) if scope is None or name in scope]


def check_scope() -> None:
    """`check_site` for the article or poll the request's path names, if any."""
    args = request.view_args or {}
    if site_scope() is not None and (args.get("article_id") or args.get("poll_id")):
        check_site(sites.owner(get_store(), args.get("article_id"), args.get("poll_id")))
    if section_scope() is not None and (args.get("article_id") or args.get("poll_id")):
        store, article_id = get_store(), args.get("article_id")
        if not article_id:  # a poll's: its article's (the default site's for none)
            question, article_id = store.redis.hmget(store.keys.poll(args["poll_id"]),
                                                     "question", "article")
            if question is not None and not article_id:
                check_section(store.config["DEFAULT_SITE"], "")
        placed = _placed(article_id) if article_id else None
        if placed is not None:
            check_section(*placed)


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
        app.config["SECRET_KEY"], app.config["TRUSTED_PROXIES"],
        prefix_v4=int(app.config["ADDRESS_PREFIX_V4"]),
        prefix_v6=int(app.config["ADDRESS_PREFIX_V6"]),
    )
