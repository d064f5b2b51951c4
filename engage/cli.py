"""The `engage` command: serve | seed | token | site."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from engage.config import ConfigError, load_config


def _app() -> Any:
    from engage import create_app

    _data_dir(load_config())
    return create_app()


@contextmanager
def _store() -> Iterator[Any]:
    """The store of an app made for one command, inside that app's context."""
    from engage.store import get_store

    with _app().app_context():
        yield get_store()


def _data_dir(config: dict[str, Any]) -> None:
    """DATA_DIR, created (0700) when missing, when anything will keep files there."""
    if config.get("REDIS_URL") and not config.get("DEMO"):
        return
    path = Path(config["DATA_DIR"])
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except FileExistsError as exc:
        raise click.ClickException(f"ENGAGE_DATA_DIR {path} is not a directory") from exc
    except OSError as exc:
        raise click.ClickException(
            f"ENGAGE_DATA_DIR {path} cannot be created: {exc.strerror}") from exc
    if not os.access(path, os.R_OK | os.W_OK | os.X_OK):
        raise click.ClickException(f"ENGAGE_DATA_DIR {path} is not writable by this user")


class EngageGroup(click.Group):
    """Failures a user can fix end in one line that says what to fix, not a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        from engage.store import UNAVAILABLE
        from engage.store.embedded import EmbeddedRedisError

        try:
            return super().invoke(ctx)
        except click.UsageError as exc:
            # The usage lines click adds would bury the one that says what is wrong.
            where = exc.ctx.command_path if exc.ctx else ctx.command_path
            message = _one_line(exc.format_message()).rstrip(".")
            raise click.UsageError(f"{message}. See '{where} --help'.") from exc
        except (ConfigError, EmbeddedRedisError) as exc:
            raise click.ClickException(_one_line(exc)) from exc
        except UNAVAILABLE as exc:
            where = "ENGAGE_REDIS_URL" if os.environ.get("ENGAGE_REDIS_URL") else \
                "the embedded Redis (see redis.log in ENGAGE_DATA_DIR)"
            raise click.ClickException(
                f"cannot reach Redis: {_one_line(exc)} (check {where})") from exc


def _one_line(exc: BaseException | str) -> str:
    return " ".join(str(exc).split())


@click.group(cls=EngageGroup)
@click.version_option(package_name="engage")
def main() -> None:
    """engage: reader reactions, polls and related links for news sites."""


@main.command()
@click.option("--bind", default="127.0.0.1:8000", envvar="ENGAGE_BIND", show_default=True)
@click.option("--workers", default=2, envvar="ENGAGE_WORKERS", show_default=True, type=int)
@click.option("--demo", is_flag=True,
              help="Load seeds/ and print an admin token for the dashboard.")
@click.option("--dev", is_flag=True, help="Flask's reloading development server.")
def serve(bind: str, workers: int, demo: bool, dev: bool) -> None:
    """Run engage under granian, with the embedded Redis unless configured."""
    from engage.config import resolve_secret
    from engage.server import MetricsDirectory

    if demo:
        os.environ["ENGAGE_DEMO"] = "1"
    config = load_config()
    _data_dir(config)
    resolve_secret(config)  # refuse before starting a Redis that nobody would stop
    # Before anything imports prometheus_client (engage.store does): workers write their
    # metrics here.
    metrics_dir = None if dev else MetricsDirectory.open()
    from engage.store.embedded import EmbeddedRedis

    embedded = None
    if not config["REDIS_URL"]:
        # Started and watched from this process, once, so every worker shares one
        # server through its socket and a worker's exit never stops it.
        embedded = EmbeddedRedis(config["DATA_DIR"])
        os.environ["ENGAGE_REDIS_URL"] = embedded.start_supervised()
    app = _app()
    host, _, port = bind.rpartition(":")
    base = f"http://{host or '127.0.0.1'}:{port}"
    if demo:
        _print_demo(app, base)
    else:
        click.echo(f"engage on {base}  (health {base}/healthz, API docs {base}/api/docs)")
    # -- cross-article aggregates: one thread beside the server, started once the app
    # has reached Redis, stopped with it ------------------------------------------------
    from engage.feeds import start_feeds
    from engage.pages import start_pages
    from engage.store import get_store
    from engage.worker import start_aggregates

    with app.app_context():
        aggregates_thread, aggregates_stop = start_aggregates(get_store())
        # Page verification beside them, on the same stop.
        pages_thread, _ = start_pages(get_store(), aggregates_stop)
        feeds_thread, _ = start_feeds(get_store(), aggregates_stop)
    # ------------------------------------------------------------------------------------
    try:
        if dev:
            import signal

            from engage.logs import AddresslessRequestHandler

            # werkzeug's server stops on KeyboardInterrupt; a SIGTERM (a process manager,
            # `kill`) must stop it the same way, so the finally below stops the Redis.
            signal.signal(signal.SIGTERM, signal.default_int_handler)

            app.run(host=host or "127.0.0.1", port=int(port), debug=True, use_reloader=False,
                    request_handler=AddresslessRequestHandler)
        else:
            from engage.server import run_granian

            run_granian(bind, workers)
    finally:
        aggregates_stop.set()
        aggregates_thread.join(timeout=5)
        pages_thread.join(timeout=5)
        feeds_thread.join(timeout=5)
        if embedded is not None:
            embedded.stop()  # a no-op in a worker: only the owner stops it
        if metrics_dir is not None:
            metrics_dir.close()


def _print_demo(app: Any, base: str) -> None:
    from engage import seeds
    from engage.store import get_store, tokens

    with app.app_context():
        store = get_store()
        summary = seeds.load(store, app.config["SEEDS_DIR"])
        token_file = Path(app.config["DATA_DIR"]) / "demo_editor_token"
        token = token_file.read_text().strip() if token_file.exists() else ""
        if not token or tokens.verify(store, token) is None:
            token, _ = tokens.create(store, "admin", "demo")
            token_file.write_text(token)
            token_file.chmod(0o600)
    click.echo(
        f"\nengage demo is running ({summary['articles']} articles loaded).\n"
        f"  demo article : {base}/demo/korea-china-reset\n"
        f"  dashboard    : {base}/dashboard   (sign in with the token below)\n"
        f"  API docs     : {base}/api/docs\n"
        f"  metrics      : {base}/metrics\n"
        f"  admin token  : {token}\n"
        f"  try          : curl {base}/api/v1/articles/korea-china-reset/reactions\n"
    )


@main.command()
def seed() -> None:
    """Load the demo fixtures from ENGAGE_SEEDS_DIR (idempotent)."""
    from engage import seeds

    with _store() as store:
        summary = seeds.load(store, store.config["SEEDS_DIR"])
    click.echo(", ".join(f"{n} {what}" for what, n in summary.items()))


@main.group()
def token() -> None:
    """Editor and admin API tokens."""


@token.command("create")
@click.option("--role", type=click.Choice(["editor", "admin"]), required=True)
@click.option("--name", required=True, help="Who or what the token is for.")
@click.option("--expires-days", type=int, default=None,
              help="Refuse the token after this many days (default: never).")
@click.option("--site", "sites", multiple=True,
              help="Limit an editor token to this site (repeat for several).")
@click.option("--section", "sections", multiple=True, metavar="SITE:SECTION",
              help="Limit an editor token, within SITE, to this section (repeat for several).")
def token_create(role: str, name: str, expires_days: int | None,
                 sites: tuple[str, ...], sections: tuple[str, ...]) -> None:
    """Create a token; it is shown once and stored only as a hash."""
    from marshmallow import ValidationError

    from engage import schemas
    from engage.store import tokens

    try:  # the dashboard's rules for a token's name
        data = schemas.TokenInSchema().load(
            {"role": role, "name": name, "expires_days": expires_days})
    except ValidationError as exc:
        field = "name" if "name" in exc.messages else "expires_days"
        raise click.BadParameter(" ".join(exc.normalized_messages().get(field, [])),
                                 param_hint=f"'--{field.replace('_', '-')}'") from None
    if (sites or sections) and role != "editor":
        raise click.BadParameter("only editor tokens are limited to sites", param_hint="'--site'")
    within: dict[str, list[str]] = {}
    for item in sections:
        site, colon, section = item.partition(":")
        if not colon or not site or not section:
            raise click.BadParameter("give SITE:SECTION", param_hint="'--section'")
        if sites and site not in sites:
            raise click.BadParameter(f"{site} is not one of the token's sites",
                                     param_hint="'--section'")
        within.setdefault(site, []).append(section)
    with _store() as store:
        from engage.store import sites as known

        unknown = (set(sites) | set(within)) - set(known.listing(store))
        if unknown:
            raise click.BadParameter(f"no site {', '.join(sorted(unknown))}",
                                     param_hint="'--site'")
        value, record = tokens.create(store, role, data["name"], list(sites) if sites else None,
                                      data["expires_days"], within or None)
    click.echo(value)
    click.echo(f"created {record['role']} token {record['id']} {record['name']}".rstrip(), err=True)


@token.command("list")
def token_list() -> None:
    """List tokens (ids, roles and names; never the secrets)."""
    from engage.store import tokens

    with _store() as store:
        for record in tokens.list_all(store):
            click.echo(f"{record['id']}\t{record['role']}\t{record['created_at']}\t{record['name']}"
                       + (f"\tsites={','.join(record['sites'])}" if "sites" in record else "")
                       + "".join(f"\tsections={site}:{','.join(names)}"
                                 for site, names in record.get("sections", {}).items()))


@token.command("revoke")
@click.argument("token_id")
def token_revoke(token_id: str) -> None:
    """Revoke a token by its id."""
    from engage.store import tokens

    with _store() as store:
        if not tokens.revoke(store, token_id):
            raise click.ClickException(f"no token {token_id}")
    click.echo(f"revoked {token_id}")


@main.group()
def site() -> None:
    """Sites: origins, reaction set and settings of each title (docs/sites.md)."""


def _site_options(command: Any) -> Any:
    for option in reversed([
        click.option("--origins", help="Publisher origins, comma-separated."),
        click.option("--locale", help="Widget language, such as en or fr-CA."),
        click.option("--choices", help="Reaction choices in display order, comma-separated."),
        click.option("--reason-choice", help="The choice that may carry a reason."),
        click.option("--reasons", help="Reasons, comma-separated (with --choices)."),
        click.option("--links-shown", type=int, help="Links the related box shows."),
        click.option("--cache-max-age", type=int, help="Seconds a count read may be reused."),
        click.option("--cache-stale", type=int, help="Seconds a stale count may be served."),
        click.option("--feed", "feeds", multiple=True,
                     help="A news sitemap, RSS or Atom feed on the site's origins to poll "
                          "(repeat for several; replaces the site's list)."),
        click.option("--no-feeds", is_flag=True, default=None,
                     help="Poll no feed for this site."),
    ]):
        command = option(command)
    return command


def _site_values(options: dict[str, Any], schema: Any) -> dict[str, Any]:
    """The options given, loaded through the API's schema."""
    from marshmallow import ValidationError

    from engage.config import _list

    data = {k: v for k, v in options.items()
            if v is not None and k not in {"choices", "reason_choice", "reasons", "feeds",
                                           "no_feeds"}}
    if options["feeds"] or options["no_feeds"]:
        data["feeds"] = list(options["feeds"])
    if "origins" in data:
        data["origins"] = _list(data["origins"])
    if options["choices"] is not None:
        data["reactions"] = {"choices": _list(options["choices"]),
                             "reason_choice": options["reason_choice"],
                             "reasons": _list(options["reasons"] or "")}
    try:
        loaded: dict[str, Any] = schema.load(data)
    except ValidationError as exc:
        raise click.UsageError(str(exc.normalized_messages())) from None
    return loaded


@site.command("create")
@click.argument("name")
@_site_options
def site_create(name: str, **options: Any) -> None:
    """Define a site; values left out are the default site's settings."""
    import json

    from engage import errors, schemas
    from engage.store import sites

    data = _site_values({"name": name, **options}, schemas.SiteInSchema())
    with _store() as store:
        try:
            click.echo(json.dumps(sites.create(store, data)))
        except errors.IdTaken:
            raise click.ClickException(f"a site {name} exists; use `engage site update`") from None


@site.command("update")
@click.argument("name")
@_site_options
def site_update(name: str, **options: Any) -> None:
    """Change some of a site's values; the others are kept."""
    import json

    from engage import errors, schemas
    from engage.store import sites

    data = _site_values(options, schemas.SiteChangesSchema())
    with _store() as store:
        try:
            click.echo(json.dumps(sites.update(store, name, data)))
        except errors.UnknownSite:
            raise click.ClickException(f"no site {name}") from None


@site.command("list")
def site_list() -> None:
    """Every site, one JSON object a line, the default first."""
    import json

    from engage.store import sites

    with _store() as store:
        for found in sites.listing(store).values():
            click.echo(json.dumps(found))


@main.command()
@click.option("--consumer", default="worker-1", envvar="ENGAGE_WORKER_NAME", show_default=True,
              help="Consumer name in the stream groups; keep it stable across restarts.")
@click.option("--metrics-port", default=None, type=int, envvar="ENGAGE_WORKER_METRICS_PORT",
              help="Port of the worker's /metrics (default 9102; 0 turns it off).")
@click.option("--metrics-host", default=None, envvar="ENGAGE_WORKER_METRICS_HOST",
              help="Address of the worker's /metrics (default 127.0.0.1).")
def worker(consumer: str, metrics_port: int | None, metrics_host: str | None) -> None:
    """Deliver events to webhooks (signed, retried with backoff, dead-lettered), verify
    publisher pages of new articles and poll the sites' feeds."""
    import signal
    import threading

    # The worker is one process with its own /metrics; never share the server's files.
    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    from engage import metrics
    from engage.feeds import start_feeds
    from engage.pages import start_pages
    from engage.store import get_store
    from engage.worker import Worker, start_aggregates

    app = _app()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with app.app_context():
        port = app.config["WORKER_METRICS_PORT"] if metrics_port is None else metrics_port
        host = app.config["WORKER_METRICS_HOST"] if metrics_host is None else metrics_host
        if port:
            metrics.serve_worker_metrics(host, port)
        click.echo(f"engage worker {consumer} (metrics on {host}:{port})" if port else
                   f"engage worker {consumer}", err=True)
        aggregates_thread, _ = start_aggregates(get_store(), stop)
        pages_thread, _ = start_pages(get_store(), stop)
        feeds_thread, _ = start_feeds(get_store(), stop)
        Worker(get_store(), consumer).run(stop)
        aggregates_thread.join(timeout=5)
        pages_thread.join(timeout=5)
        feeds_thread.join(timeout=5)


@main.group()
def stats() -> None:
    """The cross-article aggregates behind rankings, sections and site totals."""


@stats.command("rebuild")
def stats_rebuild() -> None:
    """Recompute the aggregates from the event streams, and the article search index
    (idempotent; for upgrades and repairs). Running workers carry on from the rebuilt
    state."""
    from engage.store import aggregates, articles

    with _store() as store:
        replayed = aggregates.rebuild(store)
        indexed = articles.reindex(store)
    click.echo(f"aggregates rebuilt from {replayed} events; {indexed} articles indexed")


def _millis(value: str | None, option: str) -> int | None:
    if not value:
        return None
    from datetime import UTC, datetime

    try:
        when = datetime.fromisoformat(value)
    except ValueError as exc:
        raise click.BadParameter(f"not an ISO 8601 time: {value}", param_hint=option) from exc
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1000)


@main.command("export")
@click.option("--format", "fmt", type=click.Choice(["csv", "ndjson"]), default="ndjson",
              show_default=True)
@click.option("--since", default=None, help="ISO 8601 start (UTC when no offset).")
@click.option("--until", default=None, help="ISO 8601 end, inclusive.")
@click.option("--type", "types", multiple=True, help="Event type or family; repeatable.")
@click.option("--article", default=None, help="One article and its polls.")
def export(fmt: str, since: str | None, until: str | None, types: tuple[str, ...],
           article: str | None) -> None:
    """Write every recorded event to stdout, oldest first, in constant memory."""
    from engage.api.stats import export_chunks
    from engage.store import events

    since_ms, until_ms = _millis(since, "--since"), _millis(until, "--until")
    with _store() as store:
        found = events.iter_events(store, since_ms=since_ms, until_ms=until_ms,
                                   types=types, article=article)
        for chunk in export_chunks(found, fmt):
            click.echo(chunk, nl=False)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
