"""What a protocol is to the rest of fieldwatch: one `Kind` record, and the `Registry` of them.

Each protocol folder (`fieldwatch/actors/<kind>/kind.py`) exports one `KIND`; the
registry (`fieldwatch/kinds.py`) lists them, one line each. Config, the controller,
the daemon, the metrics and the status page ask the registry and never name a kind.
The actor class is loaded only when an endpoint of the kind starts, so a daemon
without such endpoints never imports the protocol's client library.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType, ModuleType
from typing import TYPE_CHECKING, Any

from fieldwatch.families import Family
from fieldwatch.schema.dsl import Obj

if TYPE_CHECKING:  # annotations only: the actors and the read side import much more
    from fieldwatch.actors.connection import ConnectionActor

__all__ = ["DEFAULT_CONDITIONS", "Kind", "Registry"]

#: Alert conditions every kind exports (fieldwatch_alerts_active, 0 when not active).
DEFAULT_CONDITIONS: tuple[str, ...] = ("down", "stale", "faulty")

PageFact = Callable[[Any, str], Any]
"""A status-page column of a kind: (status.extra, shown state) -> the cell (None: empty)."""


def _load(target: str) -> Any:
    module_name, _, attr = target.partition(":")
    return getattr(importlib.import_module(module_name), attr)


@dataclass(frozen=True, slots=True)
class Kind:
    """One protocol: everything the shared modules need to know about it.

    - `name`: the `kind:` value in YAML, the `kind` label and API field.
    - `options`, `schema`: the options dataclass and the schema validating an endpoint's
      kind-specific keys into it.
    - `actor`: its ConnectionActor subclass, as "module:Class" (imported on first use) or a
      callable returning the class.
    - `metrics`: its own metric families, fed only its endpoints' rows; `alert_conditions`:
      the conditions always exported for its endpoints.
    - `reading`: what one of its readings is ("PLC tag", "sensor reading"), for the HELP text of
      fieldwatch_reading_value; None when it exports no reading values.
    - `supervision`: its default partial ChildPolicy (supervision.yaml `kinds.<name>` merges over it).
    - `view_extras`: (the storage queries module, endpoint_id) -> fields added to `GET .../endpoints/<name>`.
    - `page_facts`: status-page columns (name -> PageFact); `has_topics`: the page offers its topics.
    - `shared`: "module:function" stopping the kind's shared resources after the tree stops,
      called only when that module was imported.
    - `loggers`: library loggers -> "warning" (warnings only) or "quiet" (silent unless debug).
    """

    name: str
    options: type
    schema: Obj
    actor: str | Callable[[], type[ConnectionActor]]
    metrics: tuple[Family, ...] = ()
    alert_conditions: tuple[str, ...] = DEFAULT_CONDITIONS
    reading: str | None = None
    supervision: Mapping[str, Any] = field(default_factory=dict)
    view_extras: Callable[[ModuleType, int], dict[str, Any]] | None = None
    page_facts: Mapping[str, PageFact] = field(default_factory=dict)
    has_topics: bool = False
    shared: str | None = None
    loggers: Mapping[str, str] = field(default_factory=dict)

    def actor_class(self) -> type[ConnectionActor]:
        """The ConnectionActor subclass (imported now if given as "module:Class")."""
        if isinstance(self.actor, str):
            cls: type[ConnectionActor] = _load(self.actor)
            return cls
        return self.actor()

    def stop_shared(self) -> None:
        """Stop the kind's shared resources, if its module holding them was ever imported."""
        if self.shared is not None and self.shared.partition(":")[0] in sys.modules:
            _load(self.shared)()


class Registry:
    """The known kinds, in registration order (their order in messages and the page)."""

    def __init__(self, *kinds: Kind) -> None:
        self._kinds: dict[str, Kind] = {}
        for kind in kinds:
            self.register(kind)

    def register(self, kind: Kind) -> None:
        """Add a kind (ValueError if its name is taken)."""
        if kind.name in self._kinds:
            raise ValueError(f"kind {kind.name!r} is already registered")
        self._kinds[kind.name] = kind

    def unregister(self, name: str) -> None:
        """Forget a kind (KeyError if unknown)."""
        del self._kinds[name]

    @contextlib.contextmanager
    def registered(self, kind: Kind) -> Iterator[Kind]:
        """`kind` registered for the `with` block only (tests)."""
        self.register(kind)
        try:
            yield kind
        finally:
            self.unregister(kind.name)

    def __iter__(self) -> Iterator[Kind]:
        return iter(tuple(self._kinds.values()))

    def __contains__(self, name: object) -> bool:
        return name in self._kinds

    def __getitem__(self, name: str) -> Kind:
        return self._kinds[name]

    def get(self, name: str) -> Kind | None:
        """The kind named `name`, or None."""
        return self._kinds.get(name)

    def names(self) -> tuple[str, ...]:
        """The kind names, in registration order."""
        return tuple(self._kinds)

    def option_schemas(self) -> Mapping[str, Obj]:
        """Kind name -> the schema of its endpoint options."""
        return MappingProxyType({k.name: k.schema for k in self._kinds.values()})

    def supervision_defaults(self) -> dict[str, Mapping[str, Any]]:
        """Kind name -> its default partial ChildPolicy (kinds without one left out)."""
        return {k.name: k.supervision for k in self._kinds.values() if k.supervision}

    def alert_conditions(self, name: str) -> tuple[str, ...]:
        """The alert conditions always exported for endpoints of kind `name`."""
        kind = self._kinds.get(name)
        return DEFAULT_CONDITIONS if kind is None else kind.alert_conditions

    def metric_families(self) -> tuple[tuple[str, Family], ...]:
        """(kind name, family) of every kind's own families, kinds by name (a stable exposition order)."""
        return tuple((k.name, f) for k in sorted(self._kinds.values(), key=lambda k: k.name) for f in k.metrics)

    def stop_shared(self) -> None:
        """Stop every kind's shared resources that exist."""
        for kind in self:
            kind.stop_shared()
