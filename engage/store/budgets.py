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
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

Networks = Mapping[str, str]
NO_NETWORKS: Networks = {}


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


def _limits(config: Mapping[str, Any], own: int, setting: str, networks: Networks) -> str:
    """The group's limit `own`, then each network's, comma-joined in the order of
    `networks` (the order of their keys), as the scripts take them."""
    wider = (max(own, int(config[network_setting(setting, name)])) for name in networks)
    return ",".join(str(n) for n in (own, *wider))
