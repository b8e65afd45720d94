"""Reading the daemon's database directly (SQLite read-only, or PostgreSQL), for the invariants."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

import psycopg2

__all__ = ["DbFacts", "StoreReader"]


@dataclass
class DbFacts:
    """What the invariants need from the database after the run."""

    seq_counts: dict[int, int]  # message number -> rows stored for it
    stray_readings: int  # readings of the MQTT endpoint that are not one of the publisher's messages
    events: list[tuple[int, float, str, str, str, int]]  # (id, time, site, endpoint, event, generation)
    alerts: list[tuple[str, str, str, float, float | None]]  # (site, endpoint, condition, triggered, resolved)
    endpoint_states: dict[tuple[str, str], str]
    parse_errors: int
    sites: dict[str, bool]


class StoreReader:
    """A read-only connection to the daemon's storage URL (opened per call: the daemon may be restarting)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.sqlite = url.startswith("sqlite:///")

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Run one SELECT (SQL with `?` placeholders) and return every row."""
        if self.sqlite:
            path = self.url.removeprefix("sqlite:///")
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
            try:
                return conn.execute(sql, params).fetchall()
            finally:
                conn.close()
        pg = psycopg2.connect(self.url, connect_timeout=5)
        try:
            pg.autocommit = True
            with pg.cursor() as cur:
                cur.execute(sql.replace("?", "%s"), params or None)  # no params: '%' stays literal
                return cur.fetchall()
        finally:
            pg.close()

    def endpoint_states(self) -> dict[tuple[str, str], str]:
        """(site, endpoint) -> the state as last persisted."""
        rows = self.query("SELECT s.name, e.name, e.state FROM endpoint e JOIN site s ON s.id = e.site_id")
        return {(site, ep): state for site, ep, state in rows}

    def distinct_seq(self) -> int:
        """How many of the publisher's messages are stored (distinct numbers)."""
        rows = self.query("SELECT COUNT(DISTINCT r.value_num) FROM reading r JOIN endpoint e ON e.id = r.endpoint_id "
                          "JOIN site s ON s.id = e.site_id WHERE s.name = 'iot' AND r.name = 'seq' "
                          "AND r.device LIKE 'dev%'")
        return int(rows[0][0])

    def facts(self) -> DbFacts:
        """Everything at once, after the daemon stopped."""
        seq_counts: dict[int, int] = {}
        for value, count in self.query(
            "SELECT r.value_num, COUNT(*) FROM reading r JOIN endpoint e ON e.id = r.endpoint_id "
            "JOIN site s ON s.id = e.site_id WHERE s.name = 'iot' AND r.name = 'seq' AND r.device LIKE 'dev%' "
            "AND r.value_num IS NOT NULL GROUP BY r.value_num"
        ):
            seq_counts[int(value)] = int(count)
        stray = self.query(
            "SELECT COUNT(*) FROM reading r JOIN endpoint e ON e.id = r.endpoint_id JOIN site s ON s.id = e.site_id "
            "WHERE s.name = 'iot' AND NOT (r.name = 'seq' AND r.device LIKE 'dev%' AND r.value_num IS NOT NULL)"
        )[0][0]
        events = [
            (int(i), float(t), site or "", ep or "", event, int(gen))
            for i, t, site, ep, event, gen in self.query(
                "SELECT id, time, site_name, endpoint_name, event, generation FROM event ORDER BY id"
            )
        ]
        alerts = [
            (site, ep, cond, float(trig), None if res is None else float(res))
            for site, ep, cond, trig, res in self.query(
                "SELECT s.name, e.name, a.condition, a.triggered_at, a.resolved_at FROM alert a "
                "JOIN endpoint e ON e.id = a.endpoint_id JOIN site s ON s.id = e.site_id ORDER BY a.id"
            )
        ]
        parse_errors = int(self.query("SELECT COUNT(*) FROM parse_error")[0][0])
        sites = {name: bool(enabled) for name, enabled in self.query("SELECT name, enabled FROM site")}
        return DbFacts(seq_counts, int(stray), events, alerts, self.endpoint_states(), parse_errors, sites)
