"""MQTT payload parsers: topic patterns with named segments, json/number/text formats.

Pure logic, no I/O: the MQTT actor calls `ParserSet.parse(topic, payload)` per
message.  `None` means no parser matches (the message is `ignored`), a
`ParseFailure` goes to the parse-error log (the message is still acknowledged),
anything else is a list of readings to store.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from fieldwatch.actors.mqtt.jsonpath import JsonPath, JsonPathError, JsonPathNotFound, compile_path
from fieldwatch.errors import FieldwatchError

__all__ = [
    "FORMATS",
    "SAMPLE_MAX_CHARS",
    "ParseFailure",
    "Parsed",
    "ParserLike",
    "ParserSet",
    "TopicPattern",
    "parse_timestamp",
    "parser_errors",
]

FORMATS: tuple[str, ...] = ("json", "number", "text")
#: A parse-error sample never holds more characters than this.
SAMPLE_MAX_CHARS = 5000
_MS_THRESHOLD = 1e11  # larger epoch values are milliseconds (1e11 s is the year 5138)
_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_NUMBER_RE = re.compile(r"\s*[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?\s*\Z")
_RFC3339_RE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})\Z"
)


class ParserLike(Protocol):
    """What a parser config must offer (fieldwatch.actors.mqtt.schema.ParserConfig fits)."""

    @property
    def match(self) -> str: ...
    @property
    def format(self) -> str: ...
    @property
    def value(self) -> str | None: ...
    @property
    def timestamp(self) -> str | None: ...
    @property
    def name(self) -> str | None: ...
    @property
    def id_field(self) -> str | None: ...


class ParseFailure(FieldwatchError):
    """A payload a parser matched but could not read; carries a truncated sample."""

    def __init__(self, parser: str, error: str, payload: bytes, topic: str = "") -> None:
        super().__init__(f"{parser}: {error}")
        self.parser = parser
        self.error = error
        self.topic = topic
        self.sample = _sample(payload)


@dataclass(frozen=True, slots=True)
class Parsed:
    """One reading from one message.

    value_num holds numbers and booleans (0/1); value_text holds strings, the
    JSON text of objects/arrays/null, "true"/"false" for booleans, or the raw
    text of a `text` payload.  identity is a hex digest that is the same for a
    redelivered copy of the message and differs between readings of one message.
    by_content is True when identity rests on the topic and payload alone (no
    source timestamp, no id field): identical payloads then share it.
    """

    name: str
    device: str | None
    value_num: float | None
    value_text: str | None
    source_time: float | None
    identity: str
    by_content: bool = False


@dataclass(frozen=True, slots=True)
class TopicPattern:
    """A topic filter with named segments: `sensors/+device/+metric`, `site/#`, `+/status`.

    `+name` matches one level and captures it, `+` matches one level, `#`
    (last only) matches the rest, including nothing.  Like MQTT, a wildcard in
    the first level does not match topics starting with `$`.
    """

    text: str
    levels: tuple[str | None, ...] = field(init=False, repr=False)  # literal, or None = wildcard
    names: tuple[str | None, ...] = field(init=False, repr=False)  # capture name per level
    multi: bool = field(init=False, repr=False)  # ends with '#'

    def __post_init__(self) -> None:
        if not isinstance(self.text, str) or not self.text:
            raise ValueError("a topic pattern must be a non-empty string")
        parts = self.text.split("/")
        multi = parts[-1] == "#"
        if multi:
            parts = parts[:-1]
        levels: list[str | None] = []
        names: list[str | None] = []
        for part in parts:
            if part.startswith("+"):
                name = part[1:]
                if name and not _NAME_RE.match(name):
                    raise ValueError(f"topic pattern {self.text!r}: bad segment name {part!r}")
                if name and name in names:
                    raise ValueError(f"topic pattern {self.text!r}: segment name {name!r} used twice")
                levels.append(None)
                names.append(name or None)
            elif "+" in part or "#" in part:
                raise ValueError(f"topic pattern {self.text!r}: '+' and '#' must fill a whole level")
            else:
                levels.append(part)
                names.append(None)
        object.__setattr__(self, "levels", tuple(levels))
        object.__setattr__(self, "names", tuple(names))
        object.__setattr__(self, "multi", multi)

    @property
    def subscription(self) -> str:
        """The plain MQTT topic filter for this pattern (`sensors/+/+`)."""
        parts = ["+" if lvl is None else lvl for lvl in self.levels]
        if self.multi:
            parts.append("#")
        return "/".join(parts)

    @property
    def captures(self) -> frozenset[str]:
        """The names of the captured segments."""
        return frozenset(n for n in self.names if n)

    def match(self, topic: str) -> dict[str, str] | None:
        """Captured segments when topic matches (an empty dict if nothing is named), else None."""
        return self.match_levels(topic.split("/"))

    def match_levels(self, parts: Sequence[str]) -> dict[str, str] | None:
        """match() for a topic already split on '/'."""
        count = len(self.levels)
        if len(parts) < count or (not self.multi and len(parts) != count):
            return None
        if parts and parts[0].startswith("$") and (count == 0 or self.levels[0] is None):
            return None
        captured: dict[str, str] = {}
        for part, level, name in zip(parts, self.levels, self.names, strict=False):
            if level is None:
                if name:
                    captured[name] = part
            elif part != level:
                return None
        return captured


def parse_timestamp(value: Any) -> float:
    """Unix seconds from a number (milliseconds when > 1e11), numeric text or RFC 3339 text."""
    if isinstance(value, bool):
        raise ValueError(f"timestamp {value!r} is a boolean")
    if isinstance(value, str):
        if _NUMBER_RE.match(value):
            value = float(value)
        else:
            return _parse_rfc3339(value)
    if not isinstance(value, (int, float)):
        raise ValueError(f"timestamp {value!r} is neither a number nor an RFC 3339 string")
    seconds = float(value)
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"timestamp {value!r} is out of range")
    return seconds / 1000.0 if seconds > _MS_THRESHOLD else seconds


def _parse_rfc3339(text: str) -> float:
    found = _RFC3339_RE.match(text.strip())
    if not found:
        raise ValueError(f"timestamp {text[:100]!r} is not RFC 3339")
    year, month, day, hour, minute, second = (int(g) for g in found.groups()[:6])
    fraction, offset = found.group(7), found.group(8)
    leap = second == 60  # RFC 3339 allows a leap second; count it as the next second
    try:
        stamp = datetime(year, month, day, hour, minute, 59 if leap else second, tzinfo=UTC)
    except ValueError as err:
        raise ValueError(f"timestamp {text[:100]!r}: {err}") from None
    if offset not in ("Z", "z"):
        sign = 1 if offset[0] == "+" else -1
        stamp -= sign * timedelta(hours=int(offset[1:3]), minutes=int(offset[4:6]))
    return stamp.timestamp() + (1.0 if leap else 0.0) + (float("0." + fraction) if fraction else 0.0)


def parser_errors(cfg: ParserLike) -> list[str]:
    """Every configuration problem of one parser (empty when it is usable)."""
    errors: list[str] = []
    try:
        pattern: TopicPattern | None = TopicPattern(cfg.match)
    except ValueError as err:
        errors.append(f"match: {err}")
        pattern = None
    if cfg.format not in FORMATS:
        errors.append(f"format: {cfg.format!r} is not one of {', '.join(FORMATS)}")
    if pattern is not None and "metric" not in pattern.captures and not cfg.name:
        errors.append("name: required when the pattern has no +metric segment")
    for key in ("value", "timestamp", "id_field"):
        text = getattr(cfg, key)
        if text is None:
            continue
        if cfg.format != "json":
            errors.append(f"{key}: only for format json")
            continue
        try:
            _compile_field(text)
        except JsonPathError as err:
            errors.append(f"{key}: {err}")
    return errors


def _compile_field(text: str) -> JsonPath:
    """A JSON path; a bare key (id_field: seq) means `$['seq']`."""
    if text.startswith("$"):
        return compile_path(text)
    return JsonPath(text=text, steps=(text,))


@dataclass(frozen=True, slots=True)
class _Parser:
    label: str
    pattern: TopicPattern
    format: str
    value: JsonPath | None
    timestamp: JsonPath | None
    name: str | None
    id_field: JsonPath | None


class ParserSet:
    """The parsers of one MQTT endpoint; every parser whose pattern matches yields a reading."""

    def __init__(self, parsers: Sequence[ParserLike]) -> None:
        compiled: list[_Parser] = []
        for index, cfg in enumerate(parsers):
            errors = parser_errors(cfg)
            if errors:
                raise ValueError(f"parsers[{index}] ({cfg.match!r}): " + "; ".join(errors))
            compiled.append(
                _Parser(
                    label=cfg.name or cfg.match,
                    pattern=TopicPattern(cfg.match),
                    format=cfg.format,
                    value=_compile_field(cfg.value) if cfg.value else None,
                    timestamp=_compile_field(cfg.timestamp) if cfg.timestamp else None,
                    name=cfg.name,
                    id_field=_compile_field(cfg.id_field) if cfg.id_field else None,
                )
            )
        self._parsers = tuple(compiled)
        self._cache: dict[str, tuple[_Match, ...]] = {}

    @property
    def subscriptions(self) -> list[str]:
        """MQTT filters covering every parser (for endpoints configured without `topics`)."""
        return list(dict.fromkeys(p.pattern.subscription for p in self._parsers))

    def processable(self, topic: str) -> bool:
        """True when some parser's pattern matches topic."""
        return bool(self._matches(topic))

    def _matches(self, topic: str) -> tuple[_Match, ...]:
        """The parsers matching topic, with what each captured (cached per topic, bounded)."""
        found = self._cache.get(topic)
        if found is not None:
            return found
        parts = topic.split("/")
        matches: list[_Match] = []
        for parser in self._parsers:
            captured = parser.pattern.match_levels(parts)
            if captured is None:
                continue
            name = captured.get("metric") or parser.name
            prefix = None
            if name:
                prefix = hashlib.sha1(f"{topic}\x00{name}\x00".encode("utf-8", "surrogatepass"),
                                      usedforsecurity=False)
            matches.append(_Match(parser, name or "", captured.get("device") or None, prefix))
        found = tuple(matches)
        if len(self._cache) >= _TOPIC_CACHE_MAX:  # many distinct topics: start over rather than grow
            self._cache.clear()
        self._cache[topic] = found
        return found

    def parse(self, topic: str, payload: bytes) -> list[Parsed] | None:
        """Readings of one message; None when no parser matches; ParseFailure on bad payload."""
        matches = self._matches(topic)
        if not matches:
            return None
        readings: list[Parsed] = []
        doc: Any = _UNSET
        for match in matches:
            parser = match.parser
            name = match.name
            if not name:
                raise ParseFailure(parser.label, "empty +metric segment in the topic", payload, topic)
            id_value: str | None = None
            source_time: float | None = None
            if parser.format == "json":
                if doc is _UNSET:
                    doc = _load_json(parser.label, payload, topic)
                value_num, value_text = _json_value(parser, doc, payload, topic)
                if parser.timestamp is not None:
                    source_time = _json_time(parser, doc, payload, topic)
                if parser.id_field is not None:
                    try:
                        id_value = json.dumps(parser.id_field.get(doc), sort_keys=True)
                    except JsonPathNotFound:
                        id_value = None  # fall back to the payload hash
            elif parser.format == "number":
                value_num, value_text = _number(parser.label, payload, topic), None
            else:
                value_num, value_text = None, _text(parser.label, payload, topic)
            hasher = match.prefix.copy()  # sha1(topic NUL name NUL), computed once per topic
            if id_value is not None:
                hasher.update(b"id=" + id_value.encode("utf-8", "surrogatepass"))
            else:
                hasher.update(payload)
                hasher.update(f"\x00t={source_time!r}".encode())
            identity = hasher.hexdigest()
            by_content = id_value is None and source_time is None
            readings.append(Parsed(name, match.device, value_num, value_text, source_time, identity, by_content))
        return readings


@dataclass(frozen=True, slots=True)
class _Match:
    """One parser matching one topic: the reading's name and device, and the identity hash prefix."""

    parser: _Parser
    name: str
    device: str | None
    prefix: Any  # hashlib sha1 object fed with topic and name; None when name is empty


_TOPIC_CACHE_MAX = 10_000


_UNSET: Any = object()


def _sample(payload: bytes) -> str:
    """At most SAMPLE_MAX_CHARS characters of payload (undecodable bytes replaced)."""
    head = bytes(payload[: SAMPLE_MAX_CHARS * 4])  # UTF-8 needs at most 4 bytes per character
    return head.decode("utf-8", errors="replace")[:SAMPLE_MAX_CHARS]


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


#: One decoder for every message (json.loads with a keyword argument builds a new one per call).
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def _load_json(label: str, payload: bytes, topic: str) -> Any:
    try:
        # what json.loads does with bytes: UTF-8/16/32 by the first bytes, lone surrogates kept
        return _DECODER.decode(payload.decode(json.detect_encoding(payload), "surrogatepass"))
    except (ValueError, UnicodeDecodeError, RecursionError) as err:
        raise ParseFailure(label, f"invalid JSON: {err}", payload, topic) from None


def _json_value(parser: _Parser, doc: Any, payload: bytes, topic: str) -> tuple[float | None, str | None]:
    try:
        value = parser.value.get(doc) if parser.value is not None else doc
    except JsonPathNotFound as err:
        raise ParseFailure(parser.label, f"value not found: {err}", payload, topic) from None
    if isinstance(value, bool):
        return (1.0 if value else 0.0), ("true" if value else "false")
    if isinstance(value, (int, float)):
        try:
            number = float(value)
        except OverflowError:
            return None, str(value)
        return (number, None) if math.isfinite(number) else (None, str(value))
    if isinstance(value, str):
        if _NUMBER_RE.match(value):
            number = float(value)
            if math.isfinite(number):
                return number, None
        return None, value
    return None, json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _json_time(parser: _Parser, doc: Any, payload: bytes, topic: str) -> float:
    assert parser.timestamp is not None
    try:
        return parse_timestamp(parser.timestamp.get(doc))
    except JsonPathNotFound as err:
        raise ParseFailure(parser.label, f"timestamp not found: {err}", payload, topic) from None
    except ValueError as err:
        raise ParseFailure(parser.label, str(err), payload, topic) from None


def _number(label: str, payload: bytes, topic: str) -> float:
    try:
        text = payload.decode("ascii")
    except UnicodeDecodeError:
        raise ParseFailure(label, "not a number: non-ASCII payload", payload, topic) from None
    if _NUMBER_RE.match(text):
        number = float(text)
        if math.isfinite(number):
            return number
    raise ParseFailure(label, f"not a number: {text[:100]!r}", payload, topic)


def _text(label: str, payload: bytes, topic: str) -> str:
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ParseFailure(label, f"not UTF-8 text: {err}", payload, topic) from None
