"""The widget's Korean and Chinese labels are drawn as glyphs, not as missing-glyph boxes.

Needs a CJK font on the machine (.ci/run installs Debian's fonts-noto-cjk). Writes
docs/screenshots/widget-ko.png and widget-zh.png.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import SCREENSHOTS, LiveServer, Tab

pytestmark = pytest.mark.browser

ARTICLE = "korea-china-reset"
QUESTIONS = {"ko": "이 기사가 마음에 드시나요?", "zh": "您喜欢这篇文章吗？"}

# Each distinct character of the widget's CJK text, drawn on a canvas in the font the
# widget's heading uses. A character the fonts lack is drawn as the same "missing glyph"
# box as any other lacking character: so every CJK character must give its own bitmap,
# and none may equal the bitmap of unassigned code points (the control, which must
# come out as identical boxes, or the check proves nothing).
GLYPHS = r"""host => {
  const root = host.shadowRoot;
  const cjk = /[\u1100-\u11ff\u3130-\u318f\uac00-\ud7af\u3400-\u4dbf\u4e00-\u9fff]/u;
  const chars = [...new Set([...root.textContent].filter(c => cjk.test(c)))];
  const family = getComputedStyle(root.querySelector('h2, h3, [role=heading]')).fontFamily;
  const canvas = document.createElement('canvas');
  canvas.width = canvas.height = 64;
  const ctx = canvas.getContext('2d', {willReadFrequently: true});
  const draw = c => {
    ctx.clearRect(0, 0, 64, 64);
    ctx.font = `40px ${family}`;
    ctx.textBaseline = 'top';
    ctx.fillText(c, 8, 8);
    return canvas.toDataURL();
  };
  const missing = ['\u0378', '\u0379', '\u0380'].map(draw);
  const glyphs = chars.map(draw);
  return {chars: chars.join(''), family, distinct: new Set(glyphs).size,
          boxes: glyphs.filter(g => missing.includes(g)).length,
          controlDistinct: new Set(missing).size, controlBlank: missing[0] === draw(' ')};
}"""


@pytest.mark.parametrize("lang", list(QUESTIONS))
def test_cjk_labels_render_as_glyphs(tab: Tab, live_server: LiveServer, lang: str) -> None:
    html = f"""<!doctype html><html lang="{lang}"><head><meta charset="utf-8">
      <title>engage widget ({lang})</title></head><body>
      <main><div data-engage-article="{ARTICLE}"></div></main>
      <script src="{live_server.url}/widget.js" async></script></body></html>"""
    page = tab.page
    page.set_viewport_size({"width": 720, "height": 900})
    page.goto(live_server.publish(f"/cjk-{lang}.html", html))
    host = page.locator(f"[data-engage-article='{ARTICLE}']")
    expect(host.get_by_role("heading", name=QUESTIONS[lang])).to_be_visible()
    page.evaluate("document.fonts.ready")

    found = host.evaluate(GLYPHS)
    assert len(found["chars"]) >= 6, found
    assert found["controlDistinct"] == 1 and not found["controlBlank"], \
        f"the missing-glyph control did not draw one visible box: {found}"
    assert found["boxes"] == 0, f"drawn as missing-glyph boxes: {found}"
    assert found["distinct"] == len(found["chars"]), f"characters share a glyph: {found}"

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"widget-{lang}.png"
    host.screenshot(path=str(path))
    assert path.stat().st_size > 5_000
    assert tab.errors == []
