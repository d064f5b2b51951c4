"""Alerts and the daily digest: rules through the API and the dashboard, firing once per
condition with a "resolved" note, delivery by a real SMTP server and the webhook
receiver, a worker killed before delivering, and a digest checked against the events."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from flask.testing import FlaskClient

from engage import metrics
from engage.alerts import CHECKS
from engage.formulas import approval, wilson_lower, wilson_upper
from engage.schemas import ALERT_KINDS
from engage.store import alerts as alert_store
from engage.store import tokens, webhooks
from engage.timerange import floor
from engage.worker import Worker
from tests.conftest import ARTICLE, Clock, make_app
from tests.desk import Desk, field_error
from tests.redis_server import RedisServer, free_port
from tests.smtp_server import MailServer, parts
from tests.test_webhooks import SECRET, mint, put_article, register, start_worker
from tests.webhook_receiver import Receiver, signature_ok

pytestmark = pytest.mark.usefixtures("loopback_only")

PUBLIC = "https://engage.example.test"
RULE = {"name": "Inaccurate spike", "kind": "reason_spike", "reason": "inaccurate",
        "threshold": 5, "window_hours": 1, "email_to": ["desk@example.test"], "webhook": True}


@pytest.fixture
def mail() -> Iterator[MailServer]:
    with MailServer() as server:
        yield server


@pytest.fixture
def app_config(mail: MailServer) -> dict[str, Any]:
    return {
        "SMTP_URL": mail.url,
        "SMTP_TIMEOUT": 5.0,
        "PUBLIC_URL": PUBLIC,
        "ALERT_INTERVAL": 0.0,
        "THROTTLE_VOTES": 100_000,
        "WEBHOOK_ALLOW_PRIVATE": True,  # the receiver listens on 127.0.0.1
        "WEBHOOK_TIMEOUT": 2.0,
        "WEBHOOK_RETRY_BASE": 0.02,
    }


def create_rule(client: FlaskClient, headers: dict[str, str], **changes: Any) -> dict[str, Any]:
    response = client.post("/api/v1/alert-rules", json={**RULE, **changes}, headers=headers)
    assert response.status_code == 201, response.json
    return dict(response.json)


def react(client: FlaskClient, article_id: str, reader: str, choice: str = "no",
          reason: str | None = "inaccurate") -> None:
    body: dict[str, Any] = {"choice": choice}
    if reason and choice == "no":
        body["reason"] = reason
    response = client.put(f"/api/v1/articles/{article_id}/reactions/mine", json=body,
                          headers={"X-Engage-Reader": reader})
    assert response.status_code == 200, response.json


def pending(store: Any) -> int:
    """Notes queued and not yet delivered or given up."""
    return int(store.redis.zcard(store.keys.alerts("due")))


def subject(message: Any) -> str:
    return " ".join(str(message["Subject"]).split())  # unfolded


def fired(kind: str) -> float:
    value = metrics.worker_registry().get_sample_value("engage_alerts_fired_total",
                                                       {"kind": kind})
    return value or 0.0


# -- the acceptance rule ------------------------------------------------------------------
def test_five_inaccurate_in_an_hour_fire_once_then_resolve(
    app: Flask, client: FlaskClient, admin: dict[str, str], editor: dict[str, str],
    store: Any, clock: Clock, catch_up: Any, mail: MailServer, desk: Desk,
) -> None:
    clock.set(floor(clock(), "hour") + timedelta(minutes=10))
    before = fired("reason_spike")
    with Receiver() as receiver, Receiver() as slack:
        register(client, admin, receiver.url, ["alert.*"])
        put_article(client, editor, "spiky")
        rule = create_rule(client, editor, article="spiky", slack_url=slack.url)
        worker = Worker(store, "test")
        readers = [mint(app) for _ in range(25)]
        for reader in readers[:4]:
            react(client, "spiky", reader)
        react(client, "spiky", readers[24], reason="outdated")  # another reason: not counted
        catch_up()
        worker.step()
        assert mail.received() == [] and receiver.requests == []

        react(client, "spiky", readers[4])  # the 5th
        catch_up()
        worker.step()  # one pass of the worker delivers it
        [message] = mail.received()
        [hook] = receiver.delivered_bodies()
        text, _ = parts(message)
        title = "China and South Korea enter a new phase"
        assert subject(message) == f"[engage] Alert: Inaccurate spike - {title}"
        assert mail.recipients == [["desk@example.test"]]
        assert '5 "no" votes giving "inaccurate" in 1 h' in text
        link = f"{PUBLIC}/dashboard/articles/spiky"
        assert f"Dashboard: {link}" in text
        page = desk.get(urllib.parse.urlsplit(link).path)  # the link works, signed in
        assert page.status_code == 200 and title in page.get_data(as_text=True)
        assert hook["type"] == "alert.fired"
        assert hook["data"]["title"] == title and hook["data"]["rule"] == rule["id"]
        assert hook["data"]["figures"]["count"] == 5
        assert hook["data"]["dashboard_url"] == link
        assert signature_ok(SECRET, receiver.delivered[0])
        [posted] = slack.delivered_bodies()
        assert list(posted) == ["text"]
        assert posted["text"].splitlines() == text.strip().splitlines()
        assert fired("reason_spike") == before + 1

        for reader in readers[5:24]:  # 19 more, and a 20th from a changed vote
            react(client, "spiky", reader)
        react(client, "spiky", readers[24])
        catch_up()
        for _ in range(3):
            worker.step()
        assert len(mail.received()) == 1 and len(receiver.delivered) == 1
        assert len(slack.delivered) == 1

        clock.advance(3600)  # the hour the votes fell in has left the window
        catch_up()
        worker.step()
        worker.step()
        assert len(mail.received()) == 2 and len(receiver.delivered) == 2
        resolved = mail.received()[1]
        assert subject(resolved) == f"[engage] Resolved: Inaccurate spike - {title}"
        assert "no longer holds" in parts(resolved)[0]
        assert receiver.delivered_bodies()[1]["type"] == "alert.resolved"
        assert slack.delivered_bodies()[1]["text"].startswith("Resolved: Inaccurate spike")
        assert alert_store.firing(store, rule["id"]) == {}
        assert pending(store) == 0
        assert fired("reason_spike") == before + 1


def test_other_kinds_fire_on_their_figures(
    app: Flask, client: FlaskClient, editor: dict[str, str], store: Any, clock: Clock,
    catch_up: Any, mail: MailServer,
) -> None:
    """An approval drop, refused activity and a poll milestone, each once, by email."""
    clock.set(floor(clock(), "hour") + timedelta(minutes=5))
    put_article(client, editor, "falling")
    readers = [mint(app) for _ in range(12)]
    for reader in readers[:10]:
        react(client, "falling", reader, "yes")
    clock.advance(3600)  # a new hour: the drop is measured within it
    poll = client.post("/api/v1/polls", json={"question": "Agree?", "options": ["Yes", "No"],
                                              "article": "falling"}, headers=editor)
    assert poll.status_code == 201, poll.json
    create_rule(client, editor, name="Drop", kind="approval_drop", reason=None, points=20,
                threshold=10)
    create_rule(client, editor, name="Refused", kind="refused", reason=None, threshold=3)
    create_rule(client, editor, name="Poll", kind="poll_milestone", reason=None, threshold=2,
                poll=poll.json["id"])
    for reader in readers[:4]:  # 10 yes -> 6 yes 4 no: 100 % -> 60 %
        react(client, "falling", reader, "no", reason=None)
        react(client, "falling", reader, "no", reason=None)  # a repeat is refused (counted)
    for reader in readers[10:12]:
        response = client.put(f"/api/v1/polls/{poll.json['id']}/votes/mine",
                              json={"options": ["o1"]}, headers={"X-Engage-Reader": reader})
        assert response.status_code == 200, response.json
    catch_up()
    worker = Worker(store, "test")
    worker.step()
    worker.step()
    texts = {subject(m).split(": ", 1)[1].split(" - ")[0]: parts(m)[0] for m in mail.received()}
    assert sorted(texts) == ["Drop", "Poll", "Refused"], texts
    assert "approval 100.0 % -> 60.0 % (-40.0 points in 1 h, 10 votes)" in texts["Drop"]
    assert "4 refused in 1 h (votes_duplicate 4)" in texts["Refused"]
    assert "2 answers, open: Yes: 2 (100 %); No: 0 (0 %)" in texts["Poll"]
    assert 'Poll: Agree? (on "China and South Korea' in texts["Poll"]


def test_surge_fires_for_the_article_it_names_or_for_every_one(
    app: Flask, client: FlaskClient, editor: dict[str, str], store: Any, clock: Clock,
    catch_up: Any, mail: MailServer,
) -> None:
    """A surge rule on one article judges that one; a rule on every article finds each
    one trending above its factor, and not one moving at its usual pace."""
    now = floor(clock(), "hour") + timedelta(minutes=5)
    for article_id in ("rising", "other", "calm"):
        put_article(client, editor, article_id)
    clock.set(now - timedelta(hours=3))
    for _ in range(48):  # "calm" has 2 votes an hour on average over the day before
        react(client, "calm", mint(app), "yes")
    clock.set(now)
    for article_id in ("rising", "other", "calm"):
        for _ in range(5):
            react(client, article_id, mint(app), "yes")
    create_rule(client, editor, name="Rising", kind="surge", reason=None, factor=3,
                threshold=5, article="rising")
    create_rule(client, editor, name="Any", kind="surge", reason=None, factor=3, threshold=5)
    catch_up()
    worker = Worker(store, "test")
    worker.step()
    worker.step()
    got = sorted((subject(m).split(": ", 1)[1].split(" - ")[0],
                  parts(m)[0].split("/dashboard/articles/")[1].strip()) for m in mail.received())
    assert got == [("Any", "other"), ("Any", "rising"), ("Rising", "rising")], got
    assert ("trending 6.0x (rule: 3.0x): 5.0 votes in the last hour, 0.0 an hour before"
            in parts(mail.received()[0])[0])


def test_a_failed_channel_is_counted_and_retried_alone(
    app: Flask, client: FlaskClient, editor: dict[str, str], store: Any, clock: Clock,
    catch_up: Any, mail: MailServer,
) -> None:
    """Email fails while Slack takes it: Slack is not sent again when email is retried."""
    clock.set(floor(clock(), "hour") + timedelta(minutes=10))
    with Receiver() as slack:
        put_article(client, editor, "retried")
        create_rule(client, editor, article="retried", threshold=1, webhook=False,
                    slack_url=slack.url)
        react(client, "retried", mint(app))
        catch_up()
        failures = metrics.worker_registry().get_sample_value(
            "engage_alert_delivery_failures_total", {"channel": "email"}) or 0.0
        app.config["SMTP_URL"] = f"smtp://127.0.0.1:{free_port()}"  # nobody answers there
        worker = Worker(store, "test")
        worker.retry_base = 0.05
        worker.step()
        assert len(slack.delivered) == 1 and mail.received() == []
        assert metrics.worker_registry().get_sample_value(
            "engage_alert_delivery_failures_total", {"channel": "email"}) == failures + 1
        app.config["SMTP_URL"] = mail.url
        deadline = time.monotonic() + 10
        while pending(store):
            assert time.monotonic() < deadline
            worker.step()
            time.sleep(0.05)
        assert len(mail.received()) == 1 and len(slack.delivered) == 1


# -- rules through the API ----------------------------------------------------------------
def test_rule_api_validates_and_round_trips(
    client: FlaskClient, editor: dict[str, str], store: Any,
) -> None:
    assert sorted(CHECKS) == sorted(ALERT_KINDS)  # every kind the API takes is judged
    assert client.get("/api/v1/alert-rules").status_code == 401
    bad = [
        ({"kind": "meteor"}, "kind"),
        ({"reason": None}, "reason"),
        ({"reason": "boring"}, "reason"),
        ({"threshold": 0}, "threshold"),
        ({"threshold": "5"}, "threshold"),
        ({"window_hours": 169}, "window_hours"),
        ({"factor": 2.0}, "factor"),
        ({"site": "news"}, "site"),
        ({"email_to": ["not an address"]}, "email_to"),
        ({"slack_url": "ftp://example.com/x"}, "slack_url"),
        ({"kind": "poll_milestone", "reason": None, "article": "x"}, "article"),
        ({"kind": "approval_drop", "reason": None}, "points"),
        ({"email_to": [], "webhook": False}, "_schema"),
        ({"surprise": 1}, "surprise"),
    ]
    for change, field in bad:
        response = client.post("/api/v1/alert-rules", json={**RULE, **change}, headers=editor)
        assert response.status_code == 422, (change, response.json)
        assert field in response.json["error"]["fields"], (change, response.json)
    assert alert_store.list_rules(store) == []

    rule = create_rule(client, editor, slack_url="https://hooks.engage.test/slack")
    assert rule["site"] is None and rule["enabled"] is True
    listed = client.get("/api/v1/alert-rules", headers=editor).json["rules"]
    assert [r["id"] for r in listed] == [rule["id"]]
    changed = client.put(f"/api/v1/alert-rules/{rule['id']}",
                         json={**RULE, "name": "Renamed", "threshold": 9}, headers=editor)
    assert changed.status_code == 200, changed.json
    assert changed.json["name"] == "Renamed" and changed.json["created_at"] == rule["created_at"]
    assert client.put("/api/v1/alert-rules/nope", json=RULE, headers=editor).status_code == 404
    assert client.delete(f"/api/v1/alert-rules/{rule['id']}", headers=editor).status_code == 204
    assert client.delete(f"/api/v1/alert-rules/{rule['id']}", headers=editor).status_code == 404


def test_slack_address_must_be_public(redis_server: RedisServer, tmp_path: Path) -> None:
    app = make_app(redis_server.url, tmp_path)  # private destinations refused, the default
    with app.app_context():
        from engage.store import get_store, tokens

        token = tokens.create(get_store(), "editor", "t")[0]
    response = app.test_client().post(
        "/api/v1/alert-rules", json={**RULE, "slack_url": "http://127.0.0.1:9/hook"},
        headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 422
    assert "slack_url" in response.json["error"]["fields"]


# -- the dashboard form -------------------------------------------------------------------
FORM = {"name": "Spike", "kind": "reason_spike", "reason": "inaccurate", "threshold": "5",
        "window_hours": "1", "email_to": "desk@example.test, night@example.test",
        "webhook": "1", "enabled": "1"}


def test_rule_form_refuses_bad_input_with_field_messages(desk: Desk, store: Any) -> None:
    assert desk.get("/dashboard/alerts").status_code == 200
    bad = [
        ({"threshold": "many"}, "threshold"),
        ({"threshold": "-3"}, "threshold"),
        ({"window_hours": "0"}, "window_hours"),
        ({"reason": ""}, "reason"),
        ({"kind": "approval_drop", "reason": "", "points": "lots"}, "points"),
        ({"kind": "surge", "reason": "", "factor": "1"}, "factor"),
        ({"kind": "surge", "reason": "", "factor": "nan"}, "factor"),
        ({"email_to": "desk@", "webhook": ""}, "email_to"),
        ({"name": "   "}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"article": "bad id!"}, "article"),
        ({"slack_url": "javascript:alert(1)"}, "slack_url"),
        ({"kind": "nonsense"}, "kind"),
    ]
    for change, field in bad:
        data = {k: v for k, v in {**FORM, **change}.items() if v != ""}
        page = desk.post("/dashboard/alerts", data)
        assert page.status_code == 422, (change, page.status_code)
        assert field_error(page.get_data(as_text=True), field), change
    page = desk.post("/dashboard/alerts", {**{k: v for k, v in FORM.items() if k != "webhook"},
                                           "email_to": ""})
    assert page.status_code == 422 and "Choose where it goes" in page.get_data(as_text=True)
    assert alert_store.list_rules(store) == []

    assert desk.post("/dashboard/alerts", FORM).status_code == 201
    [rule] = alert_store.list_rules(store)
    assert rule["email_to"] == ["desk@example.test", "night@example.test"]
    edit = desk.get(f"/dashboard/alerts/{rule['id']}")
    assert edit.status_code == 200 and 'value="Spike"' in edit.get_data(as_text=True)
    refused = desk.post(f"/dashboard/alerts/{rule['id']}", {**FORM, "threshold": "0"})
    assert refused.status_code == 422 and field_error(refused.get_data(as_text=True), "threshold")
    assert desk.post(f"/dashboard/alerts/{rule['id']}", {**FORM, "name": "Renamed"}
                     ).status_code == 302
    assert alert_store.get_rule(store, rule["id"])["name"] == "Renamed"
    assert desk.post(f"/dashboard/alerts/{rule['id']}/delete", {}).status_code == 302
    assert desk.post(f"/dashboard/alerts/{rule['id']}/delete", {}).status_code == 404
    assert desk.get("/dashboard/alerts/unknown").status_code == 404


# -- the digest ---------------------------------------------------------------------------
BERLIN = ZoneInfo("Europe/Berlin")
# article -> (yes, no), and the reasons given with the "no" votes, in order
SEEDED = {
    "art-a": (9, 1, ["inaccurate"]),
    "art-b": (2, 0, []),
    "art-c": (30, 10, ["outdated"] * 6 + ["biased"] * 2),
    "art-d": (0, 2, ["inaccurate", "inaccurate"]),
    "art-e": (5, 15, ["inaccurate"] * 9 + ["outdated"] * 3),
    "art-f": (1, 9, ["biased"] * 4),
    "art-g": (3, 3, []),
}


def _expected(store: Any, since: datetime, until: datetime) -> dict[str, Any]:
    """The digest's rankings and reasons, recomputed from the event streams."""
    hours = set()
    at = since
    while at < until:
        hours.add(at.strftime("%Y%m%d%H"))
        at += timedelta(hours=1)
    net: dict[str, Counter[str]] = {}
    reasons: dict[str, Counter[str]] = {}
    for article_id in SEEDED:
        for _, fields in store.redis.xrange(store.keys.article_events(article_id)):
            if not fields["type"].startswith("reaction.") or fields["hour"] not in hours:
                continue
            counts = net.setdefault(article_id, Counter())
            if fields["choice"]:
                counts[fields["choice"]] += 1
            if fields["previous"]:
                counts[fields["previous"]] -= 1
            if fields["reason"]:
                reasons.setdefault(fields["reason"], Counter())[article_id] += 1
    rows = []
    for article_id, counts in net.items():
        yes, no = max(0, counts["yes"]), max(0, counts["no"])
        if yes + no:
            rows.append((article_id, yes, yes + no))
    best = sorted(rows, key=lambda r: (-wilson_lower(r[1], r[2]), -r[2], r[0]))[:5]
    worst = sorted(rows, key=lambda r: (wilson_upper(r[1], r[2]), -r[2], r[0]))[:5]
    return {"best": best, "worst": worst, "reasons": reasons}


CHROME = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
          "Chrome/120.0.0.0 Safari/537.36")


def new_poll(client: FlaskClient, editor: dict[str, str], question: str, article: str) -> str:
    response = client.post("/api/v1/polls", headers=editor, json={
        "question": question, "options": ["Yes", "No"], "article": article})
    assert response.status_code == 201, response.json
    return str(response.json["id"])


def test_digest_lists_yesterdays_best_worst_and_reasons(
    app: Flask, client: FlaskClient, editor: dict[str, str], store: Any, clock: Clock,
    catch_up: Any, mail: MailServer,
) -> None:
    app.config.update(DIGEST_TIME="07:00", DIGEST_TIMEZONE="Europe/Berlin",
                      DIGEST_TO=["desk@example.test"])
    day = datetime(2026, 11, 19, tzinfo=BERLIN)
    for article_id in [*SEEDED, "art-z"]:
        response = client.put(f"/api/v1/articles/{article_id}", headers=editor, json={
            "title": f"Title of {article_id}", "url": f"https://news.example.com/{article_id}",
            "section": "Digest", "published_at": "2026-11-01T09:00:00Z"})
        assert response.status_code == 201
    clock.set((day - timedelta(hours=2)).astimezone(UTC))  # the day before: left out
    for _ in range(5):
        react(client, "art-z", mint(app), "yes")
    react(client, "art-b", mint(app), "no", "biased")
    changer = mint(app)
    for index, (article_id, (yes, no, why)) in enumerate(SEEDED.items()):
        clock.set((day + timedelta(hours=1 + 3 * index)).astimezone(UTC))
        for _ in range(yes):
            react(client, article_id, mint(app), "yes")
        for n in range(no):
            react(client, article_id, mint(app), "no", why[n] if n < len(why) else None)
    clock.set((day + timedelta(hours=10)).astimezone(UTC))
    closed = new_poll(client, editor, "Closed yesterday?", "art-a")
    kept_open = new_poll(client, editor, "Still open?", "art-a")
    for reader, option in ((mint(app), "o1"), (mint(app), "o1"), (mint(app), "o2")):
        assert client.put(f"/api/v1/polls/{closed}/votes/mine", json={"options": [option]},
                          headers={"X-Engage-Reader": reader}).status_code == 200
    assert client.patch(f"/api/v1/polls/{closed}", json={"status": "closed"},
                        headers=editor).status_code == 200
    [link] = client.put("/api/v1/articles/art-e/links", headers=editor, json=[
        {"title": "Background", "url": "https://news.example.com/bg"}]).json["links"]
    for n in range(4):  # 4 impressions and 1 click, from 4 address groups
        address = f"203.0.113.{n + 1}"
        assert client.post("/api/v1/articles/art-e/links/impressions",
                           json={"links": [link["id"]]},
                           environ_base={"REMOTE_ADDR": address}).json["counted"] == 1
    assert client.get(f"/r/{link['id']}", headers={"User-Agent": CHROME},
                      environ_base={"REMOTE_ADDR": "203.0.113.1"}).status_code == 302
    clock.set((day + timedelta(hours=23, minutes=30)).astimezone(UTC))
    react(client, "art-c", changer, "no", "outdated")
    react(client, "art-c", changer, "yes")  # a changed vote: counted once, as "yes"
    clock.set((day + timedelta(days=1, minutes=10)).astimezone(UTC))  # today: left out
    react(client, "art-d", mint(app), "yes")
    assert client.patch(f"/api/v1/polls/{kept_open}", json={"status": "closed"},
                        headers=editor).status_code == 200  # today: not yesterday's
    catch_up()

    worker = Worker(store, "test")
    clock.set(datetime(2026, 11, 20, 6, 59, tzinfo=BERLIN).astimezone(UTC))
    worker.step()
    assert mail.received() == []
    clock.set(datetime(2026, 11, 20, 7, 0, tzinfo=BERLIN).astimezone(UTC))
    worker.step()
    worker.step()
    [message] = mail.received()
    assert subject(message) == "engage digest for 2026-11-19"
    text, html = parts(message)

    expected = _expected(store, day.astimezone(UTC), (day + timedelta(days=1)).astimezone(UTC))
    # The bounds, not the shares: 2 of 2 (art-b) is not the best, 0 of 2 (art-d) not the worst.
    best = [r[0] for r in expected["best"]]
    worst = [r[0] for r in expected["worst"]]
    assert best.index("art-b") > max(best.index("art-a"), best.index("art-c"))
    assert worst[:2] == ["art-f", "art-e"] and "art-d" in worst[2:]

    def section(body: str, start: str, end: str) -> str:
        return body.split(start, 1)[1].split(end, 1)[0]

    for key, start, end in (("best", "Most approved", "Least approved"),
                            ("worst", "Least approved", "Top reasons")):
        for body in (text, html):
            part = section(body, start, end)
            positions = [part.index(f"Title of {a}") for a, _, _ in expected[key]]
            assert positions == sorted(positions), (key, part)
            for _article, yes, total in expected[key]:
                share = approval(yes, total)
                assert share is not None
                assert f"{share * 100:.1f} %" in part and f"{total}" in part
        for article, yes, total in expected[key]:  # nor a vote of today's first hour
            line = f"- Title of {article}: {yes / total * 100:.1f} % of {total} votes"
            assert line in section(text, start, end), (line, text)
        assert "art-z" not in section(text, "Most approved", "Polls")

    reasons = sorted(((r, sum(c.values())) for r, c in expected["reasons"].items()),
                     key=lambda rc: (-rc[1], rc[0]))
    assert reasons[0] == ("inaccurate", 12)
    listed = section(text, 'Top reasons for "no":', "Polls that closed")
    lines = [line for line in listed.splitlines() if line.startswith("- ")]
    assert [line[2:].split(":")[0] for line in lines] == [r for r, _ in reasons]
    for (reason, count), line in zip(reasons, lines, strict=True):
        assert line.startswith(f"- {reason}: {count} -")
        top = expected["reasons"][reason].most_common(1)[0]
        assert f"Title of {top[0]} ({top[1]})" in line
        assert f"<strong>{reason}</strong>: {count}" in html

    polls_part = section(text, "Polls that closed:", "Related links")
    assert "- Closed yesterday? (3 answers): Yes 67 %, No 33 %" in polls_part
    assert "Still open?" not in text
    assert "Related links: 1 clicks of 4 impressions (25.0 % click-through)" in text
    assert "- Title of art-e: 1 clicks, 4 impressions (25.0 %)" in text
    assert "Closed yesterday? (3 answers): Yes 67 %, No 33 %" in html
    assert "1 clicks of 4 impressions (25.0 % click-through)" in html

    worker.step()
    assert len(mail.received()) == 1  # once a day


# -- restart safety -----------------------------------------------------------------------
def _start_worker(redis_url: str, tmp_path: Path, smtp_url: str) -> subprocess.Popen[bytes]:
    return start_worker(redis_url, tmp_path, SMTP_URL=smtp_url, SMTP_TIMEOUT="3",
                        ALERT_INTERVAL="0.2", PUBLIC_URL=PUBLIC)


@pytest.mark.slow
def test_worker_killed_before_delivery_delivers_once_after_restart(
    app: Flask, client: FlaskClient, admin: dict[str, str], editor: dict[str, str], store: Any,
    redis_server: RedisServer, tmp_path: Path, mail: MailServer,
) -> None:
    import socket

    # An SMTP address that takes the connection and never greets: the worker that fired
    # the alert waits there, in the middle of delivering it, when it is killed.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    silent_url = f"smtp://127.0.0.1:{silent.getsockname()[1]}"
    with Receiver() as receiver, silent:
        register(client, admin, receiver.url, ["alert.fired"])
        put_article(client, editor, "killed")
        create_rule(client, editor, article="killed", window_hours=2)
        worker = _start_worker(redis_server.url, tmp_path, silent_url)
        try:
            for _ in range(5):
                react(client, "killed", mint(app))
            voted = time.monotonic()
            due = store.keys.alerts("due")
            deadline = time.monotonic() + 30
            while not any(score > time.time() + 1 for _, score in
                          store.redis.zrange(due, 0, -1, withscores=True)):
                assert time.monotonic() < deadline, (tmp_path / "worker.log").read_text()
                assert worker.poll() is None, (tmp_path / "worker.log").read_text()
                time.sleep(0.02)
            # Claimed: the note is leased to the worker, which waits for the greeting.
            os.kill(worker.pid, signal.SIGKILL)
            worker.wait(10)
            assert mail.received() == [] and receiver.requests == []
            assert pending(store) == 1
            worker = _start_worker(redis_server.url, tmp_path, mail.url)
            deadline = voted + 60
            while pending(store) or not mail.received():
                assert time.monotonic() < deadline, (tmp_path / "worker.log").read_text()
                assert worker.poll() is None, (tmp_path / "worker.log").read_text()
                time.sleep(0.05)
            deadline = time.monotonic() + 10
            while not receiver.delivered and not webhooks.retry_count(store):
                assert time.monotonic() < deadline
                time.sleep(0.05)
        finally:
            worker.terminate()
            worker.wait(10)
    assert len(mail.received()) == 1
    assert [b["type"] for b in receiver.delivered_bodies()] == ["alert.fired"]
    assert alert_store.firing(store, alert_store.list_rules(store)[0]["id"]).keys() == {"killed"}


@pytest.mark.parametrize("name, value", [
    ("SMTP_URL", "mailto:desk@example.test"), ("SMTP_URL", "smtp://host/path"),
    ("DIGEST_TIME", "7:00"), ("DIGEST_TIME", "24:00"), ("DIGEST_TIMEZONE", "Mars/Olympus"),
])
def test_mail_settings_are_checked_at_start(name: str, value: str) -> None:
    from engage.config import ConfigError, load_config

    with pytest.raises(ConfigError, match=f"ENGAGE_{name}"):
        load_config({f"ENGAGE_{name}": value})
    assert load_config({"ENGAGE_SMTP_URL": "smtps://u%40x:p@mail.example.test:465",
                        "ENGAGE_DIGEST_TIME": "07:30",
                        "ENGAGE_DIGEST_TIMEZONE": "Europe/Berlin"})["DIGEST_TIME"] == "07:30"


# -- rules by site -------------------------------------------------------------------------
def test_a_sites_rule_fires_for_that_sites_articles_only(
    app: Flask, client: FlaskClient, admin: dict[str, str], editor: dict[str, str],
    store: Any, clock: Clock, catch_up: Any, mail: MailServer,
) -> None:
    clock.set(floor(clock(), "hour") + timedelta(minutes=10))
    assert client.post("/api/v1/sites", json={"name": "regional"},
                       headers=admin).status_code == 201
    put_article(client, editor, "national")  # the default site's
    response = client.put("/api/v1/articles/local", json={**ARTICLE, "site": "regional"},
                          headers=editor)
    assert response.status_code == 201, response.json
    rule = create_rule(client, editor, site="regional", threshold=2, webhook=False)
    worker = Worker(store, "test")
    for article in ("national", "local"):
        for _ in range(2):
            react(client, article, mint(app))
    catch_up()
    worker.step()
    assert alert_store.firing(store, rule["id"]).keys() == {"local"}
    [message] = mail.received()
    assert "/dashboard/articles/local" in parts(message)[0]


def test_a_webhook_bound_to_a_site_hears_of_its_alerts_only(
    app: Flask, client: FlaskClient, admin: dict[str, str], editor: dict[str, str],
    store: Any, clock: Clock, catch_up: Any, mail: MailServer,
) -> None:
    clock.set(floor(clock(), "hour") + timedelta(minutes=10))
    assert client.post("/api/v1/sites", json={"name": "regional"},
                       headers=admin).status_code == 201
    put_article(client, editor, "national")
    assert client.put("/api/v1/articles/local", json={**ARTICLE, "site": "regional"},
                      headers=editor).status_code == 201
    with Receiver() as regional, Receiver() as default:
        for url, site in ((regional.url, "regional"), (default.url, "default")):
            body = {"url": url, "events": ["alert.*"], "secret": SECRET, "site": site}
            assert client.post("/api/v1/webhooks", json=body, headers=admin).status_code == 201
        create_rule(client, editor, threshold=2)  # every site's articles
        worker = Worker(store, "test")
        for article in ("national", "local"):
            for _ in range(2):
                react(client, article, mint(app))
        catch_up()
        deadline = time.monotonic() + 10
        while len(regional.delivered) + len(default.delivered) < 2:
            assert time.monotonic() < deadline
            worker.step()
            time.sleep(0.02)
        worker.step()
        assert [b["data"]["article"] for b in regional.delivered_bodies()] == ["local"]
        assert [b["data"]["article"] for b in default.delivered_bodies()] == ["national"]


def test_staff_limited_to_a_site_see_and_change_its_rules_only(
    client: FlaskClient, admin: dict[str, str], editor: dict[str, str], store: Any,
) -> None:
    assert client.post("/api/v1/sites", json={"name": "regional"},
                       headers=admin).status_code == 201
    everywhere = create_rule(client, editor, name="Every site")
    ours = create_rule(client, editor, name="Regional", site="regional")
    limited = {"Authorization": "Bearer "
               + tokens.create(store, "editor", "regional desk", sites=["regional"])[0]}
    listed = client.get("/api/v1/alert-rules", headers=limited).json["rules"]
    assert [r["id"] for r in listed] == [ours["id"]]
    before = alert_store.list_rules(store)
    for body in ({**RULE}, {**RULE, "site": "default"}):  # every site; another site
        refused = client.post("/api/v1/alert-rules", json=body, headers=limited)
        assert refused.status_code == 403 and "regional" in refused.json["error"]["message"]
    unknown = client.post("/api/v1/alert-rules", json={**RULE, "site": "nowhere"},
                          headers=editor)
    assert unknown.status_code == 422 and unknown.json["error"]["fields"] == {
        "site": ["No such site."]}
    put_article(client, editor, "national")
    elsewhere = client.post("/api/v1/alert-rules", headers=editor,
                            json={**RULE, "site": "regional", "article": "national"})
    assert elsewhere.status_code == 422 and "article" in elsewhere.json["error"]["fields"]
    url = f"/api/v1/alert-rules/{everywhere['id']}"
    assert client.put(url, json={**RULE, "site": "regional"},
                      headers=limited).status_code == 403
    assert client.delete(url, headers=limited).status_code == 403
    assert alert_store.list_rules(store) == before  # nothing changed
    assert client.put(f"/api/v1/alert-rules/{ours['id']}", json={**RULE, "site": "regional",
                      "threshold": 9}, headers=limited).status_code == 200
    desk = Desk(client.application.test_client(), limited["Authorization"].split()[1])
    page = desk.get("/dashboard/alerts").get_data(as_text=True)
    assert ours["id"] in page and everywhere["id"] not in page
    assert "Every site" not in page  # neither the other rule nor the choice to watch all
    assert desk.get(f"/dashboard/alerts/{everywhere['id']}").status_code == 403
    assert desk.post(f"/dashboard/alerts/{everywhere['id']}/delete", {}).status_code == 403
    assert desk.post("/dashboard/alerts", {**FORM, "site": "default"}).status_code == 403
    assert len(alert_store.list_rules(store)) == 2


def test_each_site_gets_its_own_digest_of_its_own_articles(
    app: Flask, client: FlaskClient, admin: dict[str, str], editor: dict[str, str],
    store: Any, clock: Clock, catch_up: Any, mail: MailServer,
) -> None:
    app.config.update(DIGEST_TIME="07:00", DIGEST_TIMEZONE="UTC",
                      DIGEST_TO=["desk@example.test"])
    assert client.post("/api/v1/sites", headers=admin, json={
        "name": "regional", "digest_to": ["regional@example.test"]}).status_code == 201
    bad = client.patch("/api/v1/sites/regional", headers=admin, json={"digest_to": ["nope"]})
    assert bad.status_code == 422 and "digest_to" in bad.json["error"]["fields"]
    day = datetime(2026, 11, 19, 9, tzinfo=UTC)
    clock.set(day)
    for article_id, site in (("national", None), ("local", "regional")):
        body = {**ARTICLE, "title": f"Title of {article_id}", **({"site": site} if site else {})}
        assert client.put(f"/api/v1/articles/{article_id}", json=body,
                          headers=editor).status_code == 201
        for _ in range(3):
            react(client, article_id, mint(app), "yes")
    catch_up()
    clock.set(datetime(2026, 11, 20, 7, 5, tzinfo=UTC))
    worker = Worker(store, "test")
    worker.step()
    worker.step()
    sent = {tuple(to): message for to, message in zip(mail.recipients, mail.received(),
                                                      strict=True)}
    assert set(sent) == {("desk@example.test",), ("regional@example.test",)}
    national, _ = parts(sent[("desk@example.test",)])
    local, _ = parts(sent[("regional@example.test",)])
    assert "Title of national" in national and "Title of local" not in national
    assert "Title of local" in local and "Title of national" not in local
    assert subject(sent[("regional@example.test",)]) == "engage digest for 2026-11-19 (regional)"
    worker.step()  # once a day each
    assert len(mail.received()) == 2
