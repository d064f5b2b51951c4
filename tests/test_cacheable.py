"""`cacheable` and `private` build their answers by hand: the same as werkzeug's way."""

from __future__ import annotations

import zlib
from typing import Any

import pytest
from flask import Flask, Response, jsonify, request
from werkzeug.http import http_date, parse_date

from engage.api.reactions import cacheable, private

PAYLOAD = {"article": "a1", "counts": {"yes": 3, "no": 1}, "total": 4, "mine": None}


def reference(app: Flask, payload: dict[str, Any], vary: tuple[str, ...]) -> Response:
    """The answer as jsonify, set_etag and make_conditional make it."""
    response = jsonify(payload)
    response.set_etag(format(zlib.crc32(response.get_data()), "08x"))
    config = app.config
    response.headers["Cache-Control"] = (
        f"public, max-age={config['CACHE_MAX_AGE']}, "
        f"stale-while-revalidate={config['CACHE_STALE']}"
    )
    if vary:
        response.headers["Vary"] = ", ".join(vary)
    response.make_conditional(request)
    return response


def tag_of(app: Flask) -> str:
    with app.test_request_context("/"):
        return str(cacheable(PAYLOAD).headers["ETag"])


def without_date(response: Response) -> list[tuple[str, str]]:
    return [(k, "<date>" if k == "Date" else v) for k, v in response.headers.items()]


@pytest.mark.parametrize("method", ["GET", "HEAD", "POST"])
@pytest.mark.parametrize("conditions", [
    {},
    {"If-None-Match": "{tag}"},
    {"If-None-Match": "W/{tag}"},
    {"If-None-Match": '"other", {tag}'},
    {"If-None-Match": '"other", W/"more"'},
    {"If-None-Match": "*"},
    {"If-None-Match": ""},
    {"If-None-Match": "garbage without quotes"},
    {"If-Match": "{tag}"},
    {"If-Match": '"other"'},
    {"If-None-Match": "{tag}", "If-Match": "{tag}"},
    {"If-Modified-Since": "Wed, 21 Oct 2015 07:28:00 GMT"},
    {"Range": "bytes=0-3"},
])
@pytest.mark.parametrize("vary", [("X-Engage-Reader",), (), ("X-Engage-Reader", "Authorization")])
def test_cacheable_matches_werkzeug(app: Flask, method: str, conditions: dict[str, str],
                                    vary: tuple[str, ...]) -> None:
    tag = tag_of(app)
    headers = {k: v.format(tag=tag) for k, v in conditions.items()}
    with app.test_request_context("/", method=method, headers=headers):
        ours = cacheable(PAYLOAD, vary=vary)
        theirs = reference(app, PAYLOAD, vary)
    assert ours.status_code == theirs.status_code
    assert without_date(ours) == without_date(theirs)
    assert ours.get_data() == theirs.get_data()
    if "Date" in theirs.headers:
        ours_at, theirs_at = parse_date(ours.headers["Date"]), parse_date(theirs.headers["Date"])
        assert ours_at is not None and theirs_at is not None
        assert abs((ours_at - theirs_at).total_seconds()) <= 1


def test_conditional_statuses(app: Flask) -> None:
    tag = tag_of(app)
    for headers, status in [
        ({"If-None-Match": tag}, 304),
        ({"If-None-Match": "W/" + tag}, 304),
        ({"If-None-Match": f'"x", {tag}'}, 304),
        ({"If-None-Match": '"x"'}, 200),
        ({"If-Match": '"x"'}, 412),
        ({"If-Match": tag}, 200),
    ]:
        with app.test_request_context("/", headers=headers):
            assert cacheable(PAYLOAD).status_code == status, headers


def test_the_date_is_now(app: Flask) -> None:
    with app.test_request_context("/"):
        before = http_date()
        date = cacheable(PAYLOAD).headers["Date"]
        after = http_date()
    assert date in (before, after)


def test_private_matches_jsonify(app: Flask) -> None:
    with app.test_request_context("/", method="PUT"):
        ours = private(PAYLOAD)
        theirs = jsonify(PAYLOAD)
        theirs.headers["Cache-Control"] = "private, no-store"
        theirs.headers["Vary"] = "X-Engage-Reader"
    assert list(ours.headers.items()) == list(theirs.headers.items())
    assert ours.get_data() == theirs.get_data()
    assert ours.status_code == 200
