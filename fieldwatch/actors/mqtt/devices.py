"""Device presence for an MQTT endpoint: one offline timer per device, never a scan.

A device (the `+device` topic segment) is online while it sends; with no message
for `offline_after_s` it goes offline at that moment (event + `offline` alert
with the device as subject) and online again on its next message.

Each device has exactly one pending timer.  A message does not re-arm it (that
would push a timer per message); it only moves `last_seen`.  When the timer
fires, the device is offline if `last_seen` is old enough, else the timer is
re-armed for `last_seen + offline_after_s`.  While the broker link is down,
silence proves nothing, so a timer that fires then is re-armed instead.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from fieldwatch.actors.scheduler import TimerHandle

__all__ = ["DeviceHost", "DeviceTimeout", "DeviceTracker"]

_SEEN_WRITE_INTERVAL_S = 5.0  # last_seen is written at most this often per device while online


@dataclass(frozen=True, slots=True)
class DeviceTimeout:
    """Self-message: the offline timer of `device` fired."""

    device: str
    token: int  # the arming it belongs to; an older arming's timeout is ignored


class DeviceHost(Protocol):
    """What the tracker needs from its actor (MqttActor provides it)."""

    def after(self, delay_s: float, message: object) -> TimerHandle: ...
    def device_seen(self, device: str, at: float, online: bool) -> None: ...
    def device_offline(self, device: str, silent_s: float) -> None: ...
    def device_online(self, device: str, offline_s: float) -> None: ...


@dataclass(slots=True)
class _Device:
    last_seen: float
    online: bool
    written_at: float  # when last_seen was last persisted
    timer: TimerHandle | None = None
    token: int = 0
    offline_since: float | None = None


class DeviceTracker:
    """The devices of one endpoint; all methods run on the actor's thread."""

    def __init__(self, host: DeviceHost, offline_after_s: float | None, clock: Callable[[], float] = time.time) -> None:
        self._host = host
        self.offline_after_s = offline_after_s
        self._clock = clock
        self._devices: dict[str, _Device] = {}
        self._tokens = 0

    def __len__(self) -> int:
        return len(self._devices)

    def online(self, device: str) -> bool | None:
        """True/False for a known device, None for an unknown one."""
        entry = self._devices.get(device)
        return None if entry is None else entry.online

    def restore(self, known: Iterable[tuple[str, float, bool]]) -> None:
        """Adopt devices stored earlier (name, last_seen, online): online ones get their timer."""
        for name, last_seen, online in known:
            if name in self._devices:
                continue
            entry = _Device(last_seen=last_seen, online=online, written_at=last_seen)
            self._devices[name] = entry
            if online:
                self._arm(name, entry, last_seen)

    def seen(self, device: str, at: float | None = None) -> None:
        """A message from device arrived (at: now by default)."""
        now = self._clock() if at is None else at
        entry = self._devices.get(device)
        if entry is None:
            entry = _Device(last_seen=now, online=True, written_at=now)
            self._devices[device] = entry
            self._host.device_seen(device, now, True)
            self._arm(device, entry, now)
            return
        entry.last_seen = now
        if not entry.online:
            entry.online = True
            offline_s = now - entry.offline_since if entry.offline_since is not None else 0.0
            entry.offline_since = None
            entry.written_at = now
            self._host.device_seen(device, now, True)
            self._host.device_online(device, offline_s)
            self._arm(device, entry, now)
        elif now - entry.written_at >= _SEEN_WRITE_INTERVAL_S:
            entry.written_at = now
            self._host.device_seen(device, now, True)
        if entry.timer is None:
            self._arm(device, entry, now)

    def timeout(self, message: DeviceTimeout, connected: bool) -> None:
        """Handle a DeviceTimeout: offline if silent long enough, else re-arm."""
        entry = self._devices.get(message.device)
        if entry is None or message.token != entry.token or not entry.online:
            return
        entry.timer = None
        limit = self.offline_after_s
        if limit is None:
            return
        now = self._clock()
        silent = now - entry.last_seen
        if not connected:
            # Broker link down: the device may well be sending; check again a full period later.
            self._arm(message.device, entry, now)
            return
        if silent + 1e-3 < limit:
            self._arm(message.device, entry, entry.last_seen)
            return
        entry.online = False
        entry.offline_since = now
        self._host.device_seen(message.device, now, False)
        self._host.device_offline(message.device, silent)

    def flush(self) -> None:
        """Persist last_seen of devices whose latest message was not written yet (on stop)."""
        for name, entry in self._devices.items():
            if entry.online and entry.written_at < entry.last_seen:
                entry.written_at = entry.last_seen
                self._host.device_seen(name, entry.last_seen, True)

    def cancel(self) -> None:
        """Cancel every pending timer (the actor stops)."""
        for entry in self._devices.values():
            if entry.timer is not None:
                entry.timer.cancel()
                entry.timer = None

    def _arm(self, name: str, entry: _Device, since: float) -> None:
        if self.offline_after_s is None:
            return
        if entry.timer is not None:
            entry.timer.cancel()
        self._tokens += 1
        entry.token = self._tokens
        delay = max(0.0, since + self.offline_after_s - self._clock())
        entry.timer = self._host.after(delay, DeviceTimeout(name, entry.token))
