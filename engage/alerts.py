"""Alerts and the daily digest: `engage worker` judges the rules, queues what changed and
delivers it by email (SMTP), to the webhooks that take `alert.*`, and to Slack-compatible
incoming webhooks (docs/alerts.md).

Each pass (`Alerter.step`, every ALERT_INTERVAL seconds) reads every rule and finds the
articles (or polls) for which its condition holds now. One it did not fire for yet
fires: the state change and its note are one script call (store/alerts.py), so it fires
once however many workers look and whatever the process does next. One it fires for whose
condition no longer holds is resolved, with a note too. Notes are delivered from the
pending set: each channel once it succeeded (written back at once), a failure retried
with the webhooks' backoff, then given up and counted.

Windows are whole UTC hours, as the stats buckets are: a 1-hour window is the current
clock hour, a 3-hour one that and the two before it; so a window "clears" when its
oldest hour leaves it.
"""

from __future__ import annotations

import json
import logging
import secrets
import smtplib
import ssl
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from jinja2 import Environment, PackageLoader, select_autoescape

from engage import errors, metrics
from engage.formulas import approval, percentages, trending_score, wilson_lower, wilson_upper
from engage.store import UNAVAILABLE, Store, articles, polls, sites, stats, webhooks
from engage.store import alerts as alert_store
from engage.timerange import DAY, HOUR, Range, floor

if TYPE_CHECKING:
    from engage.worker import Worker

log = logging.getLogger("engage.alerts")

RESOLVES = frozenset({"reason_spike", "approval_drop", "surge", "refused"})
NOTE_BATCH = 20
DIGEST_TOP = 5

_templates = Environment(loader=PackageLoader("engage", "web/templates"),
                         autoescape=select_autoescape(["html"]), trim_blocks=True,
                         lstrip_blocks=True)


# -- rules and sites ----------------------------------------------------------------------
def check_rule_site(store: Store, rule: dict[str, Any], scope: list[str] | None) -> None:
    """A rule staff who see `scope` (None: every site) may save: its site known and one of
    theirs (a rule on every site, `null`, only for those who see every site), its article
    on that site. Raises ValidationFailed or Forbidden."""
    site = rule.get("site")
    if site is not None and site not in sites.listing(store):
        raise errors.ValidationFailed(fields={"site": ["No such site."]})
    if scope is not None and site not in scope:
        raise errors.Forbidden("Your rules watch your sites only: name one of "
                               + ", ".join(scope) + ".")
    article = rule.get("article")
    if site is not None and article and sites.of_articles(store, [article])[article] not in (
            None, site):
        raise errors.ValidationFailed(fields={"article": ["This article is on another site."]})


def visible_rules(rules: list[dict[str, Any]], scope: list[str] | None) -> list[dict[str, Any]]:
    """The rules staff who see `scope` may see: those watching one of their sites."""
    return rules if scope is None else [r for r in rules if r.get("site") in scope]


def dashboard_url(config: dict[str, Any], path: str) -> str:
    """An absolute link under ENGAGE_PUBLIC_URL; only the path without it."""
    return (config.get("PUBLIC_URL") or "").rstrip("/") + "/dashboard" + path


def _percent(share: float | None) -> str:
    return "n/a" if share is None else f"{share * 100:.1f} %"


def _titles(store: Store, article_ids: Iterable[str]) -> dict[str, str]:
    """Each article's title; its id when it has none or is gone."""
    ids = sorted(set(article_ids))
    found = articles.get_many(store, ids)
    return {a: (found.get(a) or {}).get("title") or a for a in ids}


# -- conditions: subject -> the figures that make it true -------------------------------
Found = dict[str, dict[str, Any]]


def _window_sums(store: Store, rule: dict[str, Any], now: datetime) -> dict[str, Counter[str]]:
    """The window's bucket sums of the rule's article, or of every article with votes or
    link activity in the window."""
    window = Range(floor(now, "hour") - HOUR * (rule["window_hours"] - 1), now, "hour")
    if rule.get("article"):
        ids = [rule["article"]]
    else:
        active = stats.in_range(store, window, every_site=True)
        ids = sorted(set(active.counts) | set(active.links))
    return stats.bucket_sums(store, ids, window.segments())


def reason_spike(store: Store, rule: dict[str, Any], now: datetime) -> Found:
    field = "reason:" + rule["reason"]
    return {
        article_id: {"reason": rule["reason"], "count": fields[field],
                     "threshold": rule["threshold"], "window_hours": rule["window_hours"]}
        for article_id, fields in _window_sums(store, rule, now).items()
        if fields[field] >= rule["threshold"]
    }


def approval_drop(store: Store, rule: dict[str, Any], now: datetime) -> Found:
    sums = _window_sums(store, rule, now)
    found: Found = {}
    for row in stats.figures(store, list(sums), now):
        article_id, counts, fields = row["id"], row["counts"], sums[row["id"]]
        first = next(iter(counts))  # the article's approving choice
        before = {c: max(0, n - fields["+" + c] + fields["-" + c]) for c, n in counts.items()}
        total, total_before = sum(counts.values()), sum(before.values())
        now_share = approval(counts[first], total)
        then_share = approval(before[first], total_before)
        if total < rule["threshold"] or now_share is None or then_share is None:
            continue
        drop = (then_share - now_share) * 100
        if drop >= rule["points"]:
            found[article_id] = {"approval_before": round(then_share * 100, 1),
                                 "approval_now": round(now_share * 100, 1),
                                 "drop_points": round(drop, 1), "votes": total,
                                 "window_hours": rule["window_hours"]}
    return found


def surge(store: Store, rule: dict[str, Any], now: datetime) -> Found:
    if rule.get("article"):  # the article page's read of one article's trending
        [row] = stats.figures(store, [rule["article"]], now)
        trending = row["trending"]
        trend = {row["id"]: (trending["last_hour"], trending["hourly_average"])}
    else:
        trend = {a: moving for site in sites.listing(store)
                 for a, moving in stats.trend_inputs(store, now, site).items()}
    found: Found = {}
    for article_id, (recent, baseline) in trend.items():
        score = trending_score(recent, baseline)
        if score >= rule["factor"] and recent >= rule["threshold"]:
            found[article_id] = {"trending": round(score, 2), "last_hour": round(recent, 1),
                                 "hourly_average": round(baseline, 2), "factor": rule["factor"]}
    return found


def refused(store: Store, rule: dict[str, Any], now: datetime) -> Found:
    found: Found = {}
    for article_id, fields in _window_sums(store, rule, now).items():
        kinds = {k.removeprefix("refused:"): n for k, n in fields.items()
                 if k.startswith("refused:") and n}
        if sum(kinds.values()) >= rule["threshold"]:
            found[article_id] = {"refused": sum(kinds.values()), "by_kind": kinds,
                                 "window_hours": rule["window_hours"]}
    return found


def _results(poll: polls.Poll) -> list[dict[str, Any]]:
    shares = percentages(poll.counts)
    return [{"label": o["label"], "votes": poll.counts[o["id"]], "percent": shares[o["id"]]}
            for o in poll.options]


def poll_milestone(store: Store, rule: dict[str, Any], now: datetime) -> Found:
    ids = [rule["poll"]] if rule.get("poll") else polls.ids(store)
    return {
        poll_id: {"question": poll.question, "answers": poll.voters, "status": poll.status,
                  "article": poll.article, "results": _results(poll)}
        for poll_id, poll in polls.get_many(store, ids, None, now).items()
        if poll.voters >= rule["threshold"] or (rule.get("on_close") and poll.closed)
    }


CHECKS = {"reason_spike": reason_spike, "approval_drop": approval_drop, "surge": surge,
          "refused": refused, "poll_milestone": poll_milestone}


# -- what a note says -------------------------------------------------------------------
def _figures_line(kind: str, figures: dict[str, Any]) -> str:
    if kind == "reason_spike":
        return (f"{figures['count']} \"no\" votes giving \"{figures['reason']}\" in "
                f"{figures['window_hours']} h (rule: at least {figures['threshold']})")
    if kind == "approval_drop":
        return (f"approval {figures['approval_before']} % -> {figures['approval_now']} % "
                f"(-{figures['drop_points']} points in {figures['window_hours']} h, "
                f"{figures['votes']} votes)")
    if kind == "surge":
        return (f"trending {figures['trending']}x (rule: {figures['factor']}x): "
                f"{figures['last_hour']} votes in the last hour, "
                f"{figures['hourly_average']} an hour before")
    if kind == "refused":
        parts = ", ".join(f"{k} {n}" for k, n in sorted(figures["by_kind"].items()))
        return f"{figures['refused']} refused in {figures['window_hours']} h ({parts})"
    results = "; ".join(f"{r['label']}: {r['votes']} ({r['percent']} %)"
                        for r in figures["results"])
    return f"{figures['answers']} answers, {figures['status']}: {results}"


def note_text(note: dict[str, Any]) -> str:
    rule = note["rule"]
    head = "Resolved" if note["status"] == "resolved" else "Alert"
    lines = [f"{head}: {rule['name']} ({rule['kind'].replace('_', ' ')})",
             f"{note['title']}",
             _figures_line(rule["kind"], note["figures"]),
             f"Dashboard: {note['link']}"]
    if note["status"] == "resolved":
        lines.insert(2, "The condition no longer holds. When it fired:")
    return "\n".join(lines)


# -- digest -------------------------------------------------------------------------------
def digest_figures(store: Store, day: date, zone: ZoneInfo,
                   site: str | None = None) -> dict[str, Any]:
    """Yesterday's figures for the digest: `day` in `zone`, read from the buckets (whole
    hours, so a zone 30 minutes off UTC is read to the hour); with `site`, that site's
    articles and their polls only."""
    since = floor(datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC), "hour")
    until = floor((datetime(day.year, day.month, day.day, tzinfo=zone) + DAY).astimezone(UTC),
                  "hour")
    # A range holds the bucket its end falls in: the day's last hour, not the next one's.
    window = Range(since, until - HOUR, "hour")
    in_range = stats.in_range(store, window, every_site=True)
    voted, links = sorted(in_range.counts), in_range.links
    closed = _polls_closed(store, since, until)
    if site is not None:
        owners: dict[str | None, str | None] = {None: store.config["DEFAULT_SITE"]}
        owners.update(sites.of_articles(store, sorted(
            {*voted, *links, *(p["article"] for p in closed if p["article"])})))
        voted = [a for a in voted if owners[a] == site]
        links = {a: figures for a, figures in links.items() if owners[a] == site}
        closed = [p for p in closed if owners[p["article"] or None] == site]
    rows: list[dict[str, Any]] = []
    for article_id in voted:
        got, first = in_range.counts[article_id], in_range.approving[article_id]
        total = sum(got.values())
        if total:
            rows.append({"id": article_id, "counts": got, "total": total,
                         "approval": approval(got[first], total),
                         "lower": wilson_lower(got[first], total),
                         "upper": wilson_upper(got[first], total)})
    best = sorted(rows, key=lambda r: (-r["lower"], -r["total"], r["id"]))[:DIGEST_TOP]
    worst = sorted(rows, key=lambda r: (r["upper"], -r["total"], r["id"]))[:DIGEST_TOP]
    sums = stats.bucket_sums(store, voted, window.segments())
    reasons: dict[str, Counter[str]] = {}
    for article_id, fields in sums.items():
        for field, n in fields.items():
            if field.startswith("reason:") and n > 0:
                reasons.setdefault(field.removeprefix("reason:"), Counter())[article_id] += n
    top_reasons: list[dict[str, Any]] = sorted(
        ({"reason": r, "count": sum(c.values()),
          "articles": sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))[:3]}
         for r, c in reasons.items()),
        key=lambda r: (-r["count"], r["reason"]))
    clicked = sorted(((a, c, i) for a, (c, i) in links.items() if c or i),
                     key=lambda x: (-x[1], x[0]))[:DIGEST_TOP]
    clicks, imps = sum(c for c, _ in links.values()), sum(i for _, i in links.values())
    named: set[str] = {r["id"] for r in best + worst} | {a for c in reasons.values() for a in c}
    titles = _titles(store, named | {a for a, _, _ in clicked} |
                     {p["article"] for p in closed if p["article"]})
    return {
        "day": day.isoformat(), "site": site, "since": stats.iso(since),
        "until": stats.iso(until),
        "votes": sum(r["total"] for r in rows), "articles": len(rows),
        "best": best, "worst": worst, "reasons": top_reasons, "polls": closed,
        "links": [{"id": a, "clicks": c, "impressions": i, "ctr": c / i if i else None}
                  for a, c, i in clicked],
        "clicks": clicks, "impressions": imps, "ctr": clicks / imps if imps else None,
        "titles": titles,
    }


def _polls_closed(store: Store, since: datetime, until: datetime) -> list[dict[str, Any]]:
    """Polls that closed in the range (by an editor: when last updated; by a deadline:
    its closes_at), with their results."""
    out: list[dict[str, Any]] = []
    for poll in polls.get_many(store, polls.ids(store), None, until).values():
        if not poll.closed:
            continue
        closes = datetime.fromisoformat(poll.closes_at) if poll.closes_at else None
        when = closes if closes is not None and closes <= until else (
            datetime.fromisoformat(poll.updated_at) if poll.updated_at else None)
        if when is None or not since <= when < until:
            continue
        out.append({"id": poll.id, "question": poll.question, "article": poll.article,
                    "answers": poll.voters, "results": _results(poll)})
    return sorted(out, key=lambda p: (-p["answers"], p["id"]))


def render_digest(config: dict[str, Any], figures: dict[str, Any]) -> tuple[str, str, str]:
    """Subject, plain text and HTML of a digest (the same figures in both parts)."""
    context = {**figures, "percent": _percent,
               "link": lambda a: dashboard_url(config, f"/articles/{a}")}
    subject = f"engage digest for {figures['day']}" + (
        f" ({figures['site']})" if figures.get("site") else "")
    return (subject, _templates.get_template("digest.txt").render(**context),
            _templates.get_template("digest.html").render(subject=subject, **context))


# -- delivery -----------------------------------------------------------------------------
def send_email(config: dict[str, Any], sender: str, to: list[str], subject: str, text: str,
               html: str | None = None) -> str | None:
    """Hand one email to ENGAGE_SMTP_URL; None when accepted, else a short reason."""
    url = config.get("SMTP_URL")
    if not url:
        return "no ENGAGE_SMTP_URL"
    parts = urllib.parse.urlsplit(url)
    message = EmailMessage()
    message["Subject"], message["From"], message["To"] = subject, sender, ", ".join(to)
    message.set_content(text)
    if html is not None:
        message.add_alternative(html, subtype="html")
    timeout = float(config["SMTP_TIMEOUT"])
    # Named, not looked up: smtplib would ask the resolver for this host's own name.
    me = urllib.parse.urlsplit(config.get("PUBLIC_URL") or "").hostname or "localhost"
    try:
        if parts.scheme == "smtps":
            client: smtplib.SMTP = smtplib.SMTP_SSL(parts.hostname or "", parts.port or 465,
                                                    local_hostname=me, timeout=timeout)
        else:
            client = smtplib.SMTP(parts.hostname or "", parts.port or 25, local_hostname=me,
                                  timeout=timeout)
        with client:
            client.ehlo()
            if parts.scheme == "smtp" and client.has_extn("starttls"):
                client.starttls(context=ssl.create_default_context())
                client.ehlo()
            if parts.username:
                client.login(urllib.parse.unquote(parts.username),
                             urllib.parse.unquote(parts.password or ""))
            client.send_message(message)
    except (OSError, smtplib.SMTPException) as exc:
        return type(exc).__name__
    return None


class Alerter:
    """The worker's alert job: judge the rules, send the digest when due, deliver notes."""

    def __init__(self, store: Store, worker: Worker) -> None:
        self.store = store
        self.config = store.config
        self.worker = worker
        self.interval = float(self.config["ALERT_INTERVAL"])
        self.judged_at = float("-inf")
        # Long enough for every channel of one note to time out once.
        self.lease = float(self.config["SMTP_TIMEOUT"]) + 2 * worker.timeout + 5

    def step(self) -> int:
        """Judge the rules when due, then deliver due notes; returns the notes handled."""
        if time.monotonic() - self.judged_at >= self.interval:
            self.judged_at = time.monotonic()
            now = self.store.now().replace(microsecond=0)  # notes show it to the second
            for rule in alert_store.list_rules(self.store):
                if rule.get("enabled", True):
                    self._guarded(f"rule {rule['id']}", self.judge, rule, now)
            self._guarded("digest", self.digest, now)
        # One note per claim: a lease covers one note's channels, not a batch's.
        handled = 0
        while handled < NOTE_BATCH and (notes := alert_store.claim_due(
                self.store, time.time(), time.time() + self.lease, 1)):
            self.deliver(notes[0])
            handled += 1
        return handled

    @staticmethod
    def _guarded(what: str, job: Any, *args: Any) -> Any:
        """One rule's (or the digest's) failure is logged, not the end of the worker,
        which goes on with the others and webhooks; a Redis outage is the worker's."""
        try:
            return job(*args)
        except UNAVAILABLE:
            raise
        except Exception as exc:
            log.exception("alerts: %s failed", what)
            return type(exc).__name__

    # -- judging ----------------------------------------------------------------------
    def judge(self, rule: dict[str, Any], now: datetime) -> None:
        holds = CHECKS[rule["kind"]](self.store, rule, now)
        if rule.get("site"):
            holds = self._on_site(rule, holds)
        was = alert_store.firing(self.store, rule["id"])
        fresh = {s: f for s, f in holds.items() if s not in was}
        cleared = {s: st["figures"] for s, st in was.items() if s not in holds}
        if rule["kind"] not in RESOLVES:
            cleared = {}
        if not fresh and not cleared:
            return
        titles = _titles(self.store, [self._article(rule, s, f) or s
                                      for s, f in {**fresh, **cleared}.items()])
        for subject, figures in fresh.items():
            if self._queue(rule, subject, figures, titles, now, fire=True):
                metrics.worker_families().alerts_fired.labels(kind=rule["kind"]).inc()
        for subject, figures in cleared.items():
            self._queue(rule, subject, figures, titles, now, fire=False)

    def _on_site(self, rule: dict[str, Any], holds: Found) -> Found:
        """What holds on the rule's site: its articles, and its polls' (a poll of no
        article is the default site's)."""
        of = {s: self._article(rule, s, f) for s, f in holds.items()}
        owners: dict[str | None, str | None] = {None: self.config["DEFAULT_SITE"]}
        owners.update(sites.of_articles(self.store, [a for a in of.values() if a]))
        return {s: f for s, f in holds.items() if owners[of[s]] == rule["site"]}

    @staticmethod
    def _article(rule: dict[str, Any], subject: str, figures: dict[str, Any]) -> str | None:
        return figures.get("article") if rule["kind"] == "poll_milestone" else subject

    def _queue(self, rule: dict[str, Any], subject: str, figures: dict[str, Any],
               titles: dict[str, str], now: datetime, fire: bool) -> bool:
        article = self._article(rule, subject, figures)
        if rule["kind"] == "poll_milestone":
            title = f"Poll: {figures['question']}"
            if article:
                title += f" (on \"{titles.get(article, article)}\")"
        else:
            title = titles.get(subject, subject)
        channels = [c for c, on in (("email", bool(rule.get("email_to"))),
                                    ("webhook", bool(rule.get("webhook"))),
                                    ("slack", bool(rule.get("slack_url")))) if on]
        note = {
            "id": "al_" + secrets.token_hex(8), "status": "fired" if fire else "resolved",
            "rule": {k: rule.get(k) for k in ("id", "name", "kind", "email_to", "email_from",
                                               "slack_url")},
            "subject": subject, "article": article, "title": title, "figures": figures,
            "at": stats.iso(now), "channels": channels, "attempts": 0,
            "link": dashboard_url(self.config, f"/articles/{article}" if article else "/polls"),
        }
        return alert_store.transition(self.store, f"{rule['id']}|{subject}", fire,
                                      {"at": stats.iso(now), "figures": figures}, note, time.time())

    def digest(self, now: datetime) -> None:
        """Queue yesterday's digest of each site that names recipients (the default site:
        DIGEST_TO unless it names its own) once the local digest time has passed, once a
        day each. With one site, its digest covers every article, as before sites."""
        at = self.config["DIGEST_TIME"]
        if not at:
            return
        zone = ZoneInfo(self.config["DIGEST_TIMEZONE"])
        local = now.astimezone(zone)
        if local.strftime("%H:%M") < at:
            return
        day = local.date() - timedelta(days=1)
        listed = sites.listing(self.store)
        default = self.config["DEFAULT_SITE"]
        for name, site in listed.items():
            to = site.get("digest_to") or (self.config["DIGEST_TO"] if name == default else [])
            # The default site's keeps the field and id it had before sites.
            own = "" if name == default else f"{name}|"
            field = f"digest|{own}{day.isoformat()}"
            if not to or alert_store.has_state(self.store, field):
                continue
            figures = digest_figures(self.store, day, zone, name if len(listed) > 1 else None)
            subject, text, html = render_digest(self.config, figures)
            note = {"id": "dg_" + own.replace("|", "_") + day.strftime("%Y%m%d"),
                    "status": "digest", "subject": subject, "text": text, "html": html,
                    "to": list(to), "channels": ["email"], "attempts": 0}
            if alert_store.transition(self.store, field, True, {"at": stats.iso(now)}, note,
                                      time.time()):
                metrics.worker_families().alerts_fired.labels(kind="digest").inc()

    # -- delivering -------------------------------------------------------------------
    def deliver(self, note: dict[str, Any]) -> None:
        for channel in list(note["channels"]):
            error = self._guarded(f"{channel} of {note['id']}", getattr(self, "_" + channel), note)
            if error is not None:
                metrics.worker_families().alert_failures.labels(channel=channel).inc()
                log.warning("alert %s by %s failed: %s", note["id"], channel, error)
                continue
            note["channels"].remove(channel)
            if note["channels"]:
                alert_store.save_note(self.store, note)  # at once: a restart must not resend it
        if not note["channels"]:
            alert_store.finish(self.store, note["id"])
            return
        note["attempts"] += 1
        if note["attempts"] >= self.worker.max_attempts:
            log.warning("alert %s given up: %s left", note["id"], ",".join(note["channels"]))
            alert_store.finish(self.store, note["id"])
            return
        alert_store.save_note(self.store, note, time.time() + self.worker.backoff(note["attempts"]))

    def _email(self, note: dict[str, Any]) -> str | None:
        if note["status"] == "digest":
            return send_email(self.config, self.config["MAIL_FROM"], note["to"],
                              note["subject"], note["text"], note["html"])
        rule = note["rule"]
        head = "Resolved" if note["status"] == "resolved" else "Alert"
        return send_email(self.config, rule.get("email_from") or self.config["MAIL_FROM"],
                          rule["email_to"], f"[engage] {head}: {rule['name']} - {note['title']}",
                          note_text(note))

    def _webhook(self, note: dict[str, Any]) -> str | None:
        """Queued as the webhooks' test event is, due now: the worker's retries send it in
        this pass, signed, and retry or dead-letter it as any delivery."""
        rule, kind = note["rule"], f"alert.{note['status']}"
        data = {"alert": note["id"], "rule": rule["id"], "rule_name": rule["name"],
                "kind": rule["kind"], "subject": note["subject"], "article": note["article"],
                "title": note["title"], "figures": note["figures"],
                "dashboard_url": note["link"], "text": note_text(note)}
        hooks = webhooks.list_all(self.store)
        site = rule.get("site")
        if site is None and note.get("article") and any(h.get("site") for h in hooks):
            site = sites.of_articles(self.store, [note["article"]])[note["article"]]
        for hook in hooks:
            # A webhook bound to a site hears of that site's alerts only.
            if hook.get("site") and hook["site"] != site:
                continue
            if webhooks.matches(hook["events"], kind):
                event = {"id": f"{hook['id']}:alert:{note['id']}", "type": kind,
                         "occurred_at": note["at"], "data": data}
                webhooks.schedule_retry(self.store, webhooks.delivery(hook["id"], event),
                                        time.time())
        return None

    def _slack(self, note: dict[str, Any]) -> str | None:
        body = json.dumps({"text": note_text(note)}).encode()
        return self.worker.send(note["rule"]["slack_url"], body,
                                {"Content-Type": "application/json"}, self.worker.timeout)
