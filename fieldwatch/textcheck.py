"""Text that can be stored and rendered: the one check every edge (HTTP body, query, config) makes.

Length first, then encodability: a string longer than its bound is refused before
anything else looks at it (so no later step can be slow on it), and a lone
surrogate or a NUL (which UTF-8, JSON renderers, PostgreSQL or a terminal cannot
take) is refused before it is stored. Every check is linear in the input.
"""

from __future__ import annotations

from typing import Any

__all__ = ["MAX_TEXT", "json_problems", "text_problem"]

MAX_TEXT = 4096
"""The longest string any edge accepts (names have their own, smaller bound)."""


def text_problem(value: str, max_len: int = MAX_TEXT) -> str | None:
    """Why `value` cannot be stored and rendered, or None when it can."""
    if len(value) > max_len:
        return f"longer than {max_len} characters ({len(value)})"
    if "\x00" in value:
        return f"contains a NUL character at position {value.index(chr(0))}"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as err:
        return f"contains a lone surrogate (U+{ord(value[err.start]):04X}) at position {err.start}"
    return None


def _where(path: tuple[str | int, ...]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out or "body"


def json_problems(value: Any, max_len: int = MAX_TEXT, limit: int = 20) -> list[str]:
    """Every string (keys too) of a decoded JSON value that `text_problem` refuses, at most `limit`.

    Walks iteratively, so a deeply nested value costs no recursion.
    """
    problems: list[str] = []
    stack: list[tuple[tuple[str | int, ...], Any]] = [((), value)]
    while stack and len(problems) < limit:
        path, item = stack.pop()
        if isinstance(item, str):
            problem = text_problem(item, max_len)
            if problem:
                problems.append(f"{_where(path)}: {problem}")
        elif isinstance(item, dict):
            for key, sub in item.items():
                problem = text_problem(key, max_len)
                if problem:
                    problems.append(f"{_where(path)}: a key {problem}")
                    continue
                stack.append(((*path, key), sub))
        elif isinstance(item, list):
            stack.extend(((*path, i), sub) for i, sub in enumerate(item))
    return problems
