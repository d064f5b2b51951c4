"""Every ENGAGE_* setting in one place: its default and one line of why.

`load_config()` reads the environment once, in the app factory; nothing here runs at
import time. Flask config keys are the setting names without the `ENGAGE_` prefix.
"""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from authlib.common.security import is_secure_transport

from engage.schemas import ID_PATTERN
from engage.store.tokens import ROLES

ENV_PREFIX = "ENGAGE_"


class ConfigError(RuntimeError):
    """The configuration cannot run safely; the message says what to set."""


def _bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"not a boolean: {raw!r}")


def _list(raw: str) -> list[str]:
    return [item.strip() for item in raw.split(",") if item.strip()]


def per_minute(raw: Any) -> int:
    """A count a minute: `30`, `30 per minute` or `30/minute`."""
    match = re.fullmatch(r"\s*(\d+)\s*(?:(?:per\s+|/\s*)(?:1\s*)?minute)?\s*", str(raw))
    if match is None:
        raise ValueError(f"not a count per minute: {raw!r}")
    return int(match.group(1))


def _dns_servers(raw: str) -> list[tuple[str, int]]:
    """`address[:port]` entries (an IPv6 address with a port in brackets); port 53 when
    left out. Addresses, not names: looking a server's name up would need a resolver."""
    servers = []
    for item in _list(raw):
        try:
            servers.append((str(ipaddress.ip_address(item)), 53))
            continue
        except ValueError:
            pass
        host, _, port = item.rpartition(":")
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"not address[:port]: {item!r}")
        servers.append((str(ipaddress.ip_address(host.removeprefix("[").removesuffix("]"))),
                        int(port)))
    return servers


def _networks(raw: str) -> list[str]:
    return [str(ipaddress.ip_network(item, strict=False)) for item in _list(raw)]


def _clock_time(raw: str) -> str:
    text = raw.strip()
    if text and not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", text):
        raise ValueError(f"not HH:MM: {raw!r}")
    return text


def _zone(raw: str) -> str:
    try:
        ZoneInfo(raw.strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"not a known time zone: {raw!r}") from None
    return raw.strip()


def role_map(raw: str) -> dict[str, tuple[str, list[str] | None]]:
    """ENGAGE_OIDC_ROLES: `value=role[:site+site]`, comma-separated -> value -> (role,
    sites). No sites is every site; an admin always has every site."""
    mapping: dict[str, tuple[str, list[str] | None]] = {}
    for item in _list(raw):
        value, _, grant = item.rpartition("=")
        role, colon, names = grant.partition(":")
        sites = names.split("+") if colon else None
        if not value.strip() or role not in ROLES or (sites is not None and (
                role == "admin" or not all(re.fullmatch(ID_PATTERN, s) for s in sites))):
            raise ValueError(f"not value=editor[:site+site] or value=admin: {item!r}")
        mapping[value.strip()] = (role, sites)
    return mapping


def _seeds_dir() -> Path:
    """The demo fixtures: the copy an installed wheel carries in the package, else the
    repository's seeds/ (a checkout, or an editable install)."""
    package = Path(__file__).resolve().parent
    bundled = package / "fixtures"
    return bundled if bundled.is_dir() else package.parent / "seeds"


@dataclass(frozen=True)
class Setting:
    name: str
    default: Any
    parse: Callable[[str], Any]
    why: str


SETTINGS: tuple[Setting, ...] = (
    Setting("SECRET_KEY", None, str,
            "Signs reader tokens and sessions; required outside tests and the demo."),
    Setting("REDIS_URL", None, str,
            "redis://, rediss:// or unix:// URL, or redis+cluster://h:p,h:p for a Redis "
            "Cluster; unset starts the embedded Redis."),
    Setting("DATA_DIR", "./var", str,
            "Where the embedded Redis keeps its AOF and the demo keeps its secret."),
    Setting("REDIS_PREFIX", "engage", str,
            "Namespace of every key, so engage can share a Redis with others."),
    Setting("REDIS_SOCKET_TIMEOUT", 1.0, float,
            "Seconds a Redis command may take before the request answers 503."),
    Setting("REDIS_CONNECT_TIMEOUT", 0.5, float,
            "Seconds to wait for a TCP connect, so a dead Redis cannot hang a worker."),
    Setting("REDIS_RETRIES", 1, int,
            "Retries on a dropped connection; safe because every write is idempotent."),
    Setting("REDIS_MAX_CONNECTIONS", 64, int,
            "Pool size per worker process; bounds Redis client count."),
    Setting("TRUSTED_PROXIES", [], _list,
            "CIDRs whose X-Forwarded-For is believed; anyone else is the client."),
    Setting("ADDRESS_PREFIX_V4", 32, int,
            "Bits of an IPv4 address that make one client for per-address limits."),
    Setting("ADDRESS_PREFIX_V6", 64, int,
            "Bits of an IPv6 address that make one client: a /64 is one household."),
    Setting("PUBLIC_URL", None, str,
            "https://host[/path] readers reach engage at, for absolute links in answers; "
            "unset keeps them relative. Never taken from the request's Host."),
    Setting("DEFAULT_SITE", "default", str,
            "Name of the site that articles without a site belong to, whose values are "
            "the settings below until an admin stores it (docs/sites.md)."),
    Setting("ALLOWED_ORIGINS", [], _list,
            "Publisher origins allowed to call the API from a browser (CORS): the "
            "default site's."),
    Setting("EMAIL_LINK_DAYS", 30, int,
            "Days a newsletter's vote links stay valid: long enough for late readers, "
            "short enough that an old forwarded email stops voting."),
    Setting("CHOICES", ["yes", "no"], _list,
            "Reaction choices, in display order (the default site's)."),
    Setting("REASON_CHOICE", "no", str,
            "The choice that may carry a reason."),
    Setting("REASONS", ["outdated", "inaccurate", "biased", "unclear", "not_relevant"], _list,
            "Reasons a reader may give with the reason choice."),
    Setting("THROTTLE_VOTES", 60, int,
            "Vote changes allowed per address group (an IPv4 address, an IPv6 /64) per "
            "article or poll per window; an office, or a carrier's NAT, shares one."),
    Setting("THROTTLE_VOTES_V6_56", 120, int,
            "Vote changes per IPv6 /56 (one home's several /64s) per article or poll per "
            "window."),
    Setting("THROTTLE_VOTES_V6_48", 200, int,
            "Vote changes per IPv6 /48 (one site; anyone's, from a tunnel broker) per "
            "article or poll per window."),
    Setting("THROTTLE_VOTES_V4_24", 400, int,
            "Vote changes per IPv4 /24 per article or poll per window; twice the /48's, "
            "as carrier NAT puts many homes on one /24."),
    Setting("THROTTLE_WINDOW", 600, int,
            "Seconds of the vote budgets' window."),
    Setting("READER_MINT_LIMIT", 30, per_minute,
            "Reader tokens one address group may mint a minute (`30` or `30 per minute`)."),
    Setting("READER_MINT_LIMIT_V6_56", 60, per_minute,
            "Reader tokens one IPv6 /56 may mint a minute."),
    Setting("READER_MINT_LIMIT_V6_48", 120, per_minute,
            "Reader tokens one IPv6 /48 may mint a minute."),
    Setting("READER_MINT_LIMIT_V4_24", 240, per_minute,
            "Reader tokens one IPv4 /24 may mint a minute; twice the /48's, for carrier NAT."),
    Setting("READER_TOKEN_DAYS", 30, int,
            "Days a reader token is accepted; the widget then renews it for the same "
            "reader (votes kept), and the old one is refused (docs/privacy.md)."),
    Setting("READER_RETENTION_DAYS", 365, int,
            "Days after a reader's last action that their link to votes and answers is "
            "kept; then the worker unlinks it, counts unchanged, and their token cannot "
            "be renewed."),
    Setting("READER_CONSENT", False, _bool,
            "The widget mints no reader token until the page calls engage.consent() or "
            "its script tag carries data-engage-consent (a consent manager's signal)."),
    Setting("MAX_CONTENT_LENGTH", 64 * 1024, int,
            "Largest request body in bytes; larger gets 413 before parsing."),
    Setting("RETRY_AFTER", 5, int,
            "Seconds suggested in Retry-After when Redis is unavailable."),
    Setting("CACHE_MAX_AGE", 5, int,
            "Seconds a CDN or browser may reuse an anonymous count read."),
    Setting("CACHE_STALE", 30, int,
            "Seconds a cache may serve a stale count while it revalidates."),
    Setting("EVENT_RETENTION_DAYS", 400, int,
            "Days of events kept in the streams, matching the daily stats."),
    Setting("HOUR_BUCKET_DAYS", 14, int,
            "Days the hourly stats buckets live."),
    Setting("DAY_BUCKET_DAYS", 400, int,
            "Days the daily stats buckets live."),
    Setting("LOCALE", "en", str,
            "Default widget language when the page does not say."),
    Setting("DEMO", False, _bool,
            "Demo mode: generates and keeps a secret in DATA_DIR, serves /demo pages."),
    Setting("SEEDS_DIR", str(_seeds_dir()), str,
            "Where `engage seed` and `serve --demo` read the demo fixtures."),
    Setting("LINKS_SHOWN", 4, int,
            "Links the related box shows; missing curated ones are filled with articles."),
    Setting("CLICK_WINDOW", 3600, int,
            "Seconds in which a link counts one click per address group; repeats are refused."),
    Setting("CLICK_BUDGET_V6_56", 4, int,
            "Clicks on one link counted per IPv6 /56 per CLICK_WINDOW (each /64 in it "
            "counts one)."),
    Setting("CLICK_BUDGET_V6_48", 20, int,
            "Clicks on one link counted per IPv6 /48 per CLICK_WINDOW."),
    Setting("CLICK_BUDGET_V4_24", 40, int,
            "Clicks on one link counted per IPv4 /24 per CLICK_WINDOW."),
    Setting("IMPRESSION_CAP", 10, int,
            "Impressions of one link counted per address group per CLICK_WINDOW."),
    Setting("LOG_JSON", True, _bool,
            "One JSON line per request on stderr; off for plain logs."),
    Setting("READY_TIMEOUT", 0.25, float,
            "Seconds /readyz waits for Redis, so a dead Redis is reported at once."),
    Setting("WEBHOOK_TIMEOUT", 5.0, float,
            "Seconds one webhook delivery may take before it counts as failed."),
    Setting("WEBHOOK_ALLOW_PRIVATE", False, _bool,
            "Let webhooks deliver to loopback and private addresses (a receiver on your "
            "own network); off, they reach public addresses only."),
    Setting("WEBHOOK_DNS", [], _dns_servers,
            "DNS servers (address[:port], comma-separated; [IPv6]:port) to look webhook "
            "host names up at (A and AAAA) instead of the system's resolver: one you "
            "choose, such as a filtering one; empty uses the system's."),
    Setting("WEBHOOK_DNS_TIMEOUT", 2.0, float,
            "Seconds one look-up at WEBHOOK_DNS may take, every server and both record "
            "types together, so a silent server cannot hold a registration or a delivery."),
    Setting("FETCH_PRIVATE_NETWORKS", [], _networks,
            "Non-public networks (CIDRs, comma-separated) page and feed fetches may reach: "
            "a publisher on your own network, or 127.0.0.0/8 in tests; empty, public "
            "addresses only. Apart from WEBHOOK_ALLOW_PRIVATE: readers' pages name these "
            "URLs, not an admin."),
    Setting("FETCH_MAX_BYTES", 2 * 1024 * 1024, int,
            "Largest page or feed fetched, in bytes; a larger one is refused ('size') "
            "while it streams, so a huge page costs no memory."),
    Setting("FETCH_TIMEOUT", 10.0, float,
            "Seconds one fetch may take, redirects and body together, before it is "
            "refused ('timeout')."),
    Setting("FETCH_HOST_INTERVAL", 1.0, float,
            "Least seconds between two fetches from one publisher host per process: "
            "a flood of new articles is read at a polite pace."),
    Setting("PENDING_PER_SITE", 200, int,
            "Unknown article ids readers' pages may queue for verification per site; "
            "past it the oldest are dropped, so made-up ids cannot grow Redis."),
    Setting("FEED_POLL_SECONDS", 300.0, float,
            "Seconds between two polls of one site feed: news sitemaps change often, and "
            "conditional GETs make an unchanged one cost a 304."),
    Setting("FEED_BACKOFF_MAX", 6 * 3600.0, float,
            "Longest wait, in seconds, before a failing feed is polled again (the wait "
            "doubles with each failure from FEED_POLL_SECONDS): a broken feed is not "
            "hammered, and a fixed one is picked up within this time."),
    Setting("UNVERIFIED_KEPT", 100, int,
            "Failed page verifications kept per site for the dashboard's list."),
    Setting("WEBHOOK_MAX_ATTEMPTS", 8, int,
            "Delivery attempts before a webhook delivery becomes a dead letter."),
    Setting("WEBHOOK_RETRY_BASE", 10.0, float,
            "Seconds before the first retry; each later retry waits twice as long."),
    Setting("WEBHOOK_RETRY_MAX", 3600.0, float,
            "Longest wait between two retries, in seconds."),
    Setting("WEBHOOK_CLAIM_IDLE", 60.0, float,
            "Seconds an unacknowledged event waits before another worker takes it over."),
    Setting("WORKER_POLL", 0.5, float,
            "Seconds the worker sleeps when it found nothing to do."),
    Setting("WORKER_METRICS_PORT", 9102, int,
            "Port of the worker's own /metrics (0 turns it off)."),
    Setting("WORKER_METRICS_HOST", "127.0.0.1", str,
            "Address the worker's /metrics listens on; 0.0.0.0 where Prometheus scrapes "
            "it from another host or container."),
    Setting("REDIS_CLUSTER_RETRIES", 3, int,
            "Tries a cluster client makes across a failover before answering 503."),
    Setting("WEBHOOK_CONCURRENCY", 8, int,
            "Deliveries the worker sends at once; a slow endpoint costs a timeout per batch."),
    Setting("SMTP_URL", None, str,
            "smtp://[user:password@]host[:port] (STARTTLS when the server offers it) or "
            "smtps://... (TLS from the start) that alert and digest emails go through; "
            "unset sends no email."),
    Setting("SMTP_TIMEOUT", 10.0, float,
            "Seconds one email may take to hand over before it counts as failed."),
    Setting("MAIL_FROM", "engage@localhost", str,
            "Sender of the digest, and of alert rules that name none."),
    Setting("ALERT_INTERVAL", 10.0, float,
            "Seconds between two looks of the worker at the alert rules: an alert goes "
            "out within this (plus the aggregates' second) of the vote that fired it."),
    Setting("DIGEST_TIME", "", _clock_time,
            "Local time (HH:MM) the worker sends yesterday's digest at; empty sends none."),
    Setting("DIGEST_TIMEZONE", "UTC", _zone,
            "IANA time zone of DIGEST_TIME and of the digest's day."),
    Setting("DIGEST_TO", [], _list,
            "Addresses the daily digest goes to, comma-separated."),
    Setting("OIDC_ISSUER", None, str,
            "Issuer URL of the newsroom's OpenID Connect provider (https, or http on "
            "loopback); set, staff may sign in through it as well as with tokens "
            "(docs/oidc.md)."),
    Setting("OIDC_CLIENT_ID", None, str,
            "engage's client id at the provider."),
    Setting("OIDC_CLIENT_SECRET", None, str,
            "engage's client secret at the provider."),
    Setting("OIDC_NAME", None, str,
            "The provider's name on the sign-in button; unset shows the issuer's host."),
    Setting("OIDC_SCOPES", "openid email profile", str,
            "Scopes asked for, openid among them; add the one that releases OIDC_CLAIM "
            "where the provider wants it (often groups)."),
    Setting("OIDC_CLAIM", "groups", str,
            "The ID token claim whose values (groups or roles) OIDC_ROLES maps."),
    Setting("OIDC_ROLES", None, role_map,
            "Claim value -> engage role and sites: value=admin or value=editor[:site+site], "
            "comma-separated; a value not listed gives no access."),
)

def load_config(
    environ: Mapping[str, str] | None = None, overrides: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Defaults, then ENGAGE_* variables, then explicit overrides (tests, CLI)."""
    env = os.environ if environ is None else environ
    config: dict[str, Any] = {}
    for setting in SETTINGS:
        raw = env.get(ENV_PREFIX + setting.name)
        if raw is None:
            default = setting.default
            config[setting.name] = list(default) if isinstance(default, list) else default
            continue
        try:
            config[setting.name] = setting.parse(raw)
        except ValueError as exc:
            raise ConfigError(f"{ENV_PREFIX}{setting.name}: {exc}") from exc
    if overrides:
        config.update(overrides)
    _validate(config)
    return config


def _validate(config: dict[str, Any]) -> None:
    if len(config["CHOICES"]) < 2:
        raise ConfigError("ENGAGE_CHOICES needs at least two choices")
    if not 0 <= int(config["ADDRESS_PREFIX_V4"]) <= 32:
        raise ConfigError("ENGAGE_ADDRESS_PREFIX_V4 must be between 0 and 32")
    if not 0 <= int(config["ADDRESS_PREFIX_V6"]) <= 128:
        raise ConfigError("ENGAGE_ADDRESS_PREFIX_V6 must be between 0 and 128")
    if not 1 <= int(config["READER_TOKEN_DAYS"]) <= int(config["READER_RETENTION_DAYS"]):
        raise ConfigError("ENGAGE_READER_TOKEN_DAYS must be at least 1 and at most "
                          "ENGAGE_READER_RETENTION_DAYS")
    if float(config["WEBHOOK_DNS_TIMEOUT"]) <= 0:
        raise ConfigError("ENGAGE_WEBHOOK_DNS_TIMEOUT must be above 0")
    public_url = config.get("PUBLIC_URL")
    if public_url and not re.fullmatch(r"https?://[^/?#@\s]+(/[^?#\s]*)?", str(public_url)):
        raise ConfigError("ENGAGE_PUBLIC_URL must be http(s)://host[:port][/path]")
    smtp_url = config.get("SMTP_URL")
    if smtp_url and not re.fullmatch(r"smtps?://[^/?#\s]+/?", str(smtp_url)):
        raise ConfigError("ENGAGE_SMTP_URL must be smtp://[user:password@]host[:port] or smtps://...")
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,39}", str(config["DEFAULT_SITE"])):
        raise ConfigError("ENGAGE_DEFAULT_SITE must be 1-40 characters of a-z 0-9 -, "
                          "starting with a letter or digit")
    if config["REASON_CHOICE"] and config["REASON_CHOICE"] not in config["CHOICES"]:
        raise ConfigError("ENGAGE_REASON_CHOICE must be one of ENGAGE_CHOICES")
    if config["OIDC_ISSUER"]:
        _validate_oidc(config)


def _validate_oidc(config: dict[str, Any]) -> None:
    needed = ("OIDC_CLIENT_ID", "OIDC_CLIENT_SECRET", "OIDC_ROLES", "PUBLIC_URL")
    missing = [ENV_PREFIX + name for name in needed if not config.get(name)]
    if missing:
        raise ConfigError(f"ENGAGE_OIDC_ISSUER needs {', '.join(missing)} too")
    # The provider's keys come from there: over plain HTTP anyone on the way could
    # swap them and sign in as anybody.
    if not is_secure_transport(config["OIDC_ISSUER"]):
        raise ConfigError("ENGAGE_OIDC_ISSUER must be https:// (http only on loopback)")
    if "openid" not in config["OIDC_SCOPES"].split():
        raise ConfigError("ENGAGE_OIDC_SCOPES must include openid")


def resolve_secret(config: dict[str, Any]) -> str:
    """The signing secret, or a clear refusal.

    Tests get a throwaway secret; the demo generates one and keeps it in DATA_DIR so
    readers' tokens survive a restart; everything else must set ENGAGE_SECRET_KEY.
    """
    secret = config.get("SECRET_KEY")
    if secret:
        if len(secret) < 16 and not config.get("TESTING"):
            raise ConfigError("ENGAGE_SECRET_KEY must be at least 16 characters")
        return str(secret)
    if config.get("TESTING"):
        return secrets.token_urlsafe(32)
    if config.get("DEMO"):
        path = Path(config["DATA_DIR"]) / "secret_key"
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(48))
        return path.read_text().strip()
    raise ConfigError(
        "ENGAGE_SECRET_KEY is not set. Set it to a long random string "
        "(python -c 'import secrets; print(secrets.token_urlsafe(48))'), "
        "or run the demo with `engage serve --demo`."
    )
