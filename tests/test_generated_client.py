"""A Python client generated from the served OpenAPI document works on its own.

openapi-python-client (the CLI, as an integrator would run it) turns the document of a
live server into a package; the test then talks to that server through the package
only: mint a reader, vote, read with and without the token, read a batch, revalidate,
create a poll as an editor and vote in it.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from flask import Flask

from tests.live_server import call_json, serving

PACKAGE = "engage_generated_client"

# Every operation, by its operationId as a generated module name (snake_case), per tag.
OPERATIONS = {
    "readers": {"create_reader", "renew_reader", "export_my_data", "erase_my_data"},
    "articles": {"get_article", "put_article"},
    "reactions": {"get_reactions", "put_my_reaction", "delete_my_reaction",
                  "get_reactions_batch", "get_email_vote_links"},
    "links": {"get_links", "put_links", "record_link_impressions"},
    "widget": {"get_widget_bundle", "get_my_widget_bundle"},
    "stats": {"list_article_stats", "get_section_stats", "get_article_stats",
              "export_events", "list_audit_log"},
    "polls": {"create_poll", "list_polls", "get_poll", "patch_poll", "delete_poll",
              "put_my_poll_vote", "delete_my_poll_vote", "list_article_polls",
              "export_poll"},
    "webhooks": {"list_webhooks", "create_webhook", "delete_webhook", "test_webhook",
                 "list_dead_letters"},
    "sites": {"list_sites", "create_site", "get_site", "update_site"},
    "alerts": {"list_alert_rules", "create_alert_rule", "update_alert_rule",
               "delete_alert_rule"},
}


@pytest.fixture
def base_url(app: Flask) -> Iterator[str]:
    with serving(app) as server:
        yield f"http://127.0.0.1:{server.server_port}"


@pytest.fixture
def generated(base_url: str, tmp_path: Path) -> Iterator[Path]:
    """The generated package's directory, importable while the test runs."""
    status, spec = call_json(base_url + "/api/v1/openapi.json", "GET")
    assert status == 200
    spec_file = tmp_path / "openapi.json"
    spec_file.write_text(json.dumps(spec))
    config = tmp_path / "config.yaml"
    config.write_text(f"package_name_override: {PACKAGE}\n")
    bin_dir = Path(sys.executable).parent
    out = tmp_path / "client" / PACKAGE
    # The generator formats its output with ruff (a post hook found on PATH).
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    run = subprocess.run(
        [str(bin_dir / "openapi-python-client"), "generate", "--path", str(spec_file),
         "--config", str(config), "--meta", "none", "--output-path", str(out)],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    # A part of the document it could not turn into code is reported, then skipped.
    assert "warning" not in (run.stdout + run.stderr).lower(), run.stdout + run.stderr
    sys.path.insert(0, str(out.parent))
    try:
        yield out
    finally:
        sys.path.remove(str(out.parent))
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
            del sys.modules[name]


def op(name: str) -> ModuleType:
    """A generated endpoint module, e.g. op("reactions.put_my_reaction")."""
    return importlib.import_module(f"{PACKAGE}.api.{name}")


def model(name: str) -> Any:
    return getattr(importlib.import_module(f"{PACKAGE}.models"), name)


def test_generated_functions_have_the_short_names(generated: Path) -> None:
    found = {
        tag.name: {module.stem for module in tag.glob("*.py") if module.stem != "__init__"}
        for tag in (generated / "api").iterdir() if tag.is_dir() and tag.name != "__pycache__"
    }
    assert found == OPERATIONS
    for name in set().union(*OPERATIONS.values()):
        assert re.fullmatch(r"[a-z]+(_[a-z]+)*", name) and len(name) <= 24, name


def test_reader_and_editor_flows_through_the_generated_client(
    generated: Path, base_url: str, editor_token: str, admin_token: str
) -> None:
    client_module = importlib.import_module(f"{PACKAGE}.client")
    anonymous = client_module.Client(base_url=base_url, raise_on_unexpected_status=True)
    editor = client_module.AuthenticatedClient(
        base_url=base_url, token=editor_token, raise_on_unexpected_status=True)

    created = op("articles.put_article").sync_detailed(
        "gen-article", client=editor, body=model("ArticleIn").from_dict({
            "title": "Generated", "url": "https://news.example.com/gen",
            "section": "Testing", "published_at": "2026-01-08T09:00:00Z",
        }))
    assert created.status_code == 201

    reader = op("readers.create_reader").sync(client=anonymous).reader
    voted = op("reactions.put_my_reaction").sync(
        "gen-article", client=anonymous,
        body=model("ReactionIn")(choice="yes"),
        x_engage_reader=reader)
    assert voted.mine == "yes" and voted.total == 1

    anonymous_read = op("reactions.get_reactions").sync_detailed("gen-article", client=anonymous)
    assert anonymous_read.status_code == 200
    assert anonymous_read.parsed.mine is None
    assert anonymous_read.parsed.counts["yes"] == 1
    etag = anonymous_read.headers["ETag"]

    own_read = op("reactions.get_reactions").sync(
        "gen-article", client=anonymous, x_engage_reader=reader)
    assert own_read.mine == "yes"

    revalidated = op("reactions.get_reactions").sync_detailed(
        "gen-article", client=anonymous, if_none_match=etag)
    assert revalidated.status_code == 304 and revalidated.content == b""

    batch = op("reactions.get_reactions_batch").sync_detailed(
        client=anonymous, article=["gen-article", "no-such-article"])
    assert batch.parsed.articles["gen-article"].total == 1
    assert batch.parsed.unknown == ["no-such-article"]
    again = op("reactions.get_reactions_batch").sync_detailed(
        client=anonymous, article=["gen-article", "no-such-article"],
        if_none_match=batch.headers["ETag"])
    assert again.status_code == 304

    poll = op("polls.create_poll").sync(client=editor, body=model("PollIn").from_dict({
        "question": "Read more like this?", "options": ["Yes", "Later"],
        "article": "gen-article",
    }))
    assert poll.status == "open"
    later = poll.options[1].id
    ballot = op("polls.put_my_poll_vote").sync(
        poll.id, client=anonymous, body=model("PollVoteIn")(options=[later]),
        x_engage_reader=reader)
    assert ballot.mine == [later]
    assert ballot.results.counts[later] == 1
    assert op("polls.get_poll").sync(poll.id, client=anonymous, x_engage_reader=reader).mine == [
        later]

    # Admin-only operations say so, and an editor token gets the documented 403.
    refused = op("polls.delete_poll").sync_detailed(poll.id, client=editor)
    assert refused.status_code == 403 and refused.parsed.error.code == "forbidden"
    admin = client_module.AuthenticatedClient(base_url=base_url, token=admin_token)
    assert op("polls.delete_poll").sync_detailed(poll.id, client=admin).status_code == 204


def test_the_generated_types_have_enums_and_name_every_model(generated: Path) -> None:
    """A poll's `status` and `results_visibility` are enums, not plain strings (a
    reaction's `choice` stays a string: an article may have its own set); a nullable
    nested schema is its own model or None, never an anonymous class."""
    models = importlib.import_module(f"{PACKAGE}.models")
    names = set(dir(models))
    assert not [n for n in names if re.search(r"Type\d", n)], sorted(names)
    assert {s.value for s in model("PollStatus")} == {"open", "closed"}
    assert {v.value for v in model("PollResultsVisibility")} == {
        "always", "after_vote", "after_close"}
    assert "ReactionInChoice" not in names
    poll = model("Poll").from_dict({
        "id": "p1", "question": "Q?", "options": [{"id": "o1", "label": "A"}],
        "article": None, "multiple": False, "max_choices": 1, "closes_at": None,
        "results_visibility": "after_vote", "min_votes": None, "status": "closed",
        "results": None, "mine": None})
    assert poll.status is model("PollStatus").CLOSED and poll.results is None
    source = (generated / "models" / "poll.py").read_text()
    assert re.search(r"results: (None \| PollResults|PollResults \| None)\b", source), source[:3000]
