"""Address budgets: what one address group, and each wider network around it, may do to
one article, poll or link in one window.

A view hands the store the client's group hash (`address`: an IPv4 address, an IPv6
/64) and `networks`, name -> hash of each wider network the address is in
(`identity.WIDER_NETWORKS`: IPv6 `v6_56` and `v6_48`, IPv4 `v4_24`). The write's one
script spends one from every budget, or from none when one is used up (`spend` in
scripts.py), so a /48 of 65,536 households moves an article by its own budget at most.

A network's limit is the setting named after the group's and the network
(THROTTLE_VOTES -> THROTTLE_VOTES_V6_48), and never below the group's own: a network
holds the group, so a smaller budget would quietly lower the group's.

Requests not tied to one article (minting a reader token, reporting impressions) spend
from budgets of their own with `spend`: one script, one round trip, the same rule.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from engage.config import per_minute
from engage.store import Store, scripts
from engage.store.keys import Keys

Networks = Mapping[str, str]
NO_NETWORKS: Networks = {}

# The window of minting ("30 per minute", as its settings have always said) and of
# impression reports.
MINUTE = 60
# Impression reports one address group may send a minute, over every article: the
# store caps what each counts, this caps how often anyone may ask.
IMPRESSION_REPORTS = 120
# Exports and erasures of a reader's data one address group, and each wider network, may
# ask a minute: each first brings the aggregator up to date over every stream (a pass
# that grows with the articles), so a stranger must not be able to ask for it at will.
READER_DATA_REQUESTS = 6
READER_DATA_NETWORK_REQUESTS = 60
# Reads one address group, and each wider network, may have queue unknown ids for
# verification (or list an off-origin page as unverified) a minute: each queued id costs
# a fetch from the publisher, and the queue and the list are bounded per site, so a
# stranger's made-up ids must not push a publisher's new articles out of them.
PAGE_QUEUE_REQUESTS = 10
PAGE_QUEUE_NETWORK_REQUESTS = 100


def network_setting(setting: str, network: str) -> str:
    """The setting of `network`'s budget beside the group's `setting`."""
    return f"{setting}_{network.upper()}"


def vote_limits(config: Mapping[str, Any], networks: Networks) -> str:
    """Vote changes per article or poll per THROTTLE_WINDOW: THROTTLE_VOTES for the
    group, THROTTLE_VOTES_<NETWORK> for each network."""
    return _limits(config, int(config["THROTTLE_VOTES"]), "THROTTLE_VOTES", networks)


def click_limits(config: Mapping[str, Any], networks: Networks) -> str:
    """Clicks counted per link per CLICK_WINDOW: one for the group (a repeat is not a
    reader's), CLICK_BUDGET_<NETWORK> for each network."""
    return _limits(config, 1, "CLICK_BUDGET", networks)


def mint_limits(config: Mapping[str, Any], networks: Networks) -> str:
    """Reader tokens minted a MINUTE: READER_MINT_LIMIT for the group,
    READER_MINT_LIMIT_<NETWORK> for each network."""
    return _limits(config, per_minute(config["READER_MINT_LIMIT"]), "READER_MINT_LIMIT",
                   networks, count=per_minute)


def reader_data_limits(networks: Networks) -> str:
    """Exports and erasures a MINUTE: READER_DATA_REQUESTS for the group, then
    READER_DATA_NETWORK_REQUESTS for each network."""
    return _fixed_limits(READER_DATA_REQUESTS, READER_DATA_NETWORK_REQUESTS, networks)


def page_queue_limits(networks: Networks) -> str:
    """Reads that queue unknown ids a MINUTE: PAGE_QUEUE_REQUESTS for the group, then
    PAGE_QUEUE_NETWORK_REQUESTS for each network."""
    return _fixed_limits(PAGE_QUEUE_REQUESTS, PAGE_QUEUE_NETWORK_REQUESTS, networks)


def _fixed_limits(own: int, network: int, networks: Networks) -> str:
    return ",".join([str(own)] + [str(network)] * len(networks))


def _limits(config: Mapping[str, Any], own: int, setting: str, networks: Networks,
            count: Callable[[Any], int] = int) -> str:
    """The group's limit `own`, then each network's, comma-joined in the order of
    `networks` (the order of their keys), as the scripts take them."""
    wider = (max(own, count(config[network_setting(setting, name)])) for name in networks)
    return ",".join(str(n) for n in (own, *wider))


def budget_keys(keys: Keys, what: str, address: str, networks: Networks) -> list[str]:
    """The group's budget key for `what`, then each network's, all under the widest
    network's hash (the group's when none): one Cluster slot, networks spread over all."""
    tag = list(networks.values())[-1] if networks else address
    return [keys.budget(what, tag, h) for h in (address, *networks.values())]


def spend(store: Store, what: str, address: str, networks: Networks, limits: str,
          window: int) -> None:
    """Spend one from the address group's budget for `what` and from each network's
    (`limits` as `mint_limits` joins them), or from none and raise RateLimited (with
    the seconds until every used-up budget frees) when one is used up."""
    keys = budget_keys(store.keys, what, address, networks)
    scripts.result(store.run("spend_budget", keys, [limits, window]))
