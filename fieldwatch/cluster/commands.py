"""The cluster's command channel (SPEC section 10): a command taken by any instance is
stored, then announced with `pg_notify` on the cluster's channel; every instance's
`CommandListener` (its own connection, LISTEN) hands it to `ClusterRunner._apply`, and the
owner applies it to its actors at once. `clustered_controller` adds the announcing to the
controller's commands; `RemoteAwareStorage` keeps a command applied on another instance's
behalf from storing its flags again.
"""

from __future__ import annotations

import json
import logging
import select
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlparse, urlunparse

import psycopg2

from fieldwatch.storage.commands import SetEndpointEnabled, SetSiteEnabled, SetTopicActive

__all__ = [
    "CommandListener",
    "RemoteAwareStorage",
    "channel_name",
    "clustered_controller",
    "connect",
    "split_storage_url",
]

logger = logging.getLogger("fieldwatch.cluster.runner")


def split_storage_url(url: str) -> tuple[str, str | None]:
    """A libpq DSN for `storage.url` without its `options`, and the schema that `options`
    puts first on the search_path (`?options=-csearch_path%3Dname`), if any."""
    parts = urlparse(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = None
    kept = []
    for key, value in query:
        if key == "options" and "search_path=" in value:
            schema = value.split("search_path=", 1)[1].split()[0].split(",")[0] or None
            continue
        kept.append((key, value))
    scheme = "postgresql" if parts.scheme in ("postgres", "postgresql") else parts.scheme
    return urlunparse(parts._replace(scheme=scheme, query=urlencode(kept))), schema


def channel_name(schema: str | None) -> str:
    """The NOTIFY channel of one cluster (per schema, so clusters sharing a database never mix)."""
    return f"fieldwatch_commands_{schema}" if schema else "fieldwatch_commands"


class RemoteAwareStorage:
    """The controller's storage, except that a command applied on behalf of another instance
    does not store its flags again: the sender stored them, and storing again a value read a
    moment earlier could overwrite a newer command sent meanwhile through a third instance."""

    _ALREADY_STORED = (SetSiteEnabled, SetEndpointEnabled, SetTopicActive)

    def __init__(self, inner: Any, remote: threading.local) -> None:
        self._inner = inner
        self._remote = remote

    def command(self, command: Any, *args: Any, **kwargs: Any) -> Any:
        """`inner.command`, or nothing for a flag another instance stored (see the class)."""
        if getattr(self._remote, "active", False) and isinstance(command, self._ALREADY_STORED):
            return None
        return self._inner.command(command, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._inner, name)
        if callable(value):
            self.__dict__[name] = value  # bound methods are looked up once (submit is a hot path)
        return value


def connect(dsn: str, schema: str | None, label: str) -> Any:
    options = f"-c search_path={schema}" if schema else None
    return psycopg2.connect(
        dsn,
        options=options,
        application_name=(label + (f"@{schema}" if schema else ""))[:63],
        connect_timeout=5,
        keepalives=1,
        keepalives_idle=5,
        keepalives_interval=2,
        keepalives_count=3,
    )


class CommandListener:
    """LISTEN on the cluster's channel with its own connection; each notification from
    another instance is handed to `apply` (on this thread, in order)."""

    def __init__(
        self, dsn: str, schema: str | None, channel: str, instance: str, apply: Callable[[dict[str, Any]], None]
    ) -> None:
        self.dsn = dsn
        self.schema = schema
        self.channel = channel
        self.instance = instance
        self.apply = apply
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"cluster-listen:{instance}", daemon=True)
        self._conn: Any = None

    def start(self) -> None:
        """Connect (so no notification sent after this returns is missed), then listen."""
        self._listen()
        self._thread.start()

    def stop(self) -> None:
        """Stop listening (bounded)."""
        self._stop.set()
        self._thread.join(timeout=5)
        if self._conn is not None:
            self._conn.close()

    def _listen(self) -> None:
        conn = connect(self.dsn, self.schema, f"fieldwatch-listen:{self.instance}")
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'LISTEN "{self.channel}"')
        self._conn = conn

    def _run(self) -> None:
        failing = False
        while not self._stop.is_set():
            try:
                if self._conn is None or self._conn.closed:
                    self._listen()
                    logger.info("cluster: listening for commands again; catching up with the stored sites")
                    failing = False
                    self._handle(json.dumps({"op": "resync", "from": ""}))  # what was announced meanwhile
                if select.select([self._conn], [], [], 0.5)[0]:
                    self._conn.poll()
                    while self._conn.notifies:
                        self._handle(self._conn.notifies.pop(0).payload)
            except (psycopg2.Error, OSError) as err:
                if not failing:
                    logger.error(
                        "cluster: command listener failed (commands from other instances are "
                        "applied here once it reconnects): %s",
                        str(err).strip(),
                    )
                failing = True
                if self._conn is not None:
                    self._conn.close()
                    self._conn = None
                self._stop.wait(1.0)

    def _handle(self, payload: str) -> None:
        try:
            message = json.loads(payload)
        except ValueError:
            logger.warning("cluster: ignoring a malformed command notification: %.200r", payload)
            return
        if not isinstance(message, dict) or message.get("from") == self.instance:
            return
        try:
            self.apply(message)
        except Exception:  # noqa: BLE001 - one command that fails must not stop the listener
            logger.exception("cluster: applying %s from %s failed", message.get("op"), message.get("from"))


def clustered_controller(base: type) -> type:
    """A subclass of the controller class `base` whose commands, once stored, are announced
    to the other instances (`self.announce`, set by `ClusterRunner.prepare`). Commands
    applied on behalf of another instance (`remote_command()`) are not announced again."""

    class ClusteredController(base):
        announce: Callable[..., None] = staticmethod(lambda op, site, **details: None)
        _remote = threading.local()

        def remote_command(self) -> _Remote:
            return _Remote(self._remote)

        def remote_flag(self) -> threading.local:
            return self._remote

        def _announce(self, op: str, site: str, **details: Any) -> None:
            if not getattr(self._remote, "active", False):
                self.announce(op, site, **details)

        def set_site_enabled(self, name: str, enabled: bool) -> Any:
            result = super().set_site_enabled(name, enabled)
            self._announce("flags", name)
            return result

        def set_endpoint_enabled(self, site_name: str, name: str, enabled: bool) -> Any:
            result = super().set_endpoint_enabled(site_name, name, enabled)
            self._announce("flags", site_name)
            return result

        def restart_endpoint(self, site_name: str, name: str) -> Any:
            result = super().restart_endpoint(site_name, name)
            self._announce("restart", site_name, endpoint=name)
            return result

        def create_site(self, body: dict[str, Any]) -> Any:
            result = super().create_site(body)
            self._announce("site", str(result["name"]))
            return result

        def replace_site(self, name: str, body: dict[str, Any]) -> Any:
            result = super().replace_site(name, body)
            self._announce("site", name)
            return result

        def delete_site(self, name: str) -> None:
            super().delete_site(name)
            self._announce("site", name)

        def set_topic_active(self, site_name: str, endpoint: str, topic: str, active: bool) -> Any:
            result = super().set_topic_active(site_name, endpoint, topic, active)
            self._announce("topic", site_name, endpoint=endpoint, topic=topic, active=active)
            return result

    ClusteredController.__name__ = ClusteredController.__qualname__ = f"Clustered{base.__name__}"
    return ClusteredController


class _Remote:
    """Marks the current thread as applying another instance's command."""

    def __init__(self, local: threading.local) -> None:
        self.local = local

    def __enter__(self) -> None:
        self.local.active = True

    def __exit__(self, *exc: object) -> None:
        self.local.active = False
