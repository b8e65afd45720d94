"""Rollups: min, max, sum, count and last of numeric readings per series and time bucket.

The writer folds each committed batch into `RollupBatch` and upserts the touched
buckets in the same transaction as the raw rows, so a bucket's `n` is always the
number of raw readings it summarises, late readings included (they land in the
bucket of their own time). Only finite numbers are summarised: NaN and infinities,
text and JSON values stay in the raw table alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import peewee

from fieldwatch.storage.sqlbits import insert_rows, pg_minmax

__all__ = ["TIERS", "Tier", "RollupBatch"]


@dataclass(frozen=True, slots=True)
class Tier:
    """A rollup table and the width of its buckets in seconds."""

    table: str
    seconds: int


#: The rollup tiers, finest first.
TIERS: tuple[Tier, ...] = (Tier("rollup_1m", 60), Tier("rollup_1h", 3600))

_WIDTHS = tuple(tier.seconds for tier in TIERS)
_WIDTHS_MS = tuple(seconds * 1000 for seconds in _WIDTHS)
_COLUMNS = "series_id, bucket, v_min, v_max, v_sum, n, v_last, last_t"


def _upsert_tail(table: str) -> str:
    # every right-hand side sees the row as it was before this statement (UPDATE semantics)
    return (
        f"ON CONFLICT (series_id, bucket) DO UPDATE SET "
        f"v_min = MIN({table}.v_min, excluded.v_min), v_max = MAX({table}.v_max, excluded.v_max), "
        f"v_sum = {table}.v_sum + excluded.v_sum, n = {table}.n + excluded.n, "
        f"v_last = CASE WHEN excluded.last_t >= {table}.last_t THEN excluded.v_last ELSE {table}.v_last END, "
        f"last_t = MAX({table}.last_t, excluded.last_t)"
    )


@dataclass(slots=True)
class RollupBatch:
    """The bucket updates of one transaction: (tier index, series, bucket) -> aggregate."""

    cells: dict[tuple[int, int, int], list[float]] = field(default_factory=dict)

    def add(self, series_id: int, t_ms: int, value: float | None) -> None:
        """Count one reading of `series_id` at `t_ms` (skipped unless a finite number)."""
        if value is None or value - value != 0.0:  # None, NaN or an infinity (inf - inf is NaN)
            return
        cells = self.cells
        for i, width_ms in enumerate(_WIDTHS_MS):  # the hot loop of the writer: kept plain
            key = (i, series_id, (t_ms // width_ms) * _WIDTHS[i])
            cell = cells.get(key)
            if cell is None:
                cells[key] = [value, value, value, 1, value, t_ms]
                continue
            if value < cell[0]:
                cell[0] = value
            if value > cell[1]:
                cell[1] = value
            cell[2] += value
            cell[3] += 1
            if t_ms >= cell[5]:
                cell[4] = value
                cell[5] = t_ms

    def flush(self, db: peewee.Database) -> None:
        """Upsert every touched bucket (inside the caller's transaction)."""
        rows: list[list[tuple[Any, ...]]] = [[] for _ in TIERS]
        for (tier_i, series_id, bucket), c in sorted(self.cells.items()):  # one sort, in key order per tier
            rows[tier_i].append((series_id, bucket, c[0], c[1], c[2], int(c[3]), c[4], int(c[5])))
        for tier, tier_rows in zip(TIERS, rows, strict=True):
            insert_rows(db, tier.table, _COLUMNS, 8, tier_rows, pg_minmax(db, _upsert_tail(tier.table)), cleaned=True)
        self.cells.clear()
