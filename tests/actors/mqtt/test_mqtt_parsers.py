"""Unit tests of the MQTT topic patterns, JSON paths and payload parsers."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fieldwatch.actors.mqtt.jsonpath import JsonPathError, JsonPathNotFound, compile_path
from fieldwatch.actors.mqtt.parsers import (
    SAMPLE_MAX_CHARS,
    ParseFailure,
    ParserSet,
    TopicPattern,
    parse_timestamp,
    parser_errors,
)
from fieldwatch.actors.mqtt.schema import ParserConfig

# --- topic patterns -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "topic", "expected"),
    [
        ("sensors/+device/+metric", "sensors/d1/temp", {"device": "d1", "metric": "temp"}),
        ("sensors/+device/+metric", "sensors/d1", None),
        ("sensors/+device/+metric", "sensors/d1/temp/x", None),
        ("sensors/+/+metric", "sensors/d1/temp", {"metric": "temp"}),
        ("site/#", "site", {}),
        ("site/#", "site/a/b/c", {}),
        ("site/#", "other/a", None),
        ("+/status", "pump/status", {}),
        ("+/status", "pump/state", None),
        ("+/status", "$SYS/status", None),
        ("#", "$SYS/broker/uptime", None),
        ("$SYS/#", "$SYS/broker/uptime", {}),
        ("a/+x/#", "a/b", {"x": "b"}),
        ("a/+x/#", "a", None),
        ("a/b", "a/b", {}),
        ("a/+x", "a/", {"x": ""}),
    ],
)
def test_topic_pattern_match(pattern: str, topic: str, expected: dict[str, str] | None) -> None:
    assert TopicPattern(pattern).match(topic) == expected


@pytest.mark.parametrize("bad", ["", "a/#/b", "a/b#", "a+/b", "+1x/a", "+a/+a", "a/+b-c"])
def test_topic_pattern_rejects_bad_syntax(bad: str) -> None:
    with pytest.raises(ValueError):
        TopicPattern(bad)


def test_topic_pattern_subscription() -> None:
    assert TopicPattern("sensors/+device/+metric").subscription == "sensors/+/+"
    assert TopicPattern("site/+x/#").subscription == "site/+/#"
    assert TopicPattern("#").subscription == "#"


_level = st.text(alphabet="abcxyz01_-", min_size=1, max_size=6)


@given(st.lists(_level, min_size=1, max_size=6), st.data())
def test_topic_pattern_named_segments_capture_their_level(levels: list[str], data: st.DataObject) -> None:
    """Replacing any levels by +names matches the topic and captures exactly those levels."""
    mask = data.draw(st.lists(st.booleans(), min_size=len(levels), max_size=len(levels)))
    parts = [f"+n{i}" if masked else lvl for i, (lvl, masked) in enumerate(zip(levels, mask, strict=True))]
    pattern = TopicPattern("/".join(parts))
    topic = "/".join(levels)
    assert pattern.match(topic) == {f"n{i}": lvl for i, (lvl, m) in enumerate(zip(levels, mask, strict=True)) if m}
    assert TopicPattern("/".join(parts[:-1] + ["#"]) if len(parts) > 1 else "#").match(topic) is not None
    assert pattern.match(topic + "/extra") is None


# --- JSON paths -----------------------------------------------------------------------------


def test_json_paths() -> None:
    doc = {"value": 1, "a": {"b": [10, {"c": "x"}]}, "key with space": 3, "it's": 4}
    assert compile_path("$").get(doc) is doc
    assert compile_path("$.value").get(doc) == 1
    assert compile_path("$.a.b[0]").get(doc) == 10
    assert compile_path("$.a.b[-1].c").get(doc) == "x"
    assert compile_path("$['key with space']").get(doc) == 3
    assert compile_path('$["key with space"]').get(doc) == 3
    assert compile_path("$['it\\'s']").get(doc) == 4
    assert compile_path("$.a['b'][1]['c']").get(doc) == "x"
    for missing in ("$.nope", "$.a.b[5]", "$.value[0]", "$.a.b.c"):
        with pytest.raises(JsonPathNotFound):
            compile_path(missing).get(doc)


@pytest.mark.parametrize("bad", ["value", "$.", "$..a", "$[", "$[x]", "$['a'", "$.a b", "$[1.5]", "$a"])
def test_json_path_syntax_errors(bad: str) -> None:
    with pytest.raises(JsonPathError):
        compile_path(bad)


# --- timestamps -----------------------------------------------------------------------------


def test_timestamps() -> None:
    assert parse_timestamp(1_700_000_000) == 1_700_000_000.0
    assert parse_timestamp(1_700_000_000.25) == 1_700_000_000.25
    assert parse_timestamp(1_700_000_000_123) == pytest.approx(1_700_000_000.123)
    assert parse_timestamp("1700000000") == 1_700_000_000.0
    assert parse_timestamp("2023-11-14T22:13:20Z") == 1_700_000_000.0
    assert parse_timestamp("2023-11-14T22:13:20.5+00:00") == 1_700_000_000.5
    assert parse_timestamp("2023-11-15T00:13:20+02:00") == 1_700_000_000.0
    assert parse_timestamp("2023-11-14t22:13:20.123456789z") == pytest.approx(1_700_000_000.123456789)
    assert parse_timestamp("2016-12-31T23:59:60Z") == datetime(2017, 1, 1, tzinfo=UTC).timestamp()
    for bad in ("yesterday", "2023-11-14T22:13:20", "2023-13-01T00:00:00Z", True, None, [1], -5, math.nan):
        with pytest.raises(ValueError):
            parse_timestamp(bad)


# --- parsers --------------------------------------------------------------------------------


def _set(*parsers: ParserConfig) -> ParserSet:
    return ParserSet(parsers)


JSON = ParserConfig(match="sensors/+device/+metric", format="json", value="$.value", timestamp="$.ts")


def test_json_reading_named_by_metric_segment() -> None:
    (reading,) = _set(JSON).parse("sensors/d1/temp", b'{"value": 21.5, "ts": 1700000000}') or []
    assert (reading.name, reading.device, reading.value_num, reading.value_text) == ("temp", "d1", 21.5, None)
    assert reading.source_time == 1_700_000_000.0


@pytest.mark.parametrize(
    ("value", "num", "text"),
    [
        ("true", 1.0, "true"),
        ("false", 0.0, "false"),
        ("3", 3.0, None),
        ('"4.5"', 4.5, None),
        ('" 7 "', 7.0, None),
        ('"open"', None, "open"),
        ('"nan"', None, "nan"),
        ("null", None, "null"),
        ('{"b": 1, "a": [1, 2]}', None, '{"b":1,"a":[1,2]}'),
        ("1e400", None, "inf"),
        ("123456789012345678901234567890", 1.2345678901234568e29, None),
    ],
)
def test_json_value_types(value: str, num: float | None, text: str | None) -> None:
    payload = f'{{"value": {value}}}'.encode()
    (reading,) = _set(ParserConfig(match="x/+metric", value="$.value")).parse("x/m", payload) or []
    assert (reading.value_num, reading.value_text) == (num, text)


def test_parser_name_when_no_metric_segment_and_several_parsers_match() -> None:
    parsers = _set(
        ParserConfig(match="env/+device", value="$.t", name="temperature"),
        ParserConfig(match="env/+device", value="$.h", name="humidity"),
        ParserConfig(match="other/#", format="text", name="other"),
    )
    readings = parsers.parse("env/room1", b'{"t": 20, "h": 40}') or []
    assert [(r.name, r.device, r.value_num) for r in readings] == [
        ("temperature", "room1", 20.0),
        ("humidity", "room1", 40.0),
    ]
    assert readings[0].identity != readings[1].identity
    assert parsers.processable("env/room1") and not parsers.processable("nowhere/x")
    assert parsers.parse("nowhere/x", b"1") is None
    assert parsers.subscriptions == ["env/+", "other/#"]


def test_number_and_text_formats() -> None:
    parsers = _set(ParserConfig(match="n/+metric", format="number"), ParserConfig(match="t/+metric", format="text"))
    assert [r.value_num for r in parsers.parse("n/a", b" -1.5e3\n") or []] == [-1500.0]
    assert [r.value_text for r in parsers.parse("t/a", "héllo 42".encode()) or []] == ["héllo 42"]
    for bad in (b"abc", b"nan", b"inf", b"1_000", b"", "12\u0663".encode()):
        with pytest.raises(ParseFailure):
            parsers.parse("n/a", bad)
    with pytest.raises(ParseFailure) as caught:
        parsers.parse("t/a", b"\xff\xfeabc")
    assert caught.value.sample.endswith("abc") and "\ufffd" in caught.value.sample


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        (b"{not json", "invalid JSON"),
        (b'{"value": NaN, "ts": 1}', "invalid JSON"),
        (b"\xff\xff", "invalid JSON"),
        (b'{"ts": 1}', "value not found"),
        (b'{"value": 1}', "timestamp not found"),
        (b'{"value": 1, "ts": "soon"}', "RFC 3339"),
        (b"[" * 100_000 + b"]" * 100_000, "invalid JSON"),
    ],
)
def test_json_failures(payload: bytes, error: str) -> None:
    with pytest.raises(ParseFailure) as caught:
        _set(JSON).parse("sensors/d1/temp", payload)
    assert caught.value.parser == "sensors/+device/+metric"
    assert error in caught.value.error
    assert caught.value.topic == "sensors/d1/temp"
    assert len(caught.value.sample) <= SAMPLE_MAX_CHARS


def test_failure_sample_is_truncated_and_one_megabyte_parses() -> None:
    big = b'{"value": 1, "ts": 1, "pad": "' + b"x" * 1_000_000 + b'"}'
    (reading,) = _set(JSON).parse("sensors/d/m", big) or []
    assert reading.value_num == 1.0
    with pytest.raises(ParseFailure) as caught:
        _set(JSON).parse("sensors/d/m", big[:-1])
    assert len(caught.value.sample) == SAMPLE_MAX_CHARS
    assert caught.value.sample.startswith('{"value": 1')
    multibyte = ("é" * 6000).encode()
    with pytest.raises(ParseFailure) as caught:
        _set(ParserConfig(match="n/+metric", format="number")).parse("n/x", multibyte)
    assert caught.value.sample == "é" * SAMPLE_MAX_CHARS


def test_identity_same_for_redelivery_and_different_otherwise() -> None:
    parsers = _set(JSON)

    def ident(topic: str, payload: bytes) -> str:
        return (parsers.parse(topic, payload) or [])[0].identity

    one = ident("sensors/d1/temp", b'{"value": 1, "ts": 1700000000}')
    assert one == ident("sensors/d1/temp", b'{"value": 1, "ts": 1700000000}')
    assert one != ident("sensors/d2/temp", b'{"value": 1, "ts": 1700000000}')
    assert one != ident("sensors/d1/temp", b'{"value": 1, "ts": 1700000001}')
    assert one != ident("sensors/d1/temp", b'{"value": 2, "ts": 1700000000}')
    assert len(one) == 40


def test_identity_from_id_field() -> None:
    parsers = _set(ParserConfig(match="s/+metric", value="$.v", id_field="seq"))
    first = (parsers.parse("s/m", b'{"v": 1, "seq": 7}') or [])[0].identity
    assert first == (parsers.parse("s/m", b'{"v": 2, "seq": 7, "extra": 1}') or [])[0].identity
    assert first != (parsers.parse("s/m", b'{"v": 1, "seq": 8}') or [])[0].identity
    # a payload without the id field falls back to the payload hash
    assert (parsers.parse("s/m", b'{"v": 1}') or [])[0].identity != first
    nested = _set(ParserConfig(match="s/+metric", value="$.v", id_field="$.meta.id"))
    assert nested.parse("s/m", b'{"v": 1, "meta": {"id": "a"}}')


def test_config_errors() -> None:
    assert parser_errors(ParserConfig(match="a/+metric")) == []
    assert any("name" in e for e in parser_errors(ParserConfig(match="a/+device")))
    assert any("format" in e for e in parser_errors(ParserConfig(match="a/+metric", format="xml")))
    assert any("timestamp" in e for e in parser_errors(ParserConfig(match="a/+metric", format="text", timestamp="$.t")))
    assert any("value" in e for e in parser_errors(ParserConfig(match="a/+metric", value="$..")))
    with pytest.raises(ValueError, match=r"parsers\[1\]"):
        ParserSet([ParserConfig(match="a/+metric"), ParserConfig(match="a/#/b")])


def test_empty_metric_segment_is_a_failure() -> None:
    with pytest.raises(ParseFailure):
        _set(ParserConfig(match="a/+metric", format="number")).parse("a/", b"1")


@given(st.floats(allow_nan=False, allow_infinity=False), st.integers(min_value=0, max_value=2**40))
def test_json_numbers_round_trip(value: float, ts: int) -> None:
    payload = json.dumps({"value": value, "ts": ts}).encode()
    (reading,) = _set(JSON).parse("sensors/d/m", payload) or []
    assert reading.value_num == value
    assert reading.source_time == (ts / 1000 if ts > 1e11 else float(ts))


@given(st.binary(max_size=300))
def test_arbitrary_payloads_never_raise_anything_but_parse_failure(payload: bytes) -> None:
    parsers = _set(JSON, ParserConfig(match="sensors/+device/+metric", format="text", name="t"))
    try:
        parsers.parse("sensors/d/m", payload)
    except ParseFailure as failure:
        assert len(failure.sample) <= SAMPLE_MAX_CHARS
