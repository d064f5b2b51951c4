"""Who follows a link without being a reader: prefetches and non-human agents.

Non-human agents are recognised by crawlerdetect's maintained list (crawlers, HTTP
libraries, headless browsers, link unfurlers); `EXTRA_AGENTS` adds the few mail
scanners and fetchers that list misses and that follow links in articles and mail.
"""

from __future__ import annotations

import re
from functools import cache

from crawlerdetect import CrawlerDetect
from werkzeug.datastructures import Headers

from engage.store.links import NOT_HUMAN, PREFETCH

# Missed by crawlerdetect 0.4.2 (tests/test_links.py names each): Office's own link
# checks, Outlook for Android's previews, mail link scanners, fediverse fetchers and
# the HTTP clients of newer JavaScript runtimes.
EXTRA_AGENTS = re.compile(
    r"ms-office|msoffice|outlook-android|proofpoint|urldefense|mimecast|pleroma|akkoma|"
    r"misskey|undici|deno/|bun/|guzzle",
    re.IGNORECASE,
)
# No browser sends a longer one, and the list's patterns slow down on long input.
MAX_AGENT_LENGTH = 512
# Headers a browser sends when it fetches ahead of a click (and Safari's previews).
PREFETCH_HEADERS = ("Sec-Purpose", "Purpose", "X-Moz", "X-Purpose")
_PREFETCH_VALUE = re.compile(r"prefetch|prerender|preview", re.IGNORECASE)


@cache
def _detector() -> CrawlerDetect:
    return CrawlerDetect()


def is_human_agent(user_agent: str) -> bool:
    agent = user_agent.strip()
    if not agent or len(agent) > MAX_AGENT_LENGTH or EXTRA_AGENTS.search(agent):
        return False
    return not _detector().is_crawler(agent)


def why_not_counted(method: str, headers: Headers) -> str | None:
    """Why a request for a counting redirect or vote must not count: "prefetch", "bot"
    (also a HEAD, which browsers do not send to follow a link), or None for a reader's."""
    if any(_PREFETCH_VALUE.search(headers.get(name, "")) for name in PREFETCH_HEADERS):
        return PREFETCH
    if method == "HEAD" or not is_human_agent(headers.get("User-Agent", "")):
        return NOT_HUMAN
    return None
