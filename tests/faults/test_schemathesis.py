"""schemathesis against the live OpenAPI document: every operation, every check.

The document is read from the app itself (`/api/v1/openapi.json`), so endpoints added
later are covered without touching this file. Each operation is fuzzed with valid and
invalid data, with random ids and with ids that exist (so authenticated writes reach
real articles, polls and links). Every response must pass all of schemathesis's checks:
no 5xx, status codes, content types, headers and bodies as documented.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from engage.identity import get_identity
from engage.store import get_store, tokens
from tests.conftest import ARTICLE, make_app
from tests.redis_server import RedisServer

pytestmark = pytest.mark.slow

TARGET_REQUESTS = 1200

# apispec documents http(s) URL fields as `format: url`, which schemathesis does not know;
# teach it what that format means so "valid" data is a valid URL.
HTTP_URLS = st.builds(
    "{}://{}.example.{}/{}".format,
    st.sampled_from(["http", "https"]),
    st.from_regex(r"[a-z][a-z0-9-]{0,20}", fullmatch=True),
    st.sampled_from(["org", "com", "news"]),
    st.from_regex(r"[A-Za-z0-9._~/-]{0,40}", fullmatch=True),
)

CONFIG = {
    "generation": {
        # Unknown query parameters are tolerated on purpose (cache busters, tracking
        # parameters that pages append); unknown body fields are still rejected.
        "allow-extra-parameters": False,
    },
    "checks": {
        # The contract answers 422 for data the schema allows but a rule refuses: a
        # choice outside the configured set, duplicate poll options, a range whose end
        # precedes its start. A valid `If-None-Match` (`*`, or a tag that matches) is
        # answered 304. Everything else about the check stays.
        "positive_data_acceptance": {
            "expected-statuses": ["2xx", "304", "401", "403", "404", "409", "422", "429"],
        },
        # Oversized invalid data may be refused for its size (413) before it is parsed.
        "negative_data_rejection": {
            "expected-statuses": ["400", "401", "403", "404", "405", "406", "409", "413",
                                  "415", "422", "428", "429"],
        },
    },
}
ARTICLES = ("korea-china-reset", "budget-2026", "a1")


@pytest.fixture
def fuzz_app(redis_server: RedisServer, tmp_path: Path) -> Flask:
    redis_server.client().flushall()
    # Limits high enough that fuzzing does not spend itself on 429s; 429 stays documented.
    return make_app(redis_server.url, tmp_path, THROTTLE_VOTES=10**6,
                    READER_MINT_LIMIT="100000 per minute")


def seed(app: Flask) -> tuple[dict[str, str], dict[str, str]]:
    """Articles (and a poll and links where those endpoints exist); returns ids to reuse."""
    with app.app_context():
        store = get_store()
        editor = tokens.create(store, "editor", "fuzz")[0]
        admin = tokens.create(store, "admin", "fuzz")[0]
        reader = get_identity().mint_reader()
    client = app.test_client()
    staff = {"Authorization": f"Bearer {admin}"}
    known: dict[str, str] = {"article_id": ARTICLES[0]}
    for article_id in ARTICLES:
        response = client.put(f"/api/v1/articles/{article_id}", json=ARTICLE, headers=staff)
        assert response.status_code == 201, response.json
    links = client.put(
        f"/api/v1/articles/{ARTICLES[0]}/links",
        json=[{"title": "Policy Link", "url": "https://example.org/policy"}], headers=staff,
    )
    if links.status_code == 200 and links.json.get("links"):
        known["link_id"] = links.json["links"][0]["id"]
    poll = client.post("/api/v1/polls", headers=staff, json={
        "question": "Should it?", "options": ["Yes", "No"], "article": ARTICLES[0],
        "results": "always",
    })
    if poll.status_code == 201:
        known["poll_id"] = poll.json["id"]
    del editor
    return {"Authorization": f"Bearer {admin}", "X-Engage-Reader": reader}, known


def test_openapi_contract_holds_under_fuzzing(fuzz_app: Flask) -> None:
    auth, known = seed(fuzz_app)
    schemathesis.openapi.format("url", HTTP_URLS)
    schema = schemathesis.openapi.from_wsgi(
        "/api/v1/openapi.json", fuzz_app, config=schemathesis.Config.from_dict(CONFIG)
    )
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 5
    variants: list[tuple[Any, GenerationMode, dict[str, str] | None]] = []
    for operation in operations:
        names = {p.name for p in operation.path_parameters}
        fixed = {name: known[name] for name in names if name in known}
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            variants.append((operation, mode, None))
            if fixed and len(fixed) == len(names):
                variants.append((operation, mode, fixed))
    per_variant = max(15, math.ceil(TARGET_REQUESTS / len(variants)))

    sent: Counter[str] = Counter()
    statuses: Counter[int] = Counter()
    failures: list[str] = []
    for operation, mode, fixed in variants:
        strategy = operation.as_strategy(generation_mode=mode, path_parameters=fixed)
        @settings(max_examples=per_variant, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(case=strategy)
        def check(case: Any) -> None:
            declared = {p.name for p in case.operation.iter_parameters()
                        if p.location == "header"}
            present = {name.lower() for name in (case.headers or {})}
            headers = {name: value for name, value in auth.items()
                       if name not in declared or name.lower() in present}
            # Valid credentials replace generated ones, except that a case which left
            # out a declared header (a reader token, say) on purpose keeps it out.
            response = case.call_and_validate(headers=headers)
            sent[case.operation.label] += 1
            statuses[response.status_code] += 1

        try:
            check()
        except Unsatisfiable:
            assert mode is GenerationMode.NEGATIVE  # nothing left to make invalid
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # schemathesis raises a group; collect all, report all
            failures.append(f"{operation.label} [{mode.value}, ids={fixed}]: {exc}")

    total = sum(sent.values())
    print(f"schemathesis: {total} requests over {len(operations)} operations; "
          f"statuses {dict(sorted(statuses.items()))}")
    if os.environ.get("FUZZ_REPORT"):
        Path(os.environ["FUZZ_REPORT"]).write_text("\n\n".join(failures))
    assert not failures, "\n\n".join(failures)
    assert total >= 1000
    assert not [s for s in statuses if s >= 500]
    assert {op.label for op in operations} <= set(sent)
