"""Config schema of `kind: mqtt` endpoints.

Topic filters follow MQTT 3.1.1/5: `+` is a whole level, `#` the whole last
level, `$share/GROUP/FILTER` a shared subscription. Parser patterns may name
their `+` segments (`sensors/+device/+metric`); the `+metric` segment names
the reading, else the parser's `name` does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from fieldwatch.actors.mqtt.jsonpath import JsonPathError, compile_path
from fieldwatch.schema.dsl import (
    Bool,
    Checker,
    Ctx,
    Field,
    Float,
    Int,
    Invalid,
    Nullable,
    Obj,
    PathStr,
    Seq,
    Str,
)

__all__ = ["MqttOptions", "ParserConfig", "SCHEMA", "TlsConfig", "filter_levels", "pattern_names"]


@dataclass(frozen=True, slots=True)
class TlsConfig:
    """MQTT TLS files (absolute paths); `insecure` skips hostname verification."""

    ca: str | None = None
    cert: str | None = None
    key: str | None = None
    insecure: bool = False


@dataclass(frozen=True, slots=True)
class ParserConfig:
    """How MQTT messages on topics matching `match` become readings.

    `match` is an MQTT filter whose `+name` segments are captured; the reading
    name is the `+metric` segment, else `name`. `value` and `timestamp` are
    JSON paths ("$.value") and `id_field` the payload field (or JSON path)
    holding the message's identity (a sequence number, a message id), which
    then replaces the payload hash in the dedup key; all three only for
    `format: json`.
    """

    match: str
    format: str = "json"  # json | number | text
    value: str | None = None
    timestamp: str | None = None
    name: str | None = None
    id_field: str | None = None


@dataclass(frozen=True, slots=True)
class MqttOptions:
    """An MQTT broker, the topic filters to subscribe and the parsers of their payloads."""

    host: str
    port: int = 1883
    tls: TlsConfig | None = None
    username: str | None = None
    password: str | None = None
    client_id: str | None = None
    keepalive_s: int = 60
    qos: int = 1
    topics: tuple[str, ...] = ()
    parsers: tuple[ParserConfig, ...] = ()
    offline_after_s: float | None = 300.0
    stale_after_s: float | None = None
    clean_session: bool | None = None


_SEGMENT_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def filter_levels(topic: str, named: bool = False) -> list[str]:
    """Split a topic filter into levels, raising Invalid when it is not a valid filter.

    A `$share/GROUP/` prefix is removed. With `named`, `+name` levels are allowed
    (and returned as written).
    """
    if topic.startswith("$share/"):
        if named:
            raise Invalid("a parser pattern cannot be a shared subscription")
        parts = topic.split("/", 2)
        if len(parts) < 3 or not parts[1] or "+" in parts[1] or "#" in parts[1]:
            raise Invalid("a shared subscription must be $share/GROUP/FILTER")
        topic = parts[2]
    if not topic:
        raise Invalid("empty topic filter")
    if "\0" in topic or len(topic.encode()) > 65535:
        raise Invalid("invalid topic filter (NUL character or longer than 65535 bytes)")
    levels = topic.split("/")
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != len(levels) - 1):
            raise Invalid("'#' must be the whole last level of a topic filter")
        if "+" in level and level != "+":
            if not (named and level.startswith("+") and _SEGMENT_NAME.match(level[1:])):
                raise Invalid(f"'+' must be a whole level (bad level {level!r})")
    return levels


def pattern_names(pattern: str) -> list[str]:
    """The names of the `+name` segments of a parser pattern, in order."""
    return [level[1:] for level in pattern.split("/") if level.startswith("+") and len(level) > 1]


def _intersects(a: list[str], b: list[str]) -> bool:
    """True when some concrete topic matches both filters (`+name` counts as `+`)."""
    if not a or not b:
        return a == b or a == ["#"] or b == ["#"]
    if a[0] == "#" or b[0] == "#":
        return True
    if a[0].startswith("+") or b[0].startswith("+") or a[0] == b[0]:
        return _intersects(a[1:], b[1:])
    return False


def _check_host(value: str, ctx: Ctx) -> Any:
    if "://" in value or "/" in value or any(c.isspace() for c in value):
        raise Invalid("must be a host name or IP address (not a URL; the port goes in port:)")
    return value


def _check_topic(value: str, ctx: Ctx) -> Any:
    filter_levels(value)
    return value


def _check_pattern(value: str, ctx: Ctx) -> Any:
    filter_levels(value, named=True)
    names = pattern_names(value)
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise Invalid(f"segment name +{dupes[0]} is used twice")
    return value


def _check_json_path(value: str, ctx: Ctx) -> Any:
    """A JSON path ("$.a.b[0]") as the parser compiles it; a bare key means `$['key']`."""
    if value.startswith("$"):
        try:
            compile_path(value)
        except JsonPathError as err:
            raise Invalid(str(err)) from None
    return value


def _parser_rules(chk: Checker) -> None:
    fmt = chk.values.get("format")
    if fmt == "json" and chk.values.get("value") is None and "value" in chk.values:
        chk.fail("value", 'required when format is json (a JSON path such as "$.value")')
    if fmt in ("number", "text"):
        for key in ("value", "timestamp", "id_field"):
            if chk.given(key) and chk.values.get(key) is not None:
                chk.fail(key, f"only allowed when format is json (format is {fmt})")
    match = chk.values.get("match")
    if match is not None and "metric" not in pattern_names(match):
        if "name" in chk.values and chk.values["name"] is None:
            chk.fail("name", "required when the pattern has no +metric segment (it names the reading)")


PARSER = Obj(
    ParserConfig,
    {
        "match": Field(Str(convert=_check_pattern), required=True),
        "format": Str(choices=("json", "number", "text")),
        "value": Nullable(Str(convert=_check_json_path)),
        "timestamp": Nullable(Str(convert=_check_json_path)),
        "name": Nullable(Str()),
        "id_field": Nullable(Str(convert=_check_json_path)),
    },
    checks=[_parser_rules],
)


def _tls_pair(chk: Checker) -> None:
    cert, key = chk.values.get("cert"), chk.values.get("key")
    if cert is not None and key is None and "key" in chk.values:
        chk.fail("key", "required when cert is given")
    if key is not None and cert is None and "cert" in chk.values:
        chk.fail("cert", "required when key is given")


TLS = Obj(
    TlsConfig,
    {
        "ca": Nullable(PathStr()),
        "cert": Nullable(PathStr()),
        "key": Nullable(PathStr()),
        "insecure": Bool(),
    },
    checks=[_tls_pair],
)


def _session_rules(chk: Checker) -> None:
    if chk.values.get("password") is not None and "username" in chk.values and chk.values["username"] is None:
        chk.fail("password", "password given without username")
    if chk.values.get("clean_session") is False and "client_id" in chk.values and chk.values["client_id"] is None:
        chk.fail("clean_session", "clean_session: false needs a stable client_id")
    topics = chk.values.get("topics")
    parsers = chk.node.value.get("parsers")
    if not topics or parsers is None or not isinstance(parsers.value, list):
        return
    subscribed = [filter_levels(t) for t in topics]
    for i, item in enumerate(parsers.value):
        match = item.value.get("match") if isinstance(item.value, dict) else None
        if match is None or not isinstance(match.value, str):
            continue
        try:
            levels = filter_levels(match.value, named=True)
        except Invalid:
            continue  # reported by the parser's own schema
        if not any(_intersects(levels, topic) for topic in subscribed):
            chk.ctx.error(
                match.line,
                (*chk.path, "parsers", i, "match"),
                f"pattern {match.value!r} matches none of the subscribed topics",
            )
            chk.failed = True


SCHEMA = Obj(
    MqttOptions,
    {
        "host": Field(Str(convert=_check_host), required=True),
        "port": Int(ge=1, le=65535),
        "tls": Nullable(TLS),
        "username": Nullable(Str()),
        "password": Nullable(Str()),
        "client_id": Nullable(Str(pattern=r"^[^\s]{1,65535}$")),
        "keepalive_s": Int(ge=0, le=65535),
        "qos": Int(ge=0, le=2),
        "topics": Field(Seq(Str(convert=_check_topic), min_len=1), required=True),
        "parsers": Seq(PARSER),
        "offline_after_s": Nullable(Float(gt=0)),
        "stale_after_s": Nullable(Float(gt=0)),
        "clean_session": Nullable(Bool()),
    },
    checks=[_session_rules],
)
"""Validates the mqtt keys of an endpoint mapping into MqttOptions."""
