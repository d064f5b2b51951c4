"""Every dashboard form, fuzzed: whatever is posted into its fields, the answer is never
a 5xx, a post that is not taken (any answer but 201 or a redirect) changes nothing in
Redis, and no stored text holds a control character.

hypothesis draws each field from generators that know what the field is for (times,
time zones, numbers, URLs, ids, the values a radio button sends) mixed with arbitrary
text and a list of values that broke forms before: 2,600 posts in all, across every
form. The known cases follow as plain regression tests.
"""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Callable
from typing import Any, Protocol
from urllib.parse import urlencode

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engage import schemas
from engage.store import articles, polls, tokens
from tests.conftest import ARTICLE
from tests.desk import CSRF, Desk, field_error
from tests.dns_server import DnsServer

Form = dict[str, Any]

CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")

# Values that broke a form or sit on an edge of a rule: numbers Python's int() reads or
# refuses, times at the ends of what datetime holds, zones at the ends of the offsets.
EDGES = (
    "", " ", "\x00", "a\x00b", "\t", "x\ny", "\x7f", "\x85", "\x9f", "\u2028", "\ufeff",
    "¹", "٣", "①", "9" * 5000, "-1", "0", "1", "2", "10", "1_0", "1.5", "1e3", "NaN", "inf",
    "null", "true", "x" * 5000, "<b>&amp;</b>", "{{ 7*7 }}", "%00", "../", "é" * 400,
    "9999-12-31T23:59", "9999-12-31T23:59+00:00", "9999-12-31T23:59:59.999999-23:59",
    "0001-01-01T00:00", "0001-01-01T00:00+23:59", "8999-12-31T23:59", "1000-01-01T00:00",
    "2099-01-01T10:00", "2099-01-01T10:00+14:00", "2099-01-01", "2099-13-01T00:00",
    "UTC", "Etc/GMT+12", "Etc/GMT-14", "Pacific/Kiritimati", "Not/A_Zone", "posixrules",
    "always", "after_vote", "after_close", "single", "multiple", "publish", "preview",
    "editor", "admin", "open", "closed", "*", "poll.*", "save", "add",
)
ZONES = sorted(zoneinfo.available_timezones())
LITERAL_HOSTS = ("[::1]", "127.0.0.1", "203.0.113.9", "[2001:db8::1]", "8.8.8.8",
                 "2130706433", "127.1", "[::ffff:10.0.0.1]", "1.1.1.1:0", "1.1.1.1:99999")


def text() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(EDGES),
        st.text(max_size=40),
        st.text(st.characters(max_codepoint=0xA0), max_size=12),  # C0, DEL and C1 often
    )


def local_times() -> st.SearchStrategy[str]:
    """What a datetime-local field sends, and what else may come in its place; often a
    time near an end of what datetime holds or of what engage takes."""
    naive = st.datetimes().map(lambda when: when.isoformat(timespec="minutes"))
    aware = st.datetimes(timezones=st.timezones()).map(lambda when: when.isoformat())
    edge = st.builds(
        "{}T{}{}".format,
        st.sampled_from(["0001-01-01", "0999-12-31", "1000-01-01", "8999-12-31",
                         "9000-01-01", "9999-12-31"]),
        st.sampled_from(["00:00", "23:59", "23:59:59.999999"]),
        st.sampled_from(["", "Z", "+00:00", "+14:00", "-12:00", "+23:59", "-23:59"]),
    )
    return st.one_of(text(), naive, aware, edge)


def zones() -> st.SearchStrategy[str]:
    return st.one_of(text(), st.sampled_from(ZONES))


def numbers() -> st.SearchStrategy[str]:
    """Numbers as a form sends them, and what else int() might read: digits of other
    scripts, superscripts, signs, underscores, more digits than it converts."""
    odd = st.one_of(
        st.text(st.characters(categories=["Nd", "No", "Nl"]), min_size=1, max_size=4),
        st.sampled_from(["-1", "+1", " 1", "1_0", "0x1", "1.0", "9" * 5000]),
    )
    return st.one_of(text(), st.integers(-10**30, 10**30).map(str), st.integers(0, 3).map(str),
                     odd)


def ids() -> st.SearchStrategy[str]:
    return st.one_of(text(), st.from_regex(schemas.ID_RE, fullmatch=True))


def urls(hosts: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    built = st.builds(lambda scheme, host, path: f"{scheme}://{host}/{path}",
                      st.sampled_from(["http", "https", "ftp", "javascript", "HTTPS"]),
                      hosts, text())
    return st.one_of(text(), built)


def one_of_or_text(*values: str) -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(values), text())


def form(required: dict[str, st.SearchStrategy[Any]],
         optional: dict[str, st.SearchStrategy[Any]] | None = None) -> st.SearchStrategy[Form]:
    return st.fixed_dictionaries(required, optional=optional or {})


# -- the check every post goes through ----------------------------------------------------
READ_BY_TYPE = {
    "string": lambda pipe, key: pipe.get(key),
    "hash": lambda pipe, key: pipe.hgetall(key),
    "set": lambda pipe, key: pipe.smembers(key),
    "zset": lambda pipe, key: pipe.zrange(key, 0, -1, withscores=True),
    "list": lambda pipe, key: pipe.lrange(key, 0, -1),
    "stream": lambda pipe, key: pipe.xrange(key),
}


def snapshot(redis: Any) -> dict[str, Any]:
    """Every key and its value, as values (a DUMP of a hash changes as Redis rehashes it;
    a TTL refreshed by a read does not count). Left out: when each token was last used,
    which any answered request of a signed-in desk notes (once a minute), by design."""
    keys = sorted(k for k in redis.scan_iter(count=1000) if not k.endswith(":tokens:used"))
    pipe = redis.pipeline(transaction=False)
    for key in keys:
        pipe.type(key)
    types = pipe.execute()
    for key, kind in zip(keys, types, strict=True):
        READ_BY_TYPE[kind](pipe, key)
    return dict(zip(keys, pipe.execute(), strict=True))


class Poster(Protocol):
    def post(self, path: str, data: Any) -> Any: ...


class Fuzz:
    """Posts forms and checks each answer; counts what it posted."""

    TAKEN = (201, 302)

    def __init__(self, store: Any, stored_texts: Callable[[], list[str]]) -> None:
        self.redis = store.redis
        self.stored_texts = stored_texts
        self.posts = 0

    def post(self, desk: Poster, path: str, data: Form | list[tuple[str, Any]]) -> Any:
        before = snapshot(self.redis)
        response = desk.post(path, data)
        self.posts += 1
        assert response.status_code < 500, (path, data, response.get_data(as_text=True)[:500])
        if response.status_code not in self.TAKEN:
            assert snapshot(self.redis) == before, (path, data, response.status_code)
        return response

    def run(self, strategy: st.SearchStrategy[Any], examples: int,
            body: Callable[[Any], None]) -> None:
        @settings(max_examples=examples, deadline=None, database=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
        @given(strategy)
        def each(drawn: Any) -> None:
            body(drawn)

        each()
        # max_examples bounds a run; this says it was not cut short.
        assert self.posts >= examples, self.posts
        texts = self.stored_texts()
        assert texts and not [t for t in texts if CONTROL.search(t)]


def stored_texts(client: FlaskClient, editor: dict[str, str], admin: dict[str, str],
                 store: Any) -> list[str]:
    """Every string the API shows for articles, links, polls, tokens and webhooks."""
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, str):
            found.append(value)
        elif isinstance(value, dict):
            for key, inner in value.items():
                walk(key)
                walk(inner)
        elif isinstance(value, list):
            for inner in value:
                walk(inner)

    for article in articles.recent(store):
        walk(client.get(f"/api/v1/articles/{article['id']}").json)
        walk(client.get(f"/api/v1/articles/{article['id']}/links").json)
    walk(client.get("/api/v1/polls?limit=200", headers=editor).json)
    walk(client.get("/api/v1/webhooks", headers=admin).json)
    walk(client.get("/api/v1/sites", headers=admin).json)
    walk(client.get("/api/v1/alert-rules", headers=editor).json)
    walk(tokens.list_all(store))
    walk(articles.sections(store))
    return found


@pytest.fixture
def fuzz(store: Any, client: FlaskClient, editor: dict[str, str],
         admin: dict[str, str]) -> Fuzz:
    return Fuzz(store, lambda: stored_texts(client, editor, admin, store))


# -- polls --------------------------------------------------------------------------------
POLL_FIELDS = {
    "question": text(),
    "option": st.lists(text(), max_size=12),
    "kind": one_of_or_text("single", "multiple"),
    "results": one_of_or_text("always", "after_vote", "after_close"),
    "closes_at": local_times(),
    "tz": zones(),
    "min_votes": numbers(),
}


def test_new_poll_form(fuzz: Fuzz, desk: Desk, article: str) -> None:
    strategy = form(POLL_FIELDS, {
        "article": one_of_or_text(article, "no-such-article"),
        "max_choices": numbers(),
        "action": one_of_or_text("publish", "preview"),
    })
    fuzz.run(strategy, 350, lambda data: fuzz.post(desk, "/dashboard/polls/new", data))


def test_poll_edit_form(fuzz: Fuzz, desk: Desk, store: Any) -> None:
    poll = polls.create(store, {"question": "Which bridge first?", "options": ["A", "B"],
                                "article": None, "multiple": False, "closes_at": None,
                                "results": "always", "min_votes": None})
    strategy = form({k: v for k, v in POLL_FIELDS.items() if k not in ("option", "kind")})
    fuzz.run(strategy, 300,
             lambda data: fuzz.post(desk, f"/dashboard/polls/{poll.id}/edit", data))


def test_poll_status_form(fuzz: Fuzz, desk: Desk, store: Any) -> None:
    poll = polls.create(store, {"question": "Open or shut?", "options": ["A", "B"],
                                "article": None, "multiple": False, "closes_at": None,
                                "results": "always", "min_votes": None})
    strategy = form({"status": one_of_or_text("open", "closed")})
    fuzz.run(strategy, 100,
             lambda data: fuzz.post(desk, f"/dashboard/polls/{poll.id}/status", data))


# -- related links ------------------------------------------------------------------------
LINK_ROWS = st.lists(st.tuples(text(), urls(st.sampled_from(
    ["news.example.com", *LITERAL_HOSTS, "é.example", "a..b", "xn--"]))), max_size=22)


def test_links_form(fuzz: Fuzz, desk: Desk, article: str) -> None:
    def post(drawn: tuple[list[tuple[str, str]], str]) -> None:
        rows, action = drawn
        data = [("title", t) for t, _ in rows] + [("url", u) for _, u in rows]
        fuzz.post(desk, f"/dashboard/articles/{article}/links", [*data, ("action", action)])

    fuzz.run(st.tuples(LINK_ROWS, one_of_or_text("save", "add")), 300, post)


def test_link_order_form(fuzz: Fuzz, desk: Desk, client: FlaskClient,
                         editor: dict[str, str], article: str) -> None:
    three = [{"title": f"Link {i}", "url": f"https://news.example.com/{i}"} for i in range(3)]

    def post(action: str) -> None:
        if len(client.get(f"/api/v1/articles/{article}/links").json["links"]) < 2:
            assert client.put(f"/api/v1/articles/{article}/links", headers=editor,
                              json=three).status_code == 200
        fuzz.post(desk, f"/dashboard/articles/{article}/links/order", {"action": action})

    verbs = one_of_or_text("up", "down", "remove")
    actions = st.one_of(text(), st.builds("{}:{}".format, verbs, numbers()))
    fuzz.run(actions, 300, post)


# -- articles -----------------------------------------------------------------------------
ARTICLE_FIELDS = {
    "title": text(),
    "url": urls(st.sampled_from(["news.example.com", *LITERAL_HOSTS])),
    "section": one_of_or_text("Diplomacy", "Business"),
    "published_at": local_times(),
    "tz": zones(),
    "tags": text(),
}


def test_new_article_form(fuzz: Fuzz, desk: Desk, article: str) -> None:
    strategy = form({**ARTICLE_FIELDS, "id": st.one_of(st.just(article), ids())})
    fuzz.run(strategy, 350, lambda data: fuzz.post(desk, "/dashboard/articles/new", data))


def test_article_edit_form(fuzz: Fuzz, desk: Desk, article: str) -> None:
    fuzz.run(form(ARTICLE_FIELDS), 300,
             lambda data: fuzz.post(desk, f"/dashboard/articles/{article}/edit", data))


# -- admin --------------------------------------------------------------------------------
def test_token_form(fuzz: Fuzz, admin_desk: Desk) -> None:
    strategy = form({"role": one_of_or_text("editor", "admin"), "name": text()})
    fuzz.run(strategy, 200, lambda data: fuzz.post(admin_desk, "/dashboard/admin/tokens", data))


def test_site_forms(fuzz: Fuzz, admin_desk: Desk) -> None:
    listed = st.lists(st.sampled_from(["yes", "no", "😀", "a,b", "", " "]),
                      max_size=10).map(",".join)
    strategy = form({
        "name": st.one_of(st.just("default"), ids(), text()),
        "origins": st.one_of(text(), urls(st.sampled_from(["a.example", "é.example", "x:1"]))),
        "locale": one_of_or_text("fr", "en-GB"), "choices": st.one_of(listed, text()),
        "reason_choice": one_of_or_text("no", "😀"), "reasons": st.one_of(listed, text()),
        "links_shown": numbers(), "cache_max_age": numbers(), "cache_stale": numbers(),
        "feeds": st.one_of(text(), urls(st.sampled_from(["a.example", "é.example", "x:1"])))})
    fuzz.run(strategy, 150, lambda data: fuzz.post(admin_desk, "/dashboard/admin/sites", data))
    fuzz.run(strategy, 150,
             lambda data: fuzz.post(admin_desk, "/dashboard/admin/sites/default", data))


@pytest.mark.usefixtures("loopback_only")
def test_webhook_form(fuzz: Fuzz, admin_desk: Desk, name_server: DnsServer) -> None:
    # Names are looked up at the suite's DNS server: public, private, unknown and odd ones.
    name_server.set("inside.engage.test", "93.184.216.34", "10.0.0.1")
    hosts = ["hooks.engage.test", "inside.engage.test", "nowhere.engage.test", "é.example",
             "a..b", "xn--", *LITERAL_HOSTS]
    strategy = form({
        "url": urls(st.sampled_from(hosts)),
        "events": st.lists(one_of_or_text(*schemas.WEBHOOK_EVENT_PATTERNS), max_size=5),
        "secret": st.one_of(text(), st.text(min_size=16, max_size=300)),
    })
    fuzz.run(strategy, 200,
             lambda data: fuzz.post(admin_desk, "/dashboard/admin/webhooks", data))


def test_revoke_and_delete_forms(fuzz: Fuzz, admin_desk: Desk, store: Any) -> None:
    spare = tokens.create(store, "editor", "spare")[1]["id"]
    targets = st.tuples(st.sampled_from(["tokens/{}/revoke", "webhooks/{}/delete"]),
                        st.one_of(st.just(spare), st.from_regex(schemas.ID_RE, fullmatch=True)))
    fuzz.run(targets, 100, lambda drawn: fuzz.post(
        admin_desk, "/dashboard/admin/" + drawn[0].format(drawn[1]), {}))


# -- alert rules --------------------------------------------------------------------------
@pytest.mark.usefixtures("loopback_only")
def test_alert_rule_form(fuzz: Fuzz, desk: Desk, article: str) -> None:
    checkbox = one_of_or_text("1", "")
    strategy = form({
        "name": text(),
        "kind": one_of_or_text(*schemas.ALERT_KINDS),
        "threshold": numbers(),
        "window_hours": numbers(),
        "email_to": st.one_of(text(), st.just("desk@example.test, night@example.test")),
    }, {
        "reason": one_of_or_text("inaccurate", "outdated"),
        "points": numbers(),
        "factor": numbers(),
        "article": one_of_or_text(article),
        "poll": ids(),
        "on_close": checkbox,
        "email_from": one_of_or_text("engage@example.test"),
        "webhook": checkbox,
        "slack_url": urls(st.sampled_from(["hooks.engage.test", *LITERAL_HOSTS])),
        "enabled": checkbox,
    })
    fuzz.run(strategy, 300, lambda data: fuzz.post(desk, "/dashboard/alerts", data))


class SignInForm:
    """The sign-in form, posted by a client that is not signed in, with a fresh CSRF
    token each time (a successful sign-in starts a new session)."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client

    def post(self, path: str, data: Form) -> Any:
        match = CSRF.search(self.client.get("/dashboard/signin").get_data(as_text=True))
        assert match
        return self.client.post(path, data={**data, "csrf_token": match.group(1)})


def test_sign_in_form(fuzz: Fuzz, app: Flask, editor_token: str) -> None:
    signin = SignInForm(app.test_client())
    fuzz.run(st.tuples(one_of_or_text(editor_token), text()), 100, lambda drawn: fuzz.post(
        signin, "/dashboard/signin?" + urlencode({"next": drawn[1]}), {"token": drawn[0]}))


# -- found by fuzzing ---------------------------------------------------------------------
POLL = {"question": "Night market?", "option": ["Yes", "No"], "kind": "single",
        "results": "always", "action": "publish"}


@pytest.mark.parametrize("closes_at, tz", [
    ("9999-12-31T23:59", "Etc/GMT+12"),  # past year 9999 once moved to UTC
    ("9999-12-31T23:59-05:00", ""),
    ("0001-01-01T00:00", "Asia/Tokyo"),  # before year 1 once moved to UTC
    ("0001-01-01T00:00+09:00", "UTC"),
])
def test_a_time_beyond_what_datetime_holds_is_refused_at_its_field(
    desk: Desk, client: FlaskClient, editor: dict[str, str], article: str,
    closes_at: str, tz: str,
) -> None:
    poll = client.post("/api/v1/polls", headers=editor,
                       json={"question": "Q?", "options": ["A", "B"]}).json
    cases = [("/dashboard/polls/new", {**POLL, "closes_at": closes_at, "tz": tz}, "closes_at"),
             (f"/dashboard/polls/{poll['id']}/edit",
              {"question": "Q?", "results": "always", "closes_at": closes_at, "tz": tz},
              "closes_at"),
             ("/dashboard/articles/new",
              {**ARTICLE, "id": "new-one", "tags": "", "published_at": closes_at, "tz": tz},
              "published_at"),
             (f"/dashboard/articles/{article}/edit",
              {**ARTICLE, "tags": "", "published_at": closes_at, "tz": tz}, "published_at")]
    for path, data, field in cases:
        response = desk.post(path, data)
        assert response.status_code == 422, path
        assert "between the years 1000 and 8999" in field_error(
            response.get_data(as_text=True), field), path
    assert len(client.get("/api/v1/polls", headers=editor).json["polls"]) == 1
    assert client.get("/api/v1/articles/new-one").status_code == 404


@pytest.mark.parametrize("action", ["up:¹", "up:" + "9" * 5000, "down:٣", "remove:-1",
                                    "remove: 1", "up:+1", "up:1_0", "up:", ":1", "up:0x1"])
def test_a_link_order_that_names_no_row_is_refused(
    desk: Desk, client: FlaskClient, editor: dict[str, str], article: str, action: str
) -> None:
    rows = [{"title": f"Link {i}", "url": f"https://news.example.com/{i}"} for i in range(2)]
    assert client.put(f"/api/v1/articles/{article}/links", headers=editor,
                      json=rows).status_code == 200
    before = client.get(f"/api/v1/articles/{article}/links").json
    response = desk.post(f"/dashboard/articles/{article}/links/order", {"action": action})
    assert response.status_code == 422
    assert "Unknown change to the links." in response.get_data(as_text=True)
    assert client.get(f"/api/v1/articles/{article}/links").json == before


def test_the_order_buttons_still_move_rows(
    desk: Desk, client: FlaskClient, editor: dict[str, str], article: str
) -> None:
    rows = [{"title": f"Link {i}", "url": f"https://news.example.com/{i}"} for i in range(2)]
    assert client.put(f"/api/v1/articles/{article}/links", headers=editor,
                      json=rows).status_code == 200
    assert desk.post(f"/dashboard/articles/{article}/links/order",
                     {"action": "up:1"}).status_code == 302
    titles = [link["title"] for link in
              client.get(f"/api/v1/articles/{article}/links").json["links"]]
    assert titles[:2] == ["Link 1", "Link 0"]


def test_the_utc_label_is_empty_for_a_time_datetime_cannot_move_to_utc() -> None:
    from engage.web import forms

    assert forms.utc_label("9999-12-31T23:59:00-12:00") == ""
    assert forms.utc_label("0001-01-01T00:00:00+09:00") == ""
    assert forms.utc_label("2026-12-01T18:00:00+01:00") == "2026-12-01 17:00 UTC"
