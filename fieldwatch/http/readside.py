"""The read side the API needs from storage, as a protocol (fakes in tests) plus the real adapter.

`StorageQueries` adapts `fieldwatch.storage.queries` to the
`Queries` protocol. Every item is a JSON-ready dict in the SPEC section 6 shape; events
also carry their `id` so `follow` can ask for newer ones. A bad cursor is a ValueError.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from fieldwatch.storage import queries

__all__ = ["Page", "Queries", "StorageQueries"]

Page = tuple[list[dict[str, Any]], "str | None"]
"""Items newest first and the cursor of the next page (None on the last page)."""


class Queries(Protocol):
    """Read queries behind the collection routes (keyword arguments only)."""

    def events(
        self,
        *,
        site: str | None = None,
        endpoint: str | None = None,
        level: str | None = None,
        since: float | None = None,
        limit: int = 100,
        cursor: str | None = None,
        after_id: int | None = None,
    ) -> Page:
        """Connection events, newest first; with `after_id` only events with a larger id."""
        ...

    def alerts(
        self,
        *,
        site: str | None = None,
        endpoint: str | None = None,
        active: bool | None = None,
        since: float | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page:
        """Alerts, newest first; `active` True/False filters open/resolved ones."""
        ...

    def readings(
        self,
        *,
        site: str | None = None,
        endpoint: str | None = None,
        name: str | None = None,
        device: str | None = None,
        since: float | None = None,
        until: float | None = None,
        step: int | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page:
        """Stored readings newest first; with `step`, rollup buckets."""
        ...

    def topics(
        self,
        *,
        site: str | None = None,
        endpoint: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page:
        """Discovered topics, most recently seen first."""
        ...

    def parse_errors(
        self,
        *,
        site: str | None = None,
        endpoint: str | None = None,
        since: float | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page:
        """Payloads parsers rejected, newest first, with truncated samples."""
        ...


class StorageQueries:
    """The real read side: `fieldwatch.storage.queries` behind the `Queries` protocol."""

    def events(self, **kwargs: Any) -> Page:
        """See `Queries.events`."""
        return _page(queries.events(**kwargs))

    def alerts(self, **kwargs: Any) -> Page:
        """See `Queries.alerts`."""
        return _page(queries.alerts(**kwargs))

    def readings(self, **kwargs: Any) -> Page:
        """See `Queries.readings`."""
        return _page(queries.readings(**kwargs))

    def topics(self, **kwargs: Any) -> Page:
        """See `Queries.topics`."""
        return _page(queries.topics(**kwargs))

    def parse_errors(self, **kwargs: Any) -> Page:
        """See `Queries.parse_errors`."""
        return _page(queries.parse_errors(**kwargs))


def _page(result: tuple[Sequence[dict[str, Any]], str | None]) -> Page:
    items, cursor = result
    return list(items), cursor
