"""A small validation DSL over `Node` trees that reports every error with file, line and key.

A schema's `validate(node, ctx, path)` returns the converted value, or
`INVALID` after recording one or more errors in `ctx`; it never raises.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from fieldwatch.schema.nodes import Node, PathT, fmt_error
from fieldwatch.schema.redact import REDACTED, SECRET_KEYS, redact_url
from fieldwatch.textcheck import MAX_TEXT

__all__ = [
    "INVALID", "Bool", "Checker", "Ctx", "Field", "Float", "Int", "Invalid", "MapOf", "Nullable",
    "Obj", "PathStr", "Schema", "Seq", "Str", "resolve_path", "type_name",
]


class _Invalid:
    """Marker for a value that failed validation (its errors are already recorded)."""

    def __repr__(self) -> str:
        return "INVALID"


INVALID: Any = _Invalid()


class Invalid(Exception):
    """Raised by `convert`/check callbacks with the message to report."""


_SHOW_MAX = 80


class Ctx:
    """Validation context: the file being checked, where relative paths start, the errors."""

    def __init__(self, filename: str, base_dir: str, errors: list[str] | None = None) -> None:
        self.filename = filename
        self.base_dir = base_dir
        self.errors: list[str] = [] if errors is None else errors

    def error(self, line: int, path: PathT, message: str) -> None:
        """Record one `FILE:LINE: key.path: message` error."""
        self.errors.append(fmt_error(self.filename, line, path, message))

    def show(self, node: Node, path: PathT) -> str:
        """A value for an error message: `<redacted>` under secret keys, URL passwords masked."""
        if any(part in SECRET_KEYS for part in path if isinstance(part, str)):
            return REDACTED
        value = node.value
        if isinstance(value, str) and len(value) > _SHOW_MAX:
            value = value[:_SHOW_MAX] + "..."  # an error message quotes the start, not 100,000 characters
        return repr(redact_url(value) if isinstance(value, str) else value)


def type_name(value: Any) -> str:
    """An English name of a YAML value's type, for 'expected X, got Y' messages."""
    if value is None:
        return "null"
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
             list: "a list", dict: "a mapping"}
    return names.get(type(value), f"a {type(value).__name__}")


class Schema:
    """Base of every schema; subclasses implement `check`."""

    expects = "a value"

    def validate(self, node: Node, ctx: Ctx, path: PathT) -> Any:
        """Validate `node`, returning its value or INVALID (with errors recorded)."""
        if not node.ok:
            return INVALID
        try:
            return self.check(node, ctx, path)
        except Invalid as err:
            message = redact_url(str(err))
            if isinstance(node.value, str) and node.value and ctx.show(node, path) == REDACTED:
                message = message.replace(node.value, REDACTED)  # belt and braces for secrets
            ctx.error(node.line, path, message)
            return INVALID

    def check(self, node: Node, ctx: Ctx, path: PathT) -> Any:
        """Return the converted value or raise `Invalid`."""
        raise NotImplementedError

    def wrong_type(self, node: Node, ctx: Ctx, path: PathT) -> Invalid:
        """The standard 'expected X, got Y' error."""
        got = type_name(node.value)
        if isinstance(node.value, str):
            got = f"{got} {ctx.show(node, path)}"
        return Invalid(f"expected {self.expects}, got {got}")


Convert = Callable[[Any, Ctx], Any]


class Str(Schema):
    """A string of at most `max_len` characters (checked first): non-empty unless told,
    optionally one of `choices`, matching `pattern`."""

    expects = "a string"

    def __init__(self, choices: Iterable[str] | None = None, pattern: str | None = None,
                 nonempty: bool = True, convert: Convert | None = None, hint: str = "",
                 max_len: int = MAX_TEXT) -> None:
        self.choices = tuple(choices) if choices is not None else None
        self.pattern = re.compile(pattern) if pattern else None
        self.hint = hint or (f"must match {pattern}" if pattern else "")
        self.nonempty = nonempty
        self.convert = convert
        self.max_len = max_len

    def check(self, node: Node, ctx: Ctx, path: PathT) -> Any:
        value = node.value
        if not isinstance(value, str):
            raise self.wrong_type(node, ctx, path)
        if len(value) > self.max_len:
            hint = f": {self.hint}" if self.hint else ""
            raise Invalid(f"longer than {self.max_len} characters ({len(value)}){hint}")
        if self.nonempty and not value.strip():
            raise Invalid("must not be empty")
        if self.choices is not None and value not in self.choices:
            hint = _suggest(value, self.choices)
            raise Invalid(f"must be one of {', '.join(self.choices)}, got {ctx.show(node, path)}{hint}")
        if self.pattern is not None and not self.pattern.match(value):
            raise Invalid(f"invalid value {ctx.show(node, path)}: {self.hint}")
        return self.convert(value, ctx) if self.convert else value


class PathStr(Str):
    """A file path; relative paths are resolved against the config file's directory."""

    def __init__(self) -> None:
        super().__init__(convert=lambda value, ctx: resolve_path(value, ctx.base_dir))


def resolve_path(value: str, base_dir: str) -> str:
    """`value` with `~` expanded, made absolute relative to `base_dir`."""
    expanded = os.path.expanduser(value)
    return os.path.normpath(os.path.join(base_dir, expanded))


class _Number(Schema):
    """Shared range checking for Int and Float."""

    def __init__(self, ge: float | None = None, gt: float | None = None,
                 le: float | None = None, lt: float | None = None) -> None:
        self.bounds = [(op, limit) for op, limit in (("ge", ge), ("gt", gt), ("le", le), ("lt", lt))
                       if limit is not None]

    def parse(self, node: Node, ctx: Ctx, path: PathT) -> Any:
        raise NotImplementedError

    def check(self, node: Node, ctx: Ctx, path: PathT) -> Any:
        value = self.parse(node, ctx, path)
        for op, limit in self.bounds:
            ok = {"ge": value >= limit, "gt": value > limit,
                  "le": value <= limit, "lt": value < limit}[op]
            if not ok:
                sign = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}[op]
                shown = REDACTED if ctx.show(node, path) == REDACTED else repr(value)
                raise Invalid(f"must be {sign} {_num(limit)}, got {shown}")
        return value


def _num(limit: float) -> str:
    return str(int(limit)) if float(limit).is_integer() else str(limit)


class Int(_Number):
    """An integer (a boolean or a float is not one); `${VAR}` results are converted."""

    expects = "an integer"

    def parse(self, node: Node, ctx: Ctx, path: PathT) -> Any:
        value = node.value
        if node.substituted and isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                raise Invalid(f"expected an integer, got {ctx.show(node, path)}") from None
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.wrong_type(node, ctx, path)
        return value


class Float(_Number):
    """A finite number (an integer is fine, a boolean is not), returned as float."""

    expects = "a number"

    def parse(self, node: Node, ctx: Ctx, path: PathT) -> Any:
        value = node.value
        if node.substituted and isinstance(value, str):
            try:
                value = float(value.strip())
            except ValueError:
                raise Invalid(f"expected a number, got {ctx.show(node, path)}") from None
        elif isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.wrong_type(node, ctx, path)
        if not math.isfinite(value):
            raise Invalid("must be a finite number")
        return float(value)


class Bool(Schema):
    """true or false; `${VAR}` results true/false/yes/no/on/off/1/0 are converted."""

    expects = "a boolean (true or false)"
    _WORDS = {"true": True, "yes": True, "on": True, "1": True,
              "false": False, "no": False, "off": False, "0": False}

    def check(self, node: Node, ctx: Ctx, path: PathT) -> Any:
        value = node.value
        if node.substituted and isinstance(value, str) and value.strip().lower() in self._WORDS:
            return self._WORDS[value.strip().lower()]
        if not isinstance(value, bool):
            raise self.wrong_type(node, ctx, path)
        return value


class Nullable(Schema):
    """`null` (None) or a value of the inner schema."""

    def __init__(self, inner: Schema) -> None:
        self.inner = inner
        self.expects = f"{inner.expects} or null"

    def validate(self, node: Node, ctx: Ctx, path: PathT) -> Any:
        if node.ok and node.value is None:
            return None
        return self.inner.validate(node, ctx, path)


class Seq(Schema):
    """A list of items, returned as a tuple; `unique` names a key whose values must differ."""

    expects = "a list"

    def __init__(self, item: Schema, min_len: int = 0, unique: str | None = None,
                 what: str = "", null_empty: bool = False) -> None:
        self.item = item
        self.min_len = min_len
        self.unique = unique
        self.what = what
        self.null_empty = null_empty

    def validate(self, node: Node, ctx: Ctx, path: PathT) -> Any:
        if self.null_empty and node.ok and node.value is None:
            return ()
        return super().validate(node, ctx, path)

    def check(self, node: Node, ctx: Ctx, path: PathT) -> Any:
        if not isinstance(node.value, list):
            raise self.wrong_type(node, ctx, path)
        if len(node.value) < self.min_len:
            raise Invalid(f"must have at least {self.min_len} item(s)")
        if self.unique:
            self._check_unique(node.value, ctx, path, self.unique)
        items = [self.item.validate(item, ctx, (*path, i)) for i, item in enumerate(node.value)]
        return INVALID if any(v is INVALID for v in items) else tuple(items)

    def _check_unique(self, items: list[Node], ctx: Ctx, path: PathT, key: str) -> None:
        seen: dict[Any, int] = {}
        for i, item in enumerate(items):
            if not isinstance(item.value, dict) or key not in item.value:
                continue
            sub = item.value[key]
            if not isinstance(sub.value, str):
                continue
            if sub.value in seen:
                label = f"{self.what} {key}" if self.what else key
                ctx.error(sub.line, (*path, i, key),
                          f"duplicate {label} {sub.value!r} (first at line {seen[sub.value]})")
            else:
                seen[sub.value] = sub.line


@dataclass(frozen=True, slots=True)
class Field:
    """One key of an `Obj`: its schema, whether it is required, a default when absent."""

    schema: Schema
    required: bool = False
    default: Any = INVALID


class Checker:
    """Handed to an `Obj`'s cross-field checks: valid values (defaults filled) and `fail`."""

    def __init__(self, values: dict[str, Any], node: Node, ctx: Ctx, path: PathT) -> None:
        self.values = values
        self.node = node
        self.ctx = ctx
        self.path = path
        self.failed = False
        #: values a check derives for keys the file leaves out (built into the object)
        self.derived: dict[str, Any] = {}

    def derive(self, key: str, value: Any) -> None:
        """Use `value` for `key`, which the file does not give (a default that depends on others)."""
        self.values[key] = value
        self.derived[key] = value

    def has(self, *keys: str) -> bool:
        """True when every key has a valid value (given or defaulted)."""
        return all(key in self.values for key in keys)

    def given(self, key: str) -> bool:
        """True when the key is written in the file."""
        return key in self.node.value

    def line(self, key: str) -> int:
        """The line of `key`, or of the mapping when the key is absent."""
        sub = self.node.value.get(key)
        return sub.line if isinstance(sub, Node) else self.node.line

    def fail(self, key: str, message: str) -> None:
        """Record an error about `key`; marks the whole object invalid."""
        self.ctx.error(self.line(key), (*self.path, key), message)
        self.failed = True


Check = Callable[[Checker], None]


class Obj(Schema):
    """A mapping with known keys, built into `factory(**values)` (or a dict of given keys).

    Unknown keys are errors with a difflib suggestion; `extra` keys are tolerated
    (another schema validates them, e.g. an endpoint's common keys beside its options).
    """

    expects = "a mapping"

    def __init__(self, factory: Callable[..., Any] | None, fields: Mapping[str, Field | Schema],
                 checks: Iterable[Check] = ()) -> None:
        self.factory = factory
        self.fields = {k: f if isinstance(f, Field) else Field(f) for k, f in fields.items()}
        self.checks = tuple(checks)
        self.defaults: dict[str, Any] = {}
        if factory is not None and dataclasses.is_dataclass(factory):
            for f in dataclasses.fields(factory):
                if f.default is not dataclasses.MISSING:
                    self.defaults[f.name] = f.default
                elif f.default_factory is not dataclasses.MISSING:
                    self.defaults[f.name] = f.default_factory()

    def check(self, node: Node, ctx: Ctx, path: PathT) -> Any:
        return self.validate_keys(node, ctx, path)

    def validate_keys(self, node: Node, ctx: Ctx, path: PathT,
                      extra: Iterable[str] = ()) -> Any:
        """Validate the mapping's keys (tolerating `extra`), run checks and build the value."""
        if not isinstance(node.value, dict):
            raise self.wrong_type(node, ctx, path)
        extra = frozenset(extra)
        known = sorted(set(self.fields) | extra)
        given: dict[str, Any] = {}
        failed = False
        for key, sub in node.value.items():
            if key in self.fields:
                value = self.fields[key].schema.validate(sub, ctx, (*path, key))
                if value is INVALID:
                    failed = True
                else:
                    given[key] = value
            elif key not in extra:
                ctx.error(sub.line, (*path, key), f"unknown key {key!r}{_suggest(key, known)}")
                failed = True
        for key, field in self.fields.items():
            if key in node.value:
                continue
            if field.required:
                ctx.error(node.line, (*path, key), "missing required key")
                failed = True
            elif field.default is not INVALID:
                given[key] = field.default
        defaults = {k: v for k, v in self.defaults.items() if k not in node.value}
        checker = Checker({**defaults, **given}, node, ctx, path)
        for check in self.checks:
            check(checker)
        if failed or checker.failed:
            return INVALID
        given.update(checker.derived)
        return self.factory(**given) if self.factory is not None else given


class MapOf(Schema):
    """A mapping from free-form keys (optionally restricted to `keys`) to values of one schema."""

    expects = "a mapping"

    def __init__(self, value: Schema, keys: Iterable[str] | None = None) -> None:
        self.value = value
        self.keys = tuple(keys) if keys is not None else None

    def check(self, node: Node, ctx: Ctx, path: PathT) -> Any:
        if not isinstance(node.value, dict):
            raise self.wrong_type(node, ctx, path)
        out: dict[str, Any] = {}
        failed = False
        for key, sub in node.value.items():
            if self.keys is not None and key not in self.keys:
                ctx.error(sub.line, (*path, key),
                          f"unknown key {key!r}{_suggest(key, self.keys)}; expected one of "
                          f"{', '.join(self.keys)}")
                failed = True
                continue
            value = self.value.validate(sub, ctx, (*path, key))
            if value is INVALID:
                failed = True
            else:
                out[key] = value
        return INVALID if failed else out


def _suggest(word: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
