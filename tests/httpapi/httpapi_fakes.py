"""Fakes of the HTTP app's collaborators: exactly the Controller and Queries surfaces it uses."""

from __future__ import annotations

import copy
import json
import threading
import time
from typing import Any

import prometheus_client

from fieldwatch.actors.tree import TreeView
from fieldwatch.config.sites import parse_site_body
from fieldwatch.errors import ConfigError, ConflictError, NotFoundError, StorageError
from fieldwatch.http import AppDeps
from fieldwatch.http.readside import Page
from fieldwatch.storage.gateway import COMMIT_BUCKETS, Histogram, StorageStats
from tests.ledger_helpers import new_ledger

TOKEN = "s3cret-token-value"
KINDS = ("opcua", "mqtt", "icmp")


def endpoint(site: str, name: str, kind: str, *, enabled: bool = True, state: str = "up") -> dict[str, Any]:
    """An endpoint in the SPEC section 6 shape."""
    return {
        "site": site, "name": name, "kind": kind, "enabled": enabled, "state": state if enabled else "disabled",
        "since": "2024-01-01T00:00:00.000Z", "reason": None, "down_since": None,
        "last_data_at": "2024-01-01T00:00:01.000Z", "generation": 1, "restarts": 0, "reconnects": 0,
        "config": {"host": "127.0.0.1"},
    }  # fmt: skip


class FakeController:
    """In-memory sites; raises the domain errors the real controller raises."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.is_alive = True
        self.readiness: tuple[bool, str | None] = (True, None)
        self.storage_down = False
        self.explode = False
        self.calls: list[tuple[Any, ...]] = []
        self.sites: dict[str, dict[str, Any]] = {
            "alpha": {"name": "alpha", "enabled": True,
                      "endpoints": [endpoint("alpha", "plc", "opcua"), endpoint("alpha", "router", "icmp")]},
            "beta": {"name": "beta", "enabled": True, "endpoints": [endpoint("beta", "broker", "mqtt")]},
        }  # fmt: skip
        self.topics: dict[tuple[str, str, str], dict[str, Any]] = {
            ("beta", "broker", "sensors/a/t"): {"site": "beta", "endpoint": "broker", "topic": "sensors/a/t",
                                                "is_active": True, "is_processable": True, "count": 3},
        }  # fmt: skip

    def _guard(self) -> None:
        if self.storage_down:
            raise StorageError("storage writer is not running")
        if self.explode:
            raise RuntimeError("internal detail that must not leak")

    def _site(self, name: str) -> dict[str, Any]:
        self._guard()
        site = self.sites.get(name)
        if site is None:
            raise NotFoundError(f"no site named {name!r}")
        return site

    def _endpoint(self, site: str, name: str) -> dict[str, Any]:
        for ep in self._site(site)["endpoints"]:
            if ep["name"] == name:
                return ep  # type: ignore[no-any-return]
        raise NotFoundError(f"no endpoint {site}/{name}")

    def alive(self) -> bool:
        return self.is_alive

    def ready(self) -> tuple[bool, str | None]:
        return self.readiness

    def site_flags(self) -> dict[str, bool]:
        return {name: bool(site["enabled"]) for name, site in self.sites.items()}

    def list_sites(self) -> list[dict[str, Any]]:
        self._guard()
        with self.lock:
            return copy.deepcopy([self.sites[k] for k in sorted(self.sites)])

    def sites_json(self) -> str:
        return json.dumps({"items": self.list_sites(), "next": None})

    def get_site(self, name: str) -> dict[str, Any]:
        with self.lock:
            return copy.deepcopy(self._site(name))

    def get_endpoint(self, site: str, name: str) -> dict[str, Any]:
        with self.lock:
            return {**copy.deepcopy(self._endpoint(site, name)), "readings": []}

    def set_site_enabled(self, name: str, enabled: bool) -> dict[str, Any]:
        with self.lock:
            site = self._site(name)
            site["enabled"] = enabled
            for ep in site["endpoints"]:
                ep["state"] = "connecting" if enabled and ep["enabled"] else "disabled"
            self.calls.append(("site_enabled", name, enabled))
            return copy.deepcopy(site)

    def set_endpoint_enabled(self, site: str, name: str, enabled: bool) -> dict[str, Any]:
        with self.lock:
            ep = self._endpoint(site, name)
            ep["enabled"] = enabled
            ep["state"] = "connecting" if enabled else "disabled"
            self.calls.append(("endpoint_enabled", site, name, enabled))
            return copy.deepcopy(self.sites[site])

    def restart_endpoint(self, site: str, name: str) -> dict[str, Any]:
        with self.lock:
            ep = self._endpoint(site, name)
            ep["generation"] += 1
            self.calls.append(("restart", site, name))
            return copy.deepcopy(self.sites[site])

    def _validate(self, body: dict[str, Any]) -> dict[str, Any]:
        parse_site_body(body)  # the daemon's own validation (pure): ConfigError with every problem
        errors = []
        endpoints = []
        for i, ep in enumerate(body.get("endpoints", [])):
            if ep.get("kind") not in KINDS:
                errors.append(f"<api>: endpoints[{i}].kind: expected one of opcua, mqtt, icmp")
            if not isinstance(ep.get("name"), str) or not ep.get("name"):
                errors.append(f"<api>: endpoints[{i}].name: required")
            if not errors:
                endpoints.append(endpoint(body["name"], ep["name"], ep["kind"]))
        if errors:
            raise ConfigError(errors)
        return {"name": body["name"], "enabled": body.get("enabled", True), "endpoints": endpoints}

    def create_site(self, body: dict[str, Any]) -> dict[str, Any]:
        self._guard()
        site = self._validate(body)
        with self.lock:
            if site["name"] in self.sites:
                raise ConflictError(f"site {site['name']!r} exists")
            self.sites[site["name"]] = site
            self.calls.append(("create", site["name"]))
            return copy.deepcopy(site)

    def replace_site(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            self._site(name)
            site = self._validate(body)
            self.sites[name] = site
            self.calls.append(("replace", name))
            return copy.deepcopy(site)

    def delete_site(self, name: str) -> None:
        with self.lock:
            self._site(name)
            del self.sites[name]
            self.calls.append(("delete", name))

    def set_topic_active(self, site: str, endpoint: str, topic: str, active: bool) -> dict[str, Any]:
        with self.lock:
            self._guard()
            row = self.topics.get((site, endpoint, topic))
            if row is None:
                raise NotFoundError(f"no topic {topic!r} on {site}/{endpoint}")
            row["is_active"] = active
            return dict(row)


class FakeQueries:
    """In-memory rows, newest first, integer-offset cursors (a bad one is a ValueError)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.rows: dict[str, list[dict[str, Any]]] = {"events": [], "alerts": [], "readings": [], "topics": [], "parse_errors": []}
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.next_id = 1
        self.fail = False

    def add_event(self, site: str, endpoint: str, level: str = "info", message: str = "x") -> dict[str, Any]:
        with self.lock:
            row = {"id": self.next_id, "time": time.time(), "site": site, "endpoint": endpoint, "level": level,
                   "event": "state", "message": message, "generation": 1}  # fmt: skip
            self.next_id += 1
            self.rows["events"].append(row)
            return row

    def _page(self, table: str, limit: int, cursor: str | None, **filters: Any) -> Page:
        if self.fail:
            raise StorageError("database is locked")
        offset = 0
        if cursor is not None:
            if not cursor.isdigit():
                raise ValueError(f"invalid cursor {cursor[:20]!r}")
            offset = int(cursor)
        with self.lock:
            rows = [r for r in reversed(self.rows[table])
                    if all(v is None or r.get(k) == v for k, v in filters.items())]  # fmt: skip
        chunk = rows[offset : offset + limit]
        nxt = str(offset + limit) if offset + limit < len(rows) else None
        return chunk, nxt

    def events(self, *, site: str | None = None, endpoint: str | None = None, level: str | None = None,
               since: float | None = None, limit: int = 100, cursor: str | None = None,
               after_id: int | None = None) -> Page:  # fmt: skip
        self.calls.append(("events", {"site": site, "level": level, "since": since, "limit": limit,
                                      "after_id": after_id}))  # fmt: skip
        items, nxt = self._page("events", limit if after_id is None else 10**9, cursor, site=site, endpoint=endpoint,
                                level=level)  # fmt: skip
        if after_id is not None:
            items = [r for r in items if r["id"] > after_id][-limit:]
        return items, nxt

    def alerts(self, *, site: str | None = None, endpoint: str | None = None, active: bool | None = None,
               since: float | None = None, limit: int = 100, cursor: str | None = None) -> Page:  # fmt: skip
        self.calls.append(("alerts", {"active": active, "since": since}))
        return self._page("alerts", limit, cursor, site=site, endpoint=endpoint, active=active)

    def readings(self, *, site: str | None = None, endpoint: str | None = None, name: str | None = None,
                 device: str | None = None, since: float | None = None, until: float | None = None,
                 step: int | None = None, limit: int = 100, cursor: str | None = None) -> Page:  # fmt: skip
        self.calls.append(("readings", {"name": name, "since": since, "until": until, "step": step}))
        return self._page("readings", limit, cursor, site=site, endpoint=endpoint, name=name)

    def topics(self, *, site: str | None = None, endpoint: str | None = None, limit: int = 100,
               cursor: str | None = None) -> Page:  # fmt: skip
        self.calls.append(("topics", {}))
        return self._page("topics", limit, cursor, site=site, endpoint=endpoint)

    def parse_errors(self, *, site: str | None = None, endpoint: str | None = None, since: float | None = None,
                     limit: int = 100, cursor: str | None = None) -> Page:  # fmt: skip
        self.calls.append(("parse_errors", {"since": since}))
        return self._page("parse_errors", limit, cursor, site=site, endpoint=endpoint)


class FakeStorage:
    """StorageGateway.stats() with settable values."""

    def __init__(self) -> None:
        self.queue_depth = 3
        self.writes_total = 120
        self.errors_total = 2
        self.commits = [0.0005, 0.003, 0.2]

    def stats(self) -> StorageStats:
        buckets = [sum(1 for c in self.commits if c <= b) for b in COMMIT_BUCKETS] + [len(self.commits)]
        return StorageStats(
            queue_depth=self.queue_depth, writes_total=self.writes_total, write_errors_total=self.errors_total,
            discarded_total=1, commit_seconds=Histogram(COMMIT_BUCKETS, tuple(buckets), sum(self.commits),
                                                        len(self.commits)),
            ready=True, reason=None, last_error=None,
        )  # fmt: skip


def make_deps(log_file: str | None = None, token: str | None = TOKEN, **overrides: Any) -> AppDeps:
    """AppDeps over fresh fakes, a fresh registry, board and tree."""
    values: dict[str, Any] = {
        "controller": FakeController(), "board": new_ledger(), "tree": TreeView(), "storage": FakeStorage(),
        "registry": prometheus_client.CollectorRegistry(), "token": token, "log_file": log_file,
        "queries": FakeQueries(), "heartbeat_s": 0.2, "max_body_bytes": 4096,
    }  # fmt: skip
    values.update(overrides)
    return AppDeps(**values)
