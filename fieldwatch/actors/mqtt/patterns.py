"""MQTT topic patterns with named segments (`sensors/+device/+metric`), as the parsers' `match:` uses them."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = ["TopicPattern"]

_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


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
