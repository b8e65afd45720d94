"""The read side the API needs from storage, as a protocol (fakes in tests) plus the real adapter.

`StorageQueries` adapts `fieldwatch.storage.queries` (imported on first use) to the
`Queries` protocol. Every item is a JSON-ready dict in the SPEC section 6 shape; events
also carry their `id` so `follow` can ask for newer ones. A bad cursor is a ValueError.
"""

from __future__ import annotations

from typing import Any, Protocol

from fieldwatch.errors import StorageError

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
    """The real read side: `fieldwatch.storage.queries`, imported lazily."""

    def _module(self) -> Any:
        try:
            from fieldwatch.storage import queries  # type: ignore[attr-defined,unused-ignore]
        except ImportError as err:  # a build without the read side: the routes answer 503, not 500
            raise StorageError(f"storage read queries are not available: {err}") from err
        return queries

    def events(self, **kwargs: Any) -> Page:
        """See `Queries.events`."""
        return _page(self._module().events(**kwargs))

    def alerts(self, **kwargs: Any) -> Page:
        """See `Queries.alerts`."""
        return _page(self._module().alerts(**kwargs))

    def readings(self, **kwargs: Any) -> Page:
        """See `Queries.readings`."""
        return _page(self._module().readings(**kwargs))

    def topics(self, **kwargs: Any) -> Page:
        """See `Queries.topics`."""
        return _page(self._module().topics(**kwargs))

    def parse_errors(self, **kwargs: Any) -> Page:
        """See `Queries.parse_errors`."""
        return _page(self._module().parse_errors(**kwargs))


def _page(result: Any) -> Page:
    items, cursor = result
    return list(items), cursor
