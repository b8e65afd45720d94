"""Unit tests of the pure duplicate logic in fieldwatch.actors.mqtt.delivery (no broker, no database)."""

from __future__ import annotations

from fieldwatch.actors.mqtt.delivery import SUMMARY_INTERVAL_S, AckGroup, DuplicateSummary, Message, Redeliveries

P = b'{"value": 7}'


def _msg(mid: int, dup: bool = False, payload: bytes = P, topic: str = "t/d/v") -> Message:
    return Message(topic, payload, 1, mid, dup)


def test_a_dup_with_another_payload_is_not_the_redelivery() -> None:
    r = Redeliveries()
    assert not r.arrived(_msg(1), conn=1)
    r.committed_unacked([_msg(1)], conn=1)  # committed after connection 1 died: no PUBACK went out
    assert not r.arrived(_msg(1, payload=b'{"value": 8}', dup=True), conn=2)  # another payload: not it
    assert len(r) == 0  # ... and the entry is gone: the broker has moved on


def test_redelivery_matches_once_and_equal_payloads_after_it_are_new() -> None:
    r = Redeliveries()
    r.arrived(_msg(1), conn=1)
    r.committed_unacked([_msg(1)], conn=1)
    assert r.arrived(_msg(1, dup=True), conn=2)  # the broker's redelivery
    assert not r.arrived(_msg(1, dup=True), conn=2)  # consumed: a second DUP is stored
    assert not r.arrived(_msg(1), conn=2)  # the id reused for an equal payload: a new reading


def test_without_dup_an_equal_payload_on_the_same_packet_id_is_never_a_duplicate() -> None:
    r = Redeliveries()
    r.arrived(_msg(1), conn=1)
    r.committed_unacked([_msg(1)], conn=1)
    assert not r.arrived(_msg(1), conn=2)
    assert not r.arrived(_msg(1, dup=True), conn=2)  # the entry went with the non-DUP arrival


def test_an_entry_added_after_its_redelivery_already_arrived_is_not_kept() -> None:
    """The commit of the first copy finished after the DUP copy was handled: never match later arrivals."""
    r = Redeliveries()
    r.arrived(_msg(1), conn=1)
    assert not r.arrived(_msg(1, dup=True), conn=2)  # stored (a duplicate row: preferred to a loss)
    r.committed_unacked([_msg(1)], conn=1)
    assert len(r) == 0
    assert not r.arrived(_msg(1, dup=True), conn=3)


def test_no_session_on_the_broker_forgets_everything() -> None:
    r = Redeliveries()
    r.arrived(_msg(1), conn=1)
    r.committed_unacked([_msg(1)], conn=1)
    r.clear()
    assert not r.arrived(_msg(1, dup=True), conn=2)


class _Host:
    def __init__(self) -> None:
        self.calls: list[tuple[list[Message], list[bool], bool, int]] = []

    def settled(self, messages: list[Message], inserted: list[bool], acked: bool, conn: int) -> None:
        self.calls.append((list(messages), list(inserted), acked, conn))


class _Client:
    def __init__(self, connected: bool) -> None:
        self.connected = connected
        self.acked: list[tuple[int, int]] = []

    def ack_many(self, acks: list[tuple[int, int]]) -> bool:
        if self.connected:
            self.acked += acks
        return self.connected


def test_ack_group_acks_once_every_reading_is_committed_and_reports_which_were_inserted() -> None:
    host, client = _Host(), _Client(connected=True)
    group = AckGroup(client, host, conn=4)
    a = group.add(_msg(1), readings=2)
    b = group.add(_msg(2), readings=1)
    a(False)
    b(False)
    assert client.acked == [] and host.calls == []
    a(True)
    assert client.acked == [(1, 1), (2, 1)]
    assert host.calls == [([_msg(1), _msg(2)], [True, False], True, 4)]


def test_ack_group_reports_unacked_when_the_link_is_gone() -> None:
    host = _Host()
    group = AckGroup(_Client(connected=False), host, conn=2)
    group.add(_msg(1), readings=1)(True)
    assert host.calls[0][2] is False


def test_duplicate_summary_at_most_once_per_interval() -> None:
    s = DuplicateSummary()
    assert s.due(1000.0) is None  # nothing to say
    s.add(redelivered=1)
    s.add(identity=2)
    first = s.due(1000.0)
    assert first is not None and first.startswith("3 duplicate messages suppressed since")
    assert "1 broker redelivery" in first and "2 with a parser identity" in first
    s.add(identity=1)
    assert s.due(1000.0 + SUMMARY_INTERVAL_S - 1) is None
    later = s.due(1000.0 + SUMMARY_INTERVAL_S)
    assert later is not None and later.startswith("1 duplicate message suppressed")
