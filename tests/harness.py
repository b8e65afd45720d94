"""A real daemon (no HTTP) for integration tests of connection actors.

    def test_x(harness):
        d = harness.start([SiteConfig("s1", endpoints=(EndpointConfig("r", "icmp", IcmpOptions("127.0.0.1")),))])
        harness.wait_state("s1", "r", "up", timeout=5)

Everything is real: scheduler, supervisors, the ledger, SQLite storage through
the persistence actor. Reads go through `fieldwatch.storage.queries` like the API.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any

import pytest

from fieldwatch.config.model import Config, HttpConfig, LoggingConfig, SiteConfig, StorageConfig
from fieldwatch.daemon import Daemon
from fieldwatch.policy import DEFAULT_POLICY, SupervisionPolicy
from fieldwatch.status import EndpointStatus, effective_state
from tests.waiting import wait_for


class Harness:
    """Owns one Daemon at a time; stops it at teardown."""

    def __init__(self, tmp_path: Any) -> None:
        self.tmp_path = tmp_path
        self.daemon: Daemon | None = None

    def start(
        self,
        sites: Sequence[SiteConfig],
        *,
        policy: SupervisionPolicy = DEFAULT_POLICY,
        storage_url: str | None = None,
        http: bool = False,
        token: str | None = "test-token",
    ) -> Daemon:
        url = storage_url or f"sqlite:///{os.path.join(str(self.tmp_path), 'fieldwatch.db')}"
        config = Config(
            instance="test",
            storage=StorageConfig(url=url),
            http=HttpConfig(listen="127.0.0.1:0", token=token),
            logging=LoggingConfig(file=os.path.join(str(self.tmp_path), "fieldwatch.log"), level="debug"),
            supervision=policy,
            sites=tuple(sites),
        )
        self.daemon = Daemon(config, console_log=False, install_signals=False, http=http)
        self.daemon.start()
        return self.daemon

    def status(self, site: str, endpoint: str) -> EndpointStatus:
        assert self.daemon is not None
        status = self.daemon.ledger.find(site, endpoint)
        assert status is not None, f"no endpoint {site}/{endpoint} in the ledger"
        return status

    def state(self, site: str, endpoint: str) -> str:
        """The state a reader (API/metrics) would show."""
        return effective_state(self.status(site, endpoint))[0]

    def wait_state(self, site: str, endpoint: str, state: str, timeout: float) -> EndpointStatus:
        wait_for(lambda: self.state(site, endpoint) == state, timeout, what=f"{site}/{endpoint} to be {state}")
        return self.status(site, endpoint)

    def flush(self, timeout: float = 5.0) -> None:
        """Wait until every queued write is committed."""
        assert self.daemon is not None
        storage = self.daemon.storage
        wait_for(lambda: storage.queue_depth == 0, timeout, what="storage queue to drain")

    def endpoint_id(self, site: str, endpoint: str) -> int:
        return self.status(site, endpoint).endpoint_id

    @property
    def queries(self) -> Any:
        from fieldwatch.storage import queries

        return queries

    def events(self, site: str | None = None, endpoint: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        self.flush()
        return list(self.queries.events(site=site, endpoint=endpoint, limit=limit)[0])

    def alerts(self, site: str | None = None, endpoint: str | None = None, active: bool | None = None) -> list[dict[str, Any]]:
        self.flush()
        return list(self.queries.alerts(site=site, endpoint=endpoint, active=active)[0])

    def readings(self, site: str | None = None, endpoint: str | None = None, name: str | None = None, limit: int = 10000) -> list[dict[str, Any]]:
        self.flush()
        return list(self.queries.readings(site=site, endpoint=endpoint, name=name, limit=limit)[0])

    def stop(self) -> None:
        if self.daemon is not None:
            self.daemon.stop()
            self.daemon = None


@pytest.fixture
def harness(tmp_path: Any) -> Iterator[Harness]:
    h = Harness(tmp_path)
    yield h
    h.stop()


def fast_policy(**endpoint_overrides: Any) -> SupervisionPolicy:
    """The default policy with quick backoff and health checks, for tests."""
    from fieldwatch.policy import Backoff, HealthCheck

    defaults = replace(
        DEFAULT_POLICY.defaults,
        backoff=Backoff(initial_s=0.2, max_s=1.0, multiplier=2, jitter=0.0, reset_after_s=120),
        health_check=HealthCheck(interval_s=0.5, timeout_s=1.0, failures=2),
        **endpoint_overrides,
    )
    return replace(DEFAULT_POLICY, defaults=defaults, kinds={})
