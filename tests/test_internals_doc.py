"""docs/INTERNALS.md names only what exists: its `fieldwatch/...` and `tests/...` paths, its
backticked dotted names (`EndpointLedger.begin`, `migrations.MIGRATIONS`, `tests.waiting.wait_for`)
and its backticked class names (`EndpointIndex`)."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "INTERNALS.md"

_PATH = re.compile(r"(?<![\w./])((?:fieldwatch|tests)/[\w/.-]*[\w/])")
_CODE = re.compile(r"`([^`\n]+)`")
_DOTTED = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+")
_CLASS = re.compile(r"[A-Z][a-z]\w*")
_FILE = re.compile(r"[\w-]+\.(?:py|js|css|html|md|yaml)")


def _modules() -> dict[str, str]:
    """Dotted module name -> its file, for fieldwatch and tests."""
    found = {}
    for top in ("fieldwatch", "tests"):
        for path in (REPO / top).rglob("*.py"):
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = str(path)
    return found


def _defined() -> dict[str, list[str]]:
    """Name -> the modules defining it at top level (classes, functions, assignments)."""
    names: dict[str, list[str]] = {}
    for module, path in _modules().items():
        for node in ast.parse(Path(path).read_text(encoding="utf-8")).body:
            if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                found = [node.name]
            elif isinstance(node, ast.Assign):
                found = [t.id for t in node.targets if isinstance(t, ast.Name)]
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                found = [node.target.id]
            else:
                continue
            for name in found:
                names.setdefault(name, []).append(module)
    return names


def _has(obj: Any, attr: str) -> bool:
    if hasattr(obj, attr):
        return True
    if isinstance(obj, type):  # dataclass fields and annotated attributes without a class value
        return any(attr in getattr(k, "__annotations__", {}) for k in obj.__mro__)
    return False


def _walk(obj: Any, module: str, attrs: list[str]) -> bool:
    for attr in attrs:
        if not _has(obj, attr):
            try:  # a submodule not imported yet
                obj = importlib.import_module(f"{module}.{attr}")
            except ImportError:
                return False
            module = f"{module}.{attr}"
            continue
        obj = getattr(obj, attr, None)
    return True


def _dotted_exists(text: str, modules: dict[str, str], defined: dict[str, list[str]]) -> bool | None:
    """Whether a dotted name resolves; None when its head is nothing of fieldwatch's (`self.ep`)."""
    parts = text.split(".")
    if parts[0] in ("fieldwatch", "tests"):
        for cut in range(len(parts), 0, -1):
            module = ".".join(parts[:cut])
            if module in modules:
                return _walk(importlib.import_module(module), module, parts[cut:])
        return False
    if parts[0] in defined:
        return any(_walk(getattr(importlib.import_module(m), parts[0]), m, parts[1:]) for m in defined[parts[0]])
    short = [m for m in modules if m.startswith("fieldwatch.") and m.rsplit(".", 1)[-1] == parts[0]]
    if short:
        return any(_walk(importlib.import_module(m), m, parts[1:]) for m in short)
    return None


def problems(doc: str) -> list[str]:
    """What the text names that does not exist."""
    modules, defined = _modules(), _defined()
    found = [f"path {p}" for p in sorted(set(_PATH.findall(doc))) if "<" not in p and not (REPO / p).exists()]
    files = {p.name for top in ("fieldwatch", "tests", "docs") for p in (REPO / top).rglob("*")}
    for code in sorted(set(_CODE.findall(doc))):
        if _FILE.fullmatch(code):
            if code not in files:
                found.append(f"file {code}")
        elif _DOTTED.fullmatch(code) and _dotted_exists(code, modules, defined) is False:
            found.append(f"name {code}")
        elif _CLASS.fullmatch(code) and code not in defined:
            found.append(f"class {code}")
    return found


def test_internals_names_only_what_exists() -> None:
    doc = DOC.read_text(encoding="utf-8")
    assert len(_CODE.findall(doc)) > 100  # the check sees the doc's names
    assert problems(doc) == []


def test_the_check_finds_a_name_that_is_gone() -> None:
    text = ("`EndpointLedger.begin` `EndpointLedger.vanished` `StatusBoard` `EndpointIndex` "
            "`self.ep.endpoint_id` `tests.waiting.wait_for` `raw.py` `board.py` fieldwatch/ledger/incarnation.py fieldwatch/board.py")  # fmt: skip
    assert problems(text) == [
        "path fieldwatch/board.py", "name EndpointLedger.vanished", "class StatusBoard", "file board.py"
    ]  # fmt: skip
