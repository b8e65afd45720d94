"""YAML loading that keeps line numbers, rejects duplicate keys and substitutes ${NAME}.

PyYAML's `safe_load` forgets where values came from and silently keeps the last
of two equal keys, so we compose the node graph ourselves and turn it into a
tree of `Node`s: each holds its plain value (a dict of Nodes, a list of Nodes or
a scalar) and the 1-based line of its key (or of itself, for list items).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from fieldwatch.textcheck import text_problem

__all__ = ["Node", "PathT", "compose", "fmt_error", "fmt_path", "sort_errors"]

PathT = tuple[str | int, ...]
"""A key path: mapping keys and sequence indexes, e.g. ("sites", 0, "name")."""

_MERGE_TAG = "tag:yaml.org,2002:merge"
_ENV_RE = re.compile(r"\$\$\{|\$\{([^}]*)\}|\$\{")
_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True, slots=True)
class Node:
    """A YAML value with its line; mappings hold dict[str, Node], sequences list[Node].

    `substituted` is true when the string came (partly) from `${...}`; `ok` is
    false when an error was already reported for it (e.g. an unset variable),
    so validation stays quiet about it.
    """

    value: Any
    line: int
    substituted: bool = False
    ok: bool = True


def fmt_path(path: PathT) -> str:
    """Format a key path as `sites[0].endpoints[1].url`."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


def fmt_error(filename: str, line: int, path: PathT, message: str) -> str:
    """Format one error as `FILE:LINE: key.path: message`."""
    where = fmt_path(path)
    return f"{filename}:{line}: {where}: {message}" if where else f"{filename}:{line}: {message}"


def sort_errors(errors: list[str], filename: str) -> list[str]:
    """`errors` with those of `filename` in line order (stable; others keep their place after)."""
    prefix = f"{filename}:"

    def line_of(message: str) -> int:
        head = message[len(prefix):].split(":", 1)[0] if message.startswith(prefix) else ""
        return int(head) if head.isdigit() else 0

    ours = [e for e in errors if e.startswith(prefix)]
    return sorted(ours, key=line_of) + [e for e in errors if not e.startswith(prefix)]


class _Composer:
    """Walks PyYAML's composed node graph into `Node`s, collecting errors."""

    def __init__(self, loader: yaml.SafeLoader, filename: str, env: Mapping[str, str]) -> None:
        self.loader = loader
        self.filename = filename
        self.env = env
        self.errors: list[str] = []
        self._stack: set[int] = set()

    def error(self, line: int, path: PathT, message: str) -> None:
        self.errors.append(fmt_error(self.filename, line, path, message))

    def walk(self, node: yaml.Node, path: PathT, line: int) -> Node:
        if id(node) in self._stack:
            self.error(line, path, "recursive YAML alias")
            return Node(None, line, ok=False)
        self._stack.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode):
                return Node(self._mapping(node, path), line)
            if isinstance(node, yaml.SequenceNode):
                items = [
                    self.walk(item, (*path, i), item.start_mark.line + 1)
                    for i, item in enumerate(node.value)
                ]
                return Node(items, line)
            return self._scalar(node, path, line)
        finally:
            self._stack.discard(id(node))

    def _scalar(self, node: yaml.Node, path: PathT, line: int) -> Node:
        try:
            value = self.loader.construct_object(node, deep=True)
        except yaml.YAMLError as err:
            self.error(line, path, f"invalid value: {getattr(err, 'problem', err)}")
            return Node(None, line, ok=False)
        if isinstance(value, str):
            scalar = self._substitute(value, path, line) if "$" in value else Node(value, line)
            problem = text_problem(scalar.value) if scalar.ok else None
            if problem:  # stored and rendered later: refuse it here, at the edge
                self.error(line, path, f"invalid value: {problem}")
                return Node(None, line, ok=False)
            return scalar
        return Node(value, line)

    def _substitute(self, text: str, path: PathT, line: int) -> Node:
        problems: list[str] = []
        used = False

        def repl(match: re.Match[str]) -> str:
            nonlocal used
            token = match.group(0)
            if token == "$${":
                return "${"
            name = match.group(1)
            if name is None:
                problems.append("unterminated '${' (write '$${' for a literal '${')")
                return token
            if not _ENV_NAME_RE.match(name):
                problems.append(f"invalid environment variable name '{name}'")
                return token
            if name not in self.env:
                problems.append(f"environment variable {name} is not set")
                return token
            used = True
            return self.env[name]

        value = _ENV_RE.sub(repl, text)
        for problem in problems:
            self.error(line, path, problem)
        return Node(value, line, substituted=used, ok=not problems)

    def _key(self, key_node: yaml.Node, path: PathT) -> str | None:
        line = key_node.start_mark.line + 1
        if not isinstance(key_node, yaml.ScalarNode):
            self.error(line, path, "mapping keys must be strings")
            return None
        try:
            key = self.loader.construct_object(key_node)
        except yaml.YAMLError:
            key = None
        if not isinstance(key, str):
            self.error(line, path, f"mapping key {key_node.value[:64]!r} must be a string")
            return None
        problem = text_problem(key)
        if problem:
            self.error(line, path, f"invalid mapping key: {problem}")
            return None
        return key

    def _mapping(self, node: yaml.MappingNode, path: PathT) -> dict[str, Node]:
        out: dict[str, Node] = {}
        lines: dict[str, int] = {}
        merges: list[yaml.Node] = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                merges.append(value_node)
                continue
            key = self._key(key_node, path)
            if key is None:
                continue
            line = key_node.start_mark.line + 1
            if key in lines:
                self.error(line, (*path, key), f"duplicate key (first at line {lines[key]})")
                continue
            lines[key] = line
            out[key] = self.walk(value_node, (*path, key), line)
        for source in merges:
            self._merge_into(out, source, path)
        return out

    def _merge_into(self, out: dict[str, Node], source: yaml.Node, path: PathT) -> None:
        sources = source.value if isinstance(source, yaml.SequenceNode) else [source]
        for src in sources:
            if not isinstance(src, yaml.MappingNode):
                self.error(src.start_mark.line + 1, path, "'<<' merges only mappings")
                continue
            merged = self.walk(src, path, src.start_mark.line + 1).value
            for key, value in merged.items():
                out.setdefault(key, value)


def compose(text: str, filename: str, env: Mapping[str, str]) -> tuple[Node | None, list[str]]:
    """Parse one YAML document into a `Node` tree; returns (root or None, errors).

    Syntax errors, duplicate keys, non-string keys and unset `${NAME}`
    variables are all reported as `FILE:LINE: ...` strings.
    """
    loader = yaml.SafeLoader(text)
    try:
        try:
            root = loader.get_single_node()
        except yaml.MarkedYAMLError as err:
            mark = err.problem_mark or err.context_mark
            line = mark.line + 1 if mark is not None else 1
            problem = err.problem or err.context or "invalid YAML"
            return None, [f"{filename}:{line}: YAML syntax error: {problem}"]
        except yaml.YAMLError as err:
            return None, [f"{filename}:1: YAML error: {err}"]
        if root is None:
            return None, []
        composer = _Composer(loader, filename, env)
        tree = composer.walk(root, (), root.start_mark.line + 1)
        return tree, composer.errors
    finally:
        loader.dispose()
