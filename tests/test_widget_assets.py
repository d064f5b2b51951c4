"""The widget script as served (size, caching) and the demo page (markup, CSP)."""

from __future__ import annotations

import gzip
import re
from typing import Any

import pytest

from engage.web.embed import WIDGET_FILE, shipped, widget_asset

GZIP_BUDGET = 6 * 1024


@pytest.fixture
def app_config() -> dict[str, Any]:
    return {"DEMO": True}


def test_widget_gzipped_fits_the_budget(client):
    response = client.get("/widget.js")
    assert response.status_code == 200
    assert response.mimetype == "text/javascript"
    size = len(gzip.compress(response.get_data(), compresslevel=9))
    print(f"widget.js: {len(response.get_data())} bytes, {size} bytes gzipped")
    assert size <= GZIP_BUDGET, f"widget.js is {size} bytes gzipped (budget {GZIP_BUDGET})"


def test_widget_is_served_gzipped_when_asked(client):
    response = client.get("/widget.js", headers={"Accept-Encoding": "gzip, br"})
    assert response.headers["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in response.headers["Vary"]
    assert gzip.decompress(response.get_data()) == shipped(WIDGET_FILE.read_bytes())
    assert gzip.decompress(response.get_data()) == client.get("/widget.js").get_data()
    assert len(response.get_data()) <= GZIP_BUDGET


def test_widget_caching_etag_and_versioned_url(client):
    first = client.get("/widget.js")
    assert first.headers["Cache-Control"].startswith("public, max-age=300")
    etag = first.headers["ETag"]
    again = client.get("/widget.js", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.get_data() == b""
    version = first.headers["X-Engage-Widget-Version"]
    assert version == widget_asset().version
    versioned = client.get(f"/widget.js?v={version}")
    assert versioned.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    stale = client.get("/widget.js?v=000000000000")
    assert stale.headers["Cache-Control"].startswith("public, max-age=300")
    assert first.headers["Cross-Origin-Resource-Policy"] == "cross-origin"


def test_the_shipped_widget_drops_only_comments_and_indentation():
    source = b"  var a = 1;\n  // why\n\n  if (a) { f('//x'); } // kept\n"
    assert shipped(source) == b"var a = 1;\nif (a) { f('//x'); } // kept\n"


def test_widget_source_never_writes_html_from_data():
    source = WIDGET_FILE.read_text()
    for forbidden in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write",
                      "eval(", "new Function", "document.cookie"):
        assert forbidden not in source, forbidden
    assert "attachShadow" in source and "textContent" in source
    assert "localStorage" in source


def test_demo_page_embeds_the_widget_like_a_publisher(client, article):
    response = client.get(f"/demo/{article}")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    # Without JavaScript the same markup is a form that votes (docs/widget.md).
    assert re.search(rf'<div data-engage-article="{article}">\s*<noscript>\s*<form '
                     rf'class="engage-nojs" method="post" action="/vote/{article}">', html)
    assert '<script src="/widget.js" async></script>' in html
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    # Nothing inline: every script has a src, no event-handler attributes.
    assert not re.search(r"<script(?![^>]*\bsrc=)", html)
    assert not re.search(r"\son[a-z]+=", html)
    assert "Diplomacy" in html and "China and South Korea" in html


def test_demo_page_shows_seed_prose_and_second_widgets(client, editor, article, app):
    body = {"title": "<script>window.pwned=1</script>", "url": "https://example.com/x",
            "section": "Diplomacy", "published_at": "2026-01-09T10:00:00Z"}
    client.put("/api/v1/articles/second", json=body, headers=editor)
    html = client.get(f"/demo/{article}?also=second&also=bad%20id").get_data(as_text=True)
    assert "Lee Jae Myung" in html  # the seed article's own paragraphs
    assert '<div data-engage-article="second"></div>' in html
    assert "<script>window.pwned" not in html
    assert "&lt;script&gt;window.pwned=1&lt;/script&gt;" in html
    assert "8 January 2026" in html


def test_unknown_demo_article_is_404(client):
    response = client.get("/demo/no-such-article")
    assert response.status_code == 404
    assert "No such article" in response.get_data(as_text=True)
    assert client.get("/demo/bad%20id").status_code == 404


class TestDemoOff:
    @pytest.fixture
    def app_config(self) -> dict[str, Any]:
        return {"DEMO": False}

    def test_demo_pages_are_only_served_in_demo_mode(self, client, article):
        assert client.get(f"/demo/{article}").status_code == 404
        assert client.get("/widget.js").status_code == 200
