"""Every Redis key engage uses, built in one place.

All keys start with the configured prefix (default `engage`). Keys that one Lua
script touches together carry the same hash tag, so each script runs in one slot of
a Redis Cluster unchanged: `{<article_id>}` for an article, `{<poll_id>}` for a poll.
Global keys (indexes, sites, tokens, webhooks) are only written by editor/admin paths (and
the webhook worker, for its retry and dead-letter keys), never inside a per-article
script.

Key map (P = prefix, A = article id, Q = poll id):

| key                          | type   | lifetime                | holds                                         |
|------------------------------|--------|-------------------------|-----------------------------------------------|
| P:a:{A}                      | hash   | until the article is deleted | title, url, section, published_at, tags (JSON), created_at, updated_at, source (editor|page|feed; none: editor), verified_at, follow_page (1|0) |
| P:a:{A}:counts               | hash   | with the article        | choice -> current number of readers holding it |
| P:a:{A}:reasons              | hash   | with the article        | reason -> current number of "no" votes giving it |
| P:a:{A}:voters               | hash   | with the article        | reader hash -> "choice" or "choice|reason" (the one-vote key) |
| P:a:{A}:thr:<addr hash>      | string | THROTTLE_WINDOW seconds | vote changes in the window from one address group, or one wider network (IPv6 /56, /48, IPv4 /24; store/budgets.py) |
| P:a:{A}:events               | stream | entries trimmed after EVENT_RETENTION_DAYS (MINID) | every accepted change on the article (a reaction's with its `channel`) |
| P:a:{A}:h:<YYYYMMDDHH>       | hash   | HOUR_BUCKET_DAYS days   | stats counters of that UTC hour (see below)   |
| P:a:{A}:d:<YYYYMMDD>         | hash   | DAY_BUCKET_DAYS days    | stats counters of that UTC day                 |
| P:a:{A}:links                | string | with the article        | JSON list of curated links [{id,title,url}]   |
| P:a:{A}:linkstats            | hash   | with the article        | "<link id>:clicks" / "<link id>:imps" -> n     |
| P:a:{A}:polls                | zset   | with the article        | poll id -> created (epoch s)                   |
| P:a:{A}:credits              | hash   | until the aggregator's next pass | click stream entry id -> reader hash: a counted click of a reader holding a token, until the aggregator files it in the reader's index (the click's event names no one) |
| P:a:{A}:clk:<addr hash>:<L>  | string | CLICK_WINDOW seconds    | clicks on link L counted from this address group (1 at most) or wider network |
| P:a:{A}:imps:<addr hash>     | hash   | CLICK_WINDOW seconds from the first | link id -> impressions from this address group |
| P:p:{Q}                      | hash   | until the poll is deleted | question, options (JSON), article, multiple, max_choices, closes_at, results, status, ... |
| P:p:{Q}:counts               | hash   | with the poll           | option id -> votes; "_voters" -> distinct voters |
| P:p:{Q}:voters               | hash   | with the poll           | reader hash -> comma-joined option ids         |
| P:p:{Q}:thr:<addr hash>      | string | THROTTLE_WINDOW seconds | vote changes in the window from one address group or wider network |
| P:p:{Q}:events               | stream | as article events       | every accepted poll vote and state change      |
| P:p:{Q}:h:<YYYYMMDDHH> / :d: | hash   | as article buckets      | poll vote counters per bucket: `votes` (votes and changes), `+<option id>`, `-<option id>` |
| P:r:{R}                      | hash   | READER_RETENTION_DAYS after the last write | per-reader index (R = reader hash): "a:<article id>" / "p:<poll id>" / "c:<link id>" -> epoch ms of the reader's last action there (its stream entry's time), written by the aggregator from the vote's event (a click's from P:a:{A}:credits), off the request path (docs/privacy.md) |
| P:readers                    | zset   | until the reader is erased or unlinked | reader hash -> epoch ms of the last action (the retention job's list) |
| P:rv:<digest>                | string | READER_RETENTION_DAYS   | the reader's one accepted token after a renewal (a SHA-256 of it; any other is refused), or "erased" (all refused). Digest = SHA-256 of "revoked:" + reader hash, so no reader hash is left |
| P:revocations                | stream | trimmed to READER_TOKEN_DAYS (by the retention job) | one entry per renewal or erasure: `d` (the P:rv digest, cut to 32), `v` (its value); each process reads it from where it last stopped, at most once a second, to refuse revoked tokens' votes without a round trip (store/readers.py) |
| P:articles                   | zset   | forever                 | article id -> published_at (epoch s)           |
| P:section:<name>             | zset   | forever                 | article id -> published_at, per section        |
| P:sections                   | set    | forever                 | every section name an article has used         |
| P:polls                      | zset   | forever                 | poll id -> created (epoch s); a deleted poll stays listed so its event stream (kept EVENT_RETENTION_DAYS) stays reachable |
| P:linkindex                  | hash   | forever                 | link id -> article id (for /r/<link id>)        |
| P:tokens                     | hash   | until revoked           | token id -> JSON {role, name, hash, created_at, expires_at, sites (an editor's, when limited)} |
| P:tokens:used                | hash   | until revoked           | token id -> when it was last used (ISO 8601, to the minute) |
| P:session:<id digest>       | string | 12 hours after last use, or until sign-out | token id of a signed-in dashboard session, or JSON {id, role, name, sites, until} of one signed in through OpenID Connect (ends at `until` however used) |
| P:rl:{N}:<what>:<addr hash>  | string | one minute              | requests counted from one address group, or wider network, for `what` (`mint`: reader tokens, `imp`: impression reports, `data`: exports and erasures of a reader's data, `page`: reads that queue unknown ids); N is the hash of the widest network the address is in (its group's when none), so one script finds them all in one slot (store/budgets.py) |
| P:addrnonce:<YYYYMMDD>       | string | until the day ends + 10 min | random nonce of that UTC day's address-hash key (the key needs the app secret too) |
| P:sites                      | hash   | until the site is changed | site name -> JSON {name, origins, locale, reactions, links_shown, cache_max_age, cache_stale} (store/sites.py) |
| P:webhooks                   | hash   | until deleted           | webhook id -> JSON {url, events, secret, ...}  |
| P:webhooks:dead              | stream | trimmed to 10,000       | deliveries that failed after every retry       |
| P:audit                      | stream | trimmed to 10,000       | staff actions on reader data (event and poll exports): who, what, when (store/audit.py) |
| P:webhooks:retry             | zset   | until delivered or dead | JSON {delivery, webhook, attempts, body} -> due time (epoch s); a test delivery starts here |
| P:webhooks:status            | hash   | until the webhook is deleted | webhook id -> JSON {at, outcome, error, attempts, delivery} of its last attempt |
| P:f:{find}:all              | zset   | forever                 | article id -> published_at (epoch s): the search index's every article |
| P:f:{find}:<w|t|s|site>:<term> | zset | forever               | article id -> published_at, per title/id/URL-path word (`w:`, casefolded), tag (`t:`, casefolded), section (`s:`), site (`site:`) |
| P:f:{find}:doc              | hash   | forever                 | article id -> JSON list of the index sets it is in (so an edit leaves the old ones) |
| P:f:{find}:vocab            | zset   | forever                 | every word indexed -> 0 (read by lexical range: the words a prefix begins) |
| P:f:{find}:secs:<site>      | set    | forever                 | every section name the site's articles have used |
| P:f:{find}:q:<digest>       | zset   | 30 seconds              | a search's intersection, or a prefix's (or sites') union, read while it lasts |
| P:x:{stats}:seen            | hash   | forever                 | events stream key -> last entry id applied to the aggregates |
| P:x:{stats}:sec             | hash   | forever                 | article id -> section (as the aggregates file it) |
| P:x:{stats}:n:<choice>      | hash   | forever                 | article id -> standing reactions of that choice |
| P:x:{stats}:click / :imp    | hash   | forever                 | article id -> all-time link clicks / impressions |
| P:x:{stats}:sectot          | hash   | forever                 | "<section>\t<articles|c:<choice>|click|imp>" -> all-time sum |
| P:x:{stats}:ids[:s:<sec>]   | zset   | forever                 | article id -> 0 (lexical order), all or one section |
| P:x:{stats}:rank:<approval|votes|worst>[:s:<sec>] | zset | forever    | article id -> negated ranking key (formulas.rank_keys) |
| P:x:{stats}:h:<YYYYMMDDHH>:<field> | zset | HOUR_BUCKET_DAYS days | article id -> that hour's `n:<choice>` (net reactions), `cast` (votes cast), `click`, `imp` |
| P:x:{stats}:d:<YYYYMMDD>:<field>   | zset | DAY_BUCKET_DAYS days  | the same per UTC day                             |
| P:x:{stats}:w:<W>:meta      | hash   | forever (rolled)        | rolling window W (24h, 7d, 30d, store/windows.py): `from`, the first hour it covers |
| P:x:{stats}:w:<W>:n:<choice> / :click / :imp | zset | until the next roll | article -> net reactions / clicks / impressions in W |
| P:x:{stats}:w:<W>:ids[:s:<sec>] | zset | until the next roll   | article -> 0: the articles that received votes in W |
| P:x:{stats}:w:<W>:rank:<approval|votes|worst>[:s:<sec>] | zset | until the next roll | as the all-time ranking sets, over W |
| P:x:{stats}:w:<W>:secs      | set    | until the next roll     | the sections filed in W                        |
| P:x:{stats}:w:<W>:sectot    | hash   | until the next roll     | "<section>\t<articles|c:<choice>|click|imp>" -> sum in W |
| P:x:{stats}:w:<W>:pending   | zset   | while a roll files its articles | article -> 0: articles a roll has summed but not yet filed (readers sum the buckets meanwhile) |
| P:x:{stats}:site:<S>:...    | as above | as above              | the same aggregates (`sec`, `n:`, `click`, `imp`, `sectot`, `ids`, `rank:`, `h:`/`d:`, `w:`) of site S's articles; the default site's are the unprefixed ones above (store/aggregates.py) |
| P:x:{stats}[:site:<S>]:own  | hash   | forever                 | article id -> its own reaction set's choices, comma-joined (articles with an own set only): how a window roll ranks it |
| P:x:{stats}:feed            | stream | trimmed to ~1,000       | the newest events applied (the live view's feed) |
| P:x:{reg:S}:pending        | zset   | until verified, dropped past PENDING_PER_SITE | article id -> when the worker may take it (epoch s; a lease end once taken): unknown ids readers' pages named on site S (store/registry.py) |
| P:x:{reg:S}:urls           | hash   | as :pending             | article id -> the page URL the reader's page gave |
| P:x:{reg:S}:failed         | zset   | newest UNVERIFIED_KEPT  | article id (or feed URL) -> when its verification failed (epoch s) |
| P:x:{reg:S}:failures       | hash   | as :failed              | the same key -> JSON {url, reason, message, at}: the dashboard's unverified pages |
| P:x:{reg:S}:feeds          | hash   | while the feed is one of site S's `feeds` | feed URL -> JSON {etag, last_modified, digest, failures, next_at, checked_at, outcome, reason, children}: its poll state (store/feeds.py) |
| P:x:{reg:S}:feedlock:<digest> | string | FEED_LEASE seconds, or until the poll ends | the worker polling the feed whose URL has this SHA-256 digest (first 32 hex digits) |
| P:x:{alerts}:rules          | hash   | until deleted           | alert rule id -> JSON rule (store/alerts.py)    |
| P:x:{alerts}:state          | hash   | while firing (a poll milestone or a digest day: forever) | "<rule id>|<article or poll id>" or "digest|<YYYY-MM-DD>" -> JSON {at, figures} |
| P:x:{alerts}:pending        | hash   | until delivered or given up | note id -> JSON note (fired, resolved or digest) with the channels still to do |
| P:x:{alerts}:due            | zset   | as :pending             | note id -> when to try it next (epoch s); a claim moves it to the lease end |
| (group on every events stream) | consumer group `engage-webhooks` | with the stream | the worker's read position and unacknowledged entries |

Keys under `P:x:{stats}` are the cross-article aggregates (rankings, section and site
figures). They are never written by a per-article script: the aggregator
(`store/aggregates.py`, run by `engage worker` and `engage serve`) keeps them from the
event streams with one script of its own. They share one hash tag, so on a Redis Cluster
they all live in one slot and a range is merged there with ZUNION. Keys under
`P:x:{alerts}` are the alert rules and their state (one slot too, so one script moves
a rule's subject to firing and queues its note together: store/alerts.py).

Stats bucket fields: `+<choice>` / `-<choice>` votes taken / withdrawn from a choice,
`channel:<c>` votes cast or moved through channel c (web, email, nojs, amp:
`reactions.CHANNELS`), `reason:<r>` reasons given, `poll` poll ticks, `click:<link>` / `imp:<link>` link
clicks and impressions, `click` / `imp` their totals, and `refused:<what>` activity
not counted (`stats.REFUSED` names them: article buckets count reactions, clicks and
impressions, poll buckets count poll votes).

Atomicity: on one Redis and on a cluster alike, everything one script writes for one
article (or one poll) is atomic: dedupe, counts, throttle, stats buckets and the
event. The global indexes are written by editor paths in the same pipeline but not
atomically with the article; they are idempotent (ZADD/HSET) and rewritten by every
PUT, so a failure between the two is repaired by retrying the request.
"""

from __future__ import annotations

from datetime import UTC, datetime


class Keys:
    """Key builders under one prefix."""

    def __init__(self, prefix: str = "engage") -> None:
        self.prefix = prefix
        # Keys without an id: built once.
        self.agg_base = f"{prefix}:x:{{stats}}"  # the aggregates' one hash tag (one slot)
        self.find_base = f"{prefix}:f:{{find}}"  # the article search index's (one slot)
        self.articles = f"{prefix}:articles"
        self.sections = f"{prefix}:sections"
        self.polls = f"{prefix}:polls"
        self.linkindex = f"{prefix}:linkindex"
        self.tokens = f"{prefix}:tokens"
        self.tokens_used = f"{prefix}:tokens:used"
        self.readers = f"{prefix}:readers"
        self.revocations = f"{prefix}:revocations"
        self.sites = f"{prefix}:sites"
        self.webhooks = f"{prefix}:webhooks"
        self.webhook_dead = f"{prefix}:webhooks:dead"
        self.audit = f"{prefix}:audit"
        self.webhook_retry = f"{prefix}:webhooks:retry"
        self.webhook_status = f"{prefix}:webhooks:status"

    # -- articles -----------------------------------------------------------------
    def article(self, article_id: str) -> str:
        return f"{self.prefix}:a:{{{article_id}}}"

    def article_part(self, article_id: str, part: str) -> str:
        return f"{self.article(article_id)}:{part}"

    def article_counts(self, article_id: str) -> str:
        return self.article_part(article_id, "counts")

    def article_reasons(self, article_id: str) -> str:
        return self.article_part(article_id, "reasons")

    def article_voters(self, article_id: str) -> str:
        return self.article_part(article_id, "voters")

    def article_events(self, article_id: str) -> str:
        return self.article_part(article_id, "events")

    def article_links(self, article_id: str) -> str:
        return self.article_part(article_id, "links")

    def article_linkstats(self, article_id: str) -> str:
        return self.article_part(article_id, "linkstats")

    def article_polls(self, article_id: str) -> str:
        return self.article_part(article_id, "polls")

    def article_throttle(self, article_id: str, addr_hash: str) -> str:
        return self.article_part(article_id, f"thr:{addr_hash}")

    def article_credits(self, article_id: str) -> str:
        return self.article_part(article_id, "credits")

    def article_click_seen(self, article_id: str, addr_hash: str, link_id: str) -> str:
        return self.article_part(article_id, f"clk:{addr_hash}:{link_id}")

    def article_impressions_seen(self, article_id: str, addr_hash: str) -> str:
        return self.article_part(article_id, f"imps:{addr_hash}")

    # -- polls --------------------------------------------------------------------
    def poll(self, poll_id: str) -> str:
        return f"{self.prefix}:p:{{{poll_id}}}"

    def poll_part(self, poll_id: str, part: str) -> str:
        return f"{self.poll(poll_id)}:{part}"

    def poll_counts(self, poll_id: str) -> str:
        return self.poll_part(poll_id, "counts")

    def poll_voters(self, poll_id: str) -> str:
        return self.poll_part(poll_id, "voters")

    def poll_events(self, poll_id: str) -> str:
        return self.poll_part(poll_id, "events")

    def poll_throttle(self, poll_id: str, addr_hash: str) -> str:
        return self.poll_part(poll_id, f"thr:{addr_hash}")

    # -- readers ------------------------------------------------------------------
    def reader_index(self, reader: str) -> str:
        return f"{self.prefix}:r:{{{reader}}}"

    def reader_revoked(self, digest: str) -> str:
        return f"{self.prefix}:rv:{digest}"

    # -- time buckets -------------------------------------------------------------
    @staticmethod
    def hour_stamp(when: datetime) -> str:
        return when.astimezone(UTC).strftime("%Y%m%d%H")

    @staticmethod
    def day_stamp(when: datetime) -> str:
        return when.astimezone(UTC).strftime("%Y%m%d")

    def hour_bucket(self, owner_key: str, when: datetime) -> str:
        """`owner_key` is `article(id)` or `poll(id)`, so buckets share its slot."""
        return f"{owner_key}:h:{self.hour_stamp(when)}"

    def day_bucket(self, owner_key: str, when: datetime) -> str:
        return f"{owner_key}:d:{self.day_stamp(when)}"

    # -- cross-article aggregates (one hash tag: one cluster slot) --------------------
    def agg(self, part: str) -> str:
        return f"{self.agg_base}:{part}"

    def agg_site(self, site: str | None, default: str) -> str:
        """The aggregates' key base of a site's articles: the default site's is the base
        itself (so data written before sites reads unchanged)."""
        return self.agg_base if not site or site == default else self.agg(f"site:{site}")

    def find(self, part: str) -> str:
        return f"{self.find_base}:{part}"

    def alerts(self, part: str) -> str:
        return f"{self.prefix}:x:{{alerts}}:{part}"

    def registry(self, site: str, part: str) -> str:
        """Page verification of site `site` (`pending`, `urls`, `failed`, `failures`) and
        its feeds' poll state (`feeds`, `feedlock:<digest>`):
        one hash tag per site, so its scripts run in one slot."""
        return f"{self.prefix}:x:{{reg:{site}}}:{part}"

    # -- global -------------------------------------------------------------------
    def section(self, name: str) -> str:
        return f"{self.prefix}:section:{name}"

    def session(self, digest: str) -> str:
        return f"{self.prefix}:session:{digest}"

    def budget(self, what: str, tag: str, addr_hash: str) -> str:
        return f"{self.prefix}:rl:{{{tag}}}:{what}:{addr_hash}"

    def addrnonce(self, day: str) -> str:
        return f"{self.prefix}:addrnonce:{day}"
