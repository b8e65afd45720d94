"""A small JSON path subset for MQTT payloads: `$`, `$.a.b`, `$.arr[0]`, `$['key with space']`.

Compiled once at config load (syntax errors name the column), evaluated per
message without regular expressions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["JsonPath", "JsonPathError", "JsonPathNotFound", "compile_path"]

_IDENT_EXTRA = frozenset("_-$")


class JsonPathError(ValueError):
    """A JSON path expression is malformed."""


class JsonPathNotFound(LookupError):
    """A JSON path does not lead to a value in the given document."""


@dataclass(frozen=True, slots=True)
class JsonPath:
    """A compiled path: `steps` are object keys (str) or array indexes (int)."""

    text: str
    steps: tuple[str | int, ...]

    def get(self, doc: Any) -> Any:
        """The value at this path in doc; JsonPathNotFound when a step is missing."""
        node = doc
        for step in self.steps:
            if isinstance(step, str):
                if not isinstance(node, dict) or step not in node:
                    raise JsonPathNotFound(f"{self.text}: no key {step!r}")
                node = node[step]
            else:
                if not isinstance(node, list):
                    raise JsonPathNotFound(f"{self.text}: [{step}] applied to a non-array")
                try:
                    node = node[step]
                except IndexError:
                    raise JsonPathNotFound(f"{self.text}: index {step} out of range") from None
        return node

    def __str__(self) -> str:
        return self.text


def compile_path(text: str) -> JsonPath:
    """Compile a path like `$.a.b[0]['c d']`; JsonPathError with the column on bad syntax."""
    if not isinstance(text, str) or not text.startswith("$"):
        raise JsonPathError(f"JSON path {text!r} must start with '$'")
    steps: list[str | int] = []
    pos = 1
    end = len(text)
    while pos < end:
        char = text[pos]
        if char == ".":
            start = pos + 1
            pos = start
            while pos < end and (text[pos].isalnum() or text[pos] in _IDENT_EXTRA):
                pos += 1
            if pos == start:
                raise JsonPathError(f"JSON path {text!r}: expected a key name at column {start + 1}")
            steps.append(text[start:pos])
        elif char == "[":
            pos, step = _bracket(text, pos)
            steps.append(step)
        else:
            raise JsonPathError(f"JSON path {text!r}: unexpected {char!r} at column {pos + 1}")
    return JsonPath(text=text, steps=tuple(steps))


def _bracket(text: str, pos: int) -> tuple[int, str | int]:
    """Parse `[0]`, `[-1]`, `['k']` or `["k"]` starting at text[pos] == '['."""
    end = len(text)
    inner = pos + 1
    if inner < end and text[inner] in "'\"":
        quote = text[inner]
        chars: list[str] = []
        cur = inner + 1
        while cur < end and text[cur] != quote:
            if text[cur] == "\\" and cur + 1 < end:
                cur += 1
            chars.append(text[cur])
            cur += 1
        if cur >= end or cur + 1 >= end or text[cur + 1] != "]":
            raise JsonPathError(f"JSON path {text!r}: unterminated [{quote}...{quote}] at column {pos + 1}")
        return cur + 2, "".join(chars)
    close = text.find("]", inner)
    if close < 0:
        raise JsonPathError(f"JSON path {text!r}: missing ']' after column {pos + 1}")
    body = text[inner:close].strip()
    digits = body[1:] if body.startswith("-") else body
    if not digits.isdigit() or not digits.isascii():
        raise JsonPathError(f"JSON path {text!r}: [{body}] is neither an index nor a quoted key")
    return close + 1, int(body)
