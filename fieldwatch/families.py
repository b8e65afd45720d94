"""Prometheus metric families over the status board's rows, shared by the collector and the kinds.

A `Family` turns one endpoint `Row` into samples. The generic families live in
`fieldwatch.http.metrics`; a kind's own families (its `KIND.metrics`) are written
with the same types and read only that kind's rows, so a protocol folder can
define them without importing the HTTP layer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import NamedTuple

from fieldwatch.status import EndpointStatus

__all__ = ["Family", "Row", "Samples", "counter_family"]


@dataclass(slots=True)
class Row:
    """One endpoint as the families read it, with its base labels rendered once."""

    labels: dict[str, str]
    text: str
    status: EndpointStatus
    shown: str


Samples = Iterator[tuple[str, "str | tuple[str, ...] | None", "str | tuple[str, ...]", float]]
"""A family's samples for one row: (sample name, extra label name or None, extra label value, value);
several extra labels are given as a tuple of names and a tuple of values."""


class Family(NamedTuple):
    """One metric family: its name (without _total for counters, as prometheus_client names
    families), type, HELP text and the samples of one row."""

    name: str
    type: str
    help: str
    samples: Callable[[Row], Samples]


def counter_family(name: str, help_text: str, family: str, results: tuple[str, ...]) -> Family:
    """A `<name>_total{result=...}` counter over `status.counters[(family, result)]`, every result always
    exported (0 until counted) in the order given."""
    total = name + "_total"

    def samples(r: Row) -> Samples:
        counters = r.status.counters
        for result in results:
            yield total, "result", result, counters.get((family, result), 0.0)

    return Family(name, "counter", help_text, samples)
