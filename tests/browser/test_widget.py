"""The widget in a real browser: votes, keyboard, two widgets, XSS, links, requests, looks."""

from __future__ import annotations

import re
import socket
import time
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import SCREENSHOTS, LiveServer, Tab
from tests.live_server import serving

pytestmark = pytest.mark.browser


def widget(page: Any, article_id: str) -> Any:
    return page.locator(f'[data-engage-article="{article_id}"]')


def button(page: Any, article_id: str, label: str) -> Any:
    return widget(page, article_id).get_by_role("button", name=re.compile(rf"^{label} \d+$"))


def expect_vote(page: Any, article_id: str, yes: int, no: int, pressed: str | None) -> None:
    for label, n in (("Yes", yes), ("No", no)):
        node = button(page, article_id, label)
        expect(node.locator(".n")).to_have_text(str(n))
        expect(node).to_have_attribute("aria-pressed", "true" if label == pressed else "false")


def focused(page: Any) -> str:
    """Text of the focused element, looking through shadow roots."""
    return str(page.evaluate("""() => {
        let a = document.activeElement;
        while (a && a.shadowRoot && a.shadowRoot.activeElement) a = a.shadowRoot.activeElement;
        return a ? a.textContent : '';
    }"""))


def wait_until(check: Any, timeout: float = 4.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def test_vote_persists_moves_and_withdraws(tab: Tab, live_server: LiveServer) -> None:
    aid = live_server.article()
    page = tab.page
    page.goto(f"/demo/{aid}")
    expect_vote(page, aid, 0, 0, None)
    button(page, aid, "Yes").click()
    expect_vote(page, aid, 1, 0, "Yes")
    expect(widget(page, aid).get_by_role("status")).to_have_text(re.compile("Thanks"))
    assert page.evaluate("localStorage.getItem('engage.reader')")
    assert document_cookie(page) == ""

    page.reload()
    expect_vote(page, aid, 1, 0, "Yes")

    button(page, aid, "No").click()
    expect_vote(page, aid, 0, 1, "No")
    reason = widget(page, aid).get_by_role("button", name="Unclear")
    reason.click()
    expect(reason).to_have_attribute("aria-pressed", "true")

    button(page, aid, "No").click()
    expect_vote(page, aid, 0, 0, None)
    expect(widget(page, aid).get_by_role("status")).to_have_text(re.compile("removed"))
    assert live_server.counts(aid) == {"yes": 0, "no": 0}
    assert tab.errors == []


def document_cookie(page: Any) -> str:
    return str(page.evaluate("document.cookie"))


def test_whole_flow_by_keyboard(tab: Tab, live_server: LiveServer) -> None:
    aid = live_server.article()
    page = tab.page
    page.goto(f"/demo/{aid}")
    expect_vote(page, aid, 0, 0, None)
    page.keyboard.press("Tab")
    assert focused(page).startswith("Yes")
    page.keyboard.press("Enter")
    expect_vote(page, aid, 1, 0, "Yes")
    assert focused(page).startswith("Yes")  # focus survives the re-render
    page.keyboard.press("Tab")
    assert focused(page).startswith("No")
    page.keyboard.press("Space")
    expect_vote(page, aid, 0, 1, "No")
    page.keyboard.press("Tab")
    assert focused(page) == "Outdated"
    page.keyboard.press("Enter")
    expect(widget(page, aid).get_by_role("button", name="Outdated")).to_have_attribute(
        "aria-pressed", "true")
    page.keyboard.press("Shift+Tab")
    assert focused(page).startswith("No")
    page.keyboard.press("Space")
    expect_vote(page, aid, 0, 0, None)
    outline = page.evaluate("""() => {
        let a = document.activeElement;
        while (a.shadowRoot && a.shadowRoot.activeElement) a = a.shadowRoot.activeElement;
        return [a.textContent, getComputedStyle(a).outlineStyle];
    }""")
    assert outline[0].startswith("No") and outline[1] != "none"  # a visible focus ring
    assert live_server.counts(aid) == {"yes": 0, "no": 0}


def test_two_widgets_on_one_page(tab: Tab, live_server: LiveServer) -> None:
    first, second = live_server.article(), live_server.article(title="Second story")
    page = tab.page
    page.goto(f"/demo/{first}?also={second}")
    expect_vote(page, first, 0, 0, None)
    expect_vote(page, second, 0, 0, None)
    button(page, first, "Yes").click()
    expect_vote(page, first, 1, 0, "Yes")
    button(page, second, "No").click()
    expect_vote(page, second, 0, 1, "No")
    expect_vote(page, first, 1, 0, "Yes")
    assert live_server.counts(first) == {"yes": 1, "no": 0}
    assert live_server.counts(second) == {"yes": 0, "no": 1}
    # One token shared by both widgets; the reload reads both votes in one private call.
    tab.api_requests.clear()
    page.reload()
    expect_vote(page, first, 1, 0, "Yes")
    expect_vote(page, second, 0, 1, "No")
    assert [r.split("?")[0] for r in tab.api_requests] == [
        f"GET {live_server.url}/api/v1/widget/mine", f"GET {live_server.url}/api/v1/widget",
    ] or [r.split("?")[0] for r in tab.api_requests] == [
        f"GET {live_server.url}/api/v1/widget", f"GET {live_server.url}/api/v1/widget/mine",
    ]


PAYLOAD = '<img src=x onerror="window.__xss=1;alert(1)"><script>window.__xss=2</script>'


def test_script_payloads_are_shown_as_text(tab: Tab, live_server: LiveServer) -> None:
    section = "Sec-" + str(time.monotonic_ns())
    aid = live_server.article(title="Host " + PAYLOAD, section=section)
    live_server.article(title="Related " + PAYLOAD, section=section)
    live_server.links(aid, [{"title": "Curated " + PAYLOAD, "url": "https://example.com/a"}])
    page = tab.page
    page.goto(f"/demo/{aid}")
    box = widget(page, aid)
    expect(box.get_by_role("link", name="Curated " + PAYLOAD)).to_be_visible()
    expect(box.get_by_role("link", name="Related " + PAYLOAD)).to_be_visible()
    expect(page.locator("h1")).to_have_text("Host " + PAYLOAD)
    page.wait_for_timeout(300)
    assert page.evaluate("window.__xss") is None
    assert tab.dialogs == []
    assert page.evaluate(
        "document.querySelector('[data-engage-article]').shadowRoot.querySelectorAll"
        "('img, script').length") == 0


def test_click_lands_on_the_link_and_counts_once(tab: Tab, live_server: LiveServer) -> None:
    aid = live_server.article()
    target = live_server.article(title="Where the link goes")
    link = live_server.links(aid, [
        {"title": "Read the follow-up", "url": f"{live_server.url}/demo/{target}"},
    ])[0]
    page = tab.page
    page.goto(f"/demo/{aid}")
    anchor = widget(page, aid).get_by_role("link", name="Read the follow-up")
    anchor.scroll_into_view_if_needed()
    # Viewable impression: half visible for a second, counted once per page view.
    assert wait_until(lambda: live_server.linkstats(aid).get(f"{link['id']}:imps") == "1")
    page.mouse.wheel(0, -5000)
    page.wait_for_timeout(200)
    anchor.scroll_into_view_if_needed()
    page.wait_for_timeout(1400)
    assert live_server.linkstats(aid).get(f"{link['id']}:imps") == "1"

    anchor.click()
    page.wait_for_url(f"{live_server.url}/demo/{target}")
    expect(page.locator("h1")).to_have_text("Where the link goes")
    stats = live_server.linkstats(aid)
    assert stats.get(f"{link['id']}:clicks") == "1"
    page.go_back()
    expect(widget(page, aid).get_by_role("link", name="Read the follow-up")).to_be_visible()
    assert wait_until(lambda: live_server.linkstats(aid).get(f"{link['id']}:imps") == "2")


def test_page_load_makes_at_most_two_api_requests(tab: Tab, live_server: LiveServer) -> None:
    aid = live_server.article()
    page = tab.page
    page.goto(f"/demo/{aid}")
    expect_vote(page, aid, 0, 0, None)
    page.wait_for_load_state("networkidle")
    assert len(tab.api_requests) == 1, tab.api_requests  # no token yet: one anonymous read
    button(page, aid, "Yes").click()
    expect_vote(page, aid, 1, 0, "Yes")
    tab.api_requests.clear()
    page.reload()
    expect_vote(page, aid, 1, 0, "Yes")
    page.wait_for_load_state("networkidle")
    assert len(tab.api_requests) == 2, tab.api_requests


def test_blocked_storage_still_votes(browser: Any, live_server: LiveServer) -> None:
    aid = live_server.article()
    context = browser.new_context(base_url=live_server.url)
    context.add_init_script("""Object.defineProperty(window, 'localStorage', {
        get() { throw new DOMException('blocked', 'SecurityError'); } });""")
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.goto(f"/demo/{aid}")
        button(page, aid, "Yes").click()
        expect_vote(page, aid, 1, 0, "Yes")
        button(page, aid, "No").click()  # the in-memory token keeps the one vote
        expect_vote(page, aid, 0, 1, "No")
        assert live_server.counts(aid) == {"yes": 0, "no": 1}
        assert errors == []
    finally:
        context.close()


@pytest.mark.parametrize("status", [429, 503, 0])
def test_failures_show_a_quiet_retry_message(tab: Tab, live_server: LiveServer,
                                             status: int) -> None:
    aid = live_server.article()
    page = tab.page

    def fail(route: Any) -> None:
        if status:
            route.fulfill(status=status, headers={"Retry-After": "5"}, json={
                "error": {"code": "x", "message": "no"}})
        else:
            route.abort("connectionrefused")

    page.route("**/reactions/mine", fail)
    page.goto(f"/demo/{aid}")
    button(page, aid, "Yes").click()
    expect(widget(page, aid).get_by_role("status")).to_have_text(re.compile("try again"))
    expect_vote(page, aid, 0, 0, None)
    assert tab.errors == []
    page.unroute("**/reactions/mine")
    button(page, aid, "Yes").click()
    expect_vote(page, aid, 1, 0, "Yes")


def test_publisher_page_on_another_origin(tab: Tab, live_server: LiveServer) -> None:
    """Cross-origin embedding: API found from the script src, CORS, locales, data labels."""
    ko, es = live_server.article(), live_server.article()
    live_server.links(es, [{"title": "Policy Link", "url": "https://example.com/p"}])
    html = f"""<!doctype html><html lang="ko"><head><meta charset="utf-8"></head><body>
      <h1>Publisher</h1>
      <div data-engage-article="{ko}"></div>
      <div data-engage-article="{es}" data-engage-lang="es"
           data-engage-related="Policy Links" data-engage-question="¿Útil?"></div>
      <script src="{live_server.url}/widget.js" async></script></body></html>"""
    page = tab.page
    page.goto(live_server.publish("/story.html", html))
    korean = widget(page, ko)
    expect(korean.get_by_role("heading", name="이 기사가 마음에 드시나요?")).to_be_visible()
    korean.get_by_role("button", name=re.compile("^예")).click()
    expect(korean.get_by_role("button", name=re.compile("^예"))).to_have_attribute(
        "aria-pressed", "true")
    spanish = widget(page, es)
    expect(spanish.get_by_role("heading", name="¿Útil?")).to_be_visible()
    expect(spanish.get_by_role("heading", name="Policy Links")).to_be_visible()
    expect(spanish.get_by_role("button", name=re.compile("^Sí"))).to_be_visible()
    assert live_server.counts(ko) == {"yes": 1, "no": 0}
    assert tab.errors == []


def test_works_under_a_strict_publisher_csp(tab: Tab, live_server: LiveServer) -> None:
    """No inline style or script needed: a publisher CSP without 'unsafe-inline' is fine."""
    aid = live_server.article()
    create_poll(live_server, aid, question="Strict?", options=["One", "Two"])
    html = f"""<!doctype html><html lang="en"><body>
      <div data-engage-article="{aid}"></div>
      <script src="{live_server.url}/widget.js" async></script></body></html>"""
    csp = (f"default-src 'none'; script-src {live_server.url}; "
           f"connect-src {live_server.url}; style-src 'self'")
    page = tab.page
    page.goto(live_server.publish("/strict.html", html, csp))
    button(page, aid, "Yes").click()
    expect_vote(page, aid, 1, 0, "Yes")
    box = widget(page, aid)
    assert box.locator(".b").first.evaluate("n => getComputedStyle(n).borderTopLeftRadius") \
        == "10px"  # the widget's own stylesheet applies
    box.get_by_role("button", name="Two").click()
    expect(box.locator(".bar").nth(1)).to_have_attribute("style", "width: 100%;")
    assert box.locator(".bar").nth(1).evaluate("n => n.getBoundingClientRect().width") > 100
    assert tab.errors == []
    assert not [m for m in tab.console if "Content Security Policy" in m], tab.console


def test_rtl_chinese_and_reduced_motion(tab: Tab, live_server: LiveServer) -> None:
    aid = live_server.article()
    html = f"""<!doctype html><html lang="zh-CN" dir="rtl"><body>
      <div data-engage-article="{aid}"></div>
      <script src="{live_server.url}/widget.js" async></script></body></html>"""
    page = tab.page
    page.emulate_media(reduced_motion="reduce")
    page.goto(live_server.publish("/rtl.html", html))
    box = widget(page, aid)
    expect(box.get_by_role("heading", name="您喜欢这篇文章吗？")).to_be_visible()
    like = box.get_by_role("button", name=re.compile("^喜欢"))
    dislike = box.get_by_role("button", name=re.compile("^不喜欢"))
    assert like.bounding_box()["x"] > dislike.bounding_box()["x"]  # laid out right to left
    assert like.evaluate("b => getComputedStyle(b).direction") == "rtl"
    assert like.evaluate("b => getComputedStyle(b).transitionDuration") == "0s"
    like.click()
    expect(like).to_have_attribute("aria-pressed", "true")


def test_links_seen_briefly_are_not_impressions(tab: Tab, live_server: LiveServer) -> None:
    aid = live_server.article()
    link = live_server.links(aid, [{"title": "Below the fold", "url": "https://example.com/"}])[0]
    page = tab.page
    page.set_viewport_size({"width": 1100, "height": 300})
    page.goto(f"/demo/{aid}")
    anchor = widget(page, aid).get_by_role("link", name="Below the fold")
    expect(anchor).to_be_attached()
    page.wait_for_timeout(1300)
    assert f"{link['id']}:imps" not in live_server.linkstats(aid)  # never on screen
    anchor.scroll_into_view_if_needed()
    page.wait_for_timeout(400)
    page.mouse.wheel(0, -5000)
    page.wait_for_timeout(1300)
    assert f"{link['id']}:imps" not in live_server.linkstats(aid)  # seen for 0.4 s only
    anchor.scroll_into_view_if_needed()
    assert wait_until(lambda: live_server.linkstats(aid).get(f"{link['id']}:imps") == "1")


def test_raw_redirect_requests_on_the_wire(live_server: LiveServer) -> None:
    """Bytes no browser or test client would normalise still redirect only to stored URLs."""
    aid = live_server.article()
    link = live_server.links(aid, [{"title": "Home", "url": "https://example.com/home"}])[0]
    host = live_server.url.removeprefix("http://")
    address = ("127.0.0.1", int(host.rsplit(":", 1)[1]))
    raw_paths = [f"/r/{link['id']}", "/r//evil.com", "/r/%2F%2Fevil.com", "/r/\\evil.com",
                 f"/r/{link['id']}?url=https://evil.com", "/r/..%2F..%2Fevil.com",
                 f"/r/{link['id']}%0d%0aLocation:%20https://evil.com", "/r/%c0%ae%c0%ae/",
                 "https://evil.com/r/x", f"//evil.com/r/{link['id']}", "/r/" + "a" * 9000]
    for path in raw_paths:
        with socket.create_connection(address, timeout=5) as conn:
            conn.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: Mozilla/5.0"
                         "\r\nConnection: close\r\n\r\n".encode())
            reply = b""
            while chunk := conn.recv(65536):
                reply += chunk
        head = reply.split(b"\r\n\r\n", 1)[0].decode("latin-1")
        locations = [line.split(":", 1)[1].strip() for line in head.split("\r\n")[1:]
                     if line.lower().startswith("location:")]
        assert locations in ([], ["https://example.com/home"]), (path, head)


def test_page_on_a_refused_origin_shows_nothing_and_warns_once(
    tab: Tab, live_server: LiveServer
) -> None:
    """A publisher page whose origin ENGAGE_ALLOWED_ORIGINS lacks: readers are not told
    to try again (they cannot fix it), the publisher gets one console warning."""
    first, second = live_server.article(), live_server.article()
    html = f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
      <title>Another site</title></head><body style="font: 16px system-ui; margin: 2rem">
      <h1>A page on a site engage does not know</h1>
      <p id="host">The article text stays as it is; the widget below stays out of the way.</p>
      <div data-engage-article="{first}" style="outline: 1px dashed #aaa"></div>
      <div data-engage-article="{second}"></div>
      <p>End of the article.</p>
      <script src="{live_server.url}/widget.js" async></script></body></html>"""

    def stranger_site(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
        return [html.encode()]

    page = tab.page
    warnings: list[str] = []
    page.on("console", lambda msg: warnings.append(msg.text) if msg.type == "warning" else None)
    # Its own server on its own port: an origin that is not on the allowlist.
    with serving(stranger_site) as site:
        origin = f"http://127.0.0.1:{site.server_port}"
        with page.expect_console_message(lambda msg: msg.type == "warning"):
            page.goto(origin + "/story.html")
        # A widget added later fails the same way and does not warn again.
        page.evaluate("""aid => {
            const el = document.createElement('div');
            el.setAttribute('data-engage-article', aid);
            document.body.appendChild(el);
            window.engage.scan();
        }""", first)
        page.wait_for_timeout(500)
        assert len(warnings) == 1, warnings
        assert "ENGAGE_ALLOWED_ORIGINS" in warnings[0] and origin in warnings[0]
        for aid in (first, second):
            box = widget(page, aid)
            assert box.first.evaluate("n => n.shadowRoot.textContent") == ""
            expect(box.first).to_be_hidden()
        assert "try again" not in page.content()
        expect(page.locator("#host")).to_be_visible()
        assert tab.errors == []
        # For the picture, the console's line is copied under the page (the test's own note).
        page.evaluate("""text => {
            const note = document.createElement('pre');
            note.textContent = 'Browser console (warning):\\n' + text;
            note.style.cssText = 'margin-top:3rem;padding:.8rem;background:#fffbe6;' +
                'border:1px solid #e6c200;white-space:pre-wrap;font-size:13px';
            document.body.appendChild(note);
        }""", warnings[0])
        page.screenshot(path=str(SCREENSHOTS / "widget-origin-not-allowed.png"),
                        clip={"x": 0, "y": 0, "width": 1100, "height": 420})


def test_api_down_on_page_load_still_says_try_again(tab: Tab, live_server: LiveServer) -> None:
    """Nothing answers at all (not even the script's own URL): that is not the origin."""
    aid = live_server.article()
    page = tab.page
    warnings: list[str] = []
    page.on("console", lambda msg: warnings.append(msg.text) if msg.type == "warning" else None)
    page.goto(f"/demo/{aid}")
    expect_vote(page, aid, 0, 0, None)
    page.route("**/api/v1/widget?**", lambda route: route.abort("connectionrefused"))
    page.route("**/widget.js", lambda route: route.abort("connectionrefused")
               if route.request.resource_type == "fetch" else route.continue_())
    page.evaluate("""aid => {
        const el = document.createElement('div');
        el.setAttribute('data-engage-article', aid);
        document.body.appendChild(el);
        window.engage.scan();
    }""", aid)
    expect(widget(page, aid).last.get_by_role("status")).to_have_text(re.compile("try again"))
    assert warnings == []


def test_demo_screenshots_light_and_dark(tab: Tab, live_server: LiveServer) -> None:
    page = tab.page
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        page.goto("/demo/korea-china-reset")
        box = widget(page, "korea-china-reset")
        expect(box.get_by_role("link", name="Policy Link")).to_be_visible()
        expect(button(page, "korea-china-reset", "Yes")).to_be_visible()
        expect(box.get_by_role("button", name="Yes, this year")).to_be_visible()
        path = SCREENSHOTS / f"demo-{scheme}.png"
        page.screenshot(path=str(path), full_page=True)
        assert path.stat().st_size > 10_000
    assert tab.errors == []
    # Nothing refused by the page's CSP, nothing missing, no script errors.
    assert tab.console == []


def create_poll(live: LiveServer, article_id: str, **fields: Any) -> dict[str, Any]:
    status, body = live.api("POST", "/api/v1/polls", {"article": article_id, **fields},
                            live.editor)
    assert status == 201, body
    return dict(body)


def test_poll_vote_shows_result_bars(tab: Tab, live_server: LiveServer) -> None:
    aid = live_server.article()
    create_poll(live_server, aid, question="Will the talks resume this year?",
                options=["Yes, soon", "Not this year"], results="after_vote")
    multi = create_poll(live_server, aid, question="Which topics should we follow?",
                        options=["Trade", "Culture", "Security"], multiple=True, max_choices=2)
    page = tab.page
    page.goto(f"/demo/{aid}")
    box = widget(page, aid)
    single = box.get_by_role("group", name="Will the talks resume this year?")
    expect(single.get_by_role("button", name="Yes, soon")).to_be_visible()
    expect(single.locator(".bar")).to_have_count(0)  # after_vote: nothing before voting

    single.get_by_role("button", name="Not this year").click()
    expect(single.get_by_role("button", name="Not this year")).to_have_attribute(
        "aria-pressed", "true")
    expect(single.locator(".bar")).to_have_count(2)
    expect(single.locator(".r")).to_have_text(["Yes, soon0%", "Not this year100%"])
    widths = single.locator(".bar").evaluate_all("bars => bars.map(b => b.style.width)")
    assert widths == ["0%", "100%"]
    expect(single.get_by_text("1 vote", exact=True)).to_be_visible()
    # The thanks shows in the poll answered, not under the related links.
    expect(single.get_by_role("status")).to_have_text(re.compile("Thanks"))

    group = box.get_by_role("group", name="Which topics should we follow?")
    group.get_by_role("checkbox", name="Trade").check()
    group.get_by_role("checkbox", name="Security").check()
    expect(group.get_by_role("checkbox", name="Culture")).to_be_disabled()  # max_choices=2
    group.get_by_role("checkbox", name="Trade").uncheck()
    expect(group.get_by_role("checkbox", name="Culture")).to_be_enabled()
    group.get_by_role("checkbox", name="Trade").check()
    group.get_by_role("button", name="Vote").click()
    expect(group.locator(".r")).to_have_text(["Trade50%", "Culture0%", "Security50%"])

    page.reload()  # the reader's poll votes come back with the private read
    expect(single.get_by_role("button", name="Not this year")).to_have_attribute(
        "aria-pressed", "true")
    expect(group.get_by_role("checkbox", name="Security")).to_be_checked()

    status, _ = live_server.api("PATCH", f"/api/v1/polls/{multi['id']}", {"status": "closed"},
                                live_server.editor)
    assert status == 200
    page.reload()
    expect(group.get_by_text("This poll is closed.")).to_be_visible()
    expect(group.get_by_role("checkbox", name="Trade")).to_be_disabled()
    assert tab.errors == []


@pytest.mark.parametrize(("lang", "one", "two"), [
    ("en", "1 vote", "2 votes"), ("es", "1 voto", "2 votos"), ("ko", "1 표", "2 표"),
    ("zh", "1 票", "2 票"),
])
def test_vote_totals_follow_the_locales_plural_rules(tab: Tab, live_server: LiveServer,
                                                     lang: str, one: str, two: str) -> None:
    aid = live_server.article()
    poll = create_poll(live_server, aid, question="Which one?", options=["A", "B"])
    page = tab.page
    path = live_server.publish(f"/plural-{lang}.html", f"<html lang='{lang}'><body>"
                               f"<div data-engage-article='{aid}'></div>"
                               f"<script src='{live_server.url}/widget.js'></script></body></html>")
    page.goto(path)
    group = widget(page, aid).get_by_role("group", name="Which one?")
    group.get_by_role("button", name="A").click()
    expect(group.get_by_text(one, exact=True)).to_be_visible()
    reader = live_server.api("POST", "/api/v1/readers")[1]["reader"]
    status, _ = live_server.api("PUT", f"/api/v1/polls/{poll['id']}/votes/mine",
                                {"options": [poll["options"][1]["id"]]},
                                headers={"X-Engage-Reader": reader})
    assert status == 200
    page.reload()
    expect(group.get_by_text(two, exact=True)).to_be_visible()
    assert tab.errors == []


def test_an_article_with_its_own_emoji_set(tab: Tab, live_server: LiveServer) -> None:
    """Eight emoji choices (docs/sites.md): shown in order beside a yes/no article, each
    a labelled toggle; a vote counts under its own name."""
    emoji = ["😀", "😂", "😮", "😢", "😡", "👍", "👎", "🔥"]
    quiz = live_server.article(reaction_set={"choices": emoji, "reason_choice": None,
                                             "reasons": []})
    plain = live_server.article()
    html = f"""<!doctype html><html lang="en"><head><meta charset="utf-8"></head><body>
      <div data-engage-article="{quiz}"></div><div data-engage-article="{plain}"></div>
      <script src="{live_server.url}/widget.js" async></script></body></html>"""
    page = tab.page
    page.goto(live_server.publish("/quiz.html", html))
    shown = widget(page, quiz).get_by_role("button")
    expect(shown).to_have_count(len(emoji))
    assert [name.split(" ")[0] for name in shown.all_inner_texts()] == emoji
    button(page, quiz, "🔥").click()
    expect(button(page, quiz, "🔥")).to_have_attribute("aria-pressed", "true")
    expect_vote(page, plain, 0, 0, None)
    assert live_server.counts(quiz) == {c: int(c == "🔥") for c in emoji}
    assert tab.errors == []
