"""What the store refuses, in its own words.

Store functions raise these; `engage/errors.py` answers each with its HTTP error. A
refusal says which rule the data refused and what the caller needs to know about it
(how long to wait, which option rule), never how it is shown.
"""

from __future__ import annotations


class StoreRefusal(Exception):
    """Base of every refusal the store makes on behalf of the data."""


class UnknownArticle(StoreRefusal):
    """No article is registered under the id."""


class UnknownPoll(StoreRefusal):
    """No poll exists under the id."""


class IdTaken(StoreRefusal):
    """A chosen poll id is already in use."""


class Throttled(StoreRefusal):
    """The address used up its votes on this article or poll for the window."""

    def __init__(self, retry_after: int) -> None:
        self.retry_after = max(1, int(retry_after))
        super().__init__(f"retry after {self.retry_after} s")


class PollClosed(StoreRefusal):
    """A vote on a poll that is closed."""


class PollFinal(PollClosed):
    """An edit of a closed poll: its results are final until it is reopened."""


class InvalidOptions(StoreRefusal):
    """Options the poll does not take: `reason` is 'unknown', 'single' or 'max'."""

    def __init__(self, reason: str) -> None:
        self.reason = str(reason)
        super().__init__(self.reason)


class ClosesAtPassed(StoreRefusal):
    """Reopening a poll whose closes_at has passed."""
