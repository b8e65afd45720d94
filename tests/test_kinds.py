"""The registry's promises: shared modules never name a kind, config and the protocol folders
import each other without a cycle, and a kind's client library loads only with its actor."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

from fieldwatch.kinds import KINDS

ROOT = Path(__file__).resolve().parents[1] / "fieldwatch"

#: Not shared: the kinds' own folders, the registry, and the examples (demo, simulators).
_OWN = ("actors/icmp/", "actors/opcua/", "actors/mqtt/", "kinds.py", "demo.py", "sim/")
#: Shared files that still name a kind because another change owns them; each entry must
#: still be true (the test fails once the file is fixed or gone: then delete its line).
_PENDING: dict[str, str] = {}


def _shared_files() -> list[Path]:
    files = []
    for path in sorted(ROOT.rglob("*")):
        rel = path.relative_to(ROOT).as_posix()
        if path.is_file() and path.suffix in (".py", ".js", ".html", ".css") and not rel.startswith(_OWN):
            files.append(path)
    return files


def test_no_shared_module_names_a_kind() -> None:
    names = re.compile("|".join(re.escape(n) for n in KINDS.names()), re.IGNORECASE)
    found: dict[str, list[str]] = {}
    for path in _shared_files():
        rel = path.relative_to(ROOT).as_posix()
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if names.search(line):
                found.setdefault(rel, []).append(f"{rel}:{number}: {line.strip()}")
    assert len(_shared_files()) > 50  # the walk sees the package
    unexpected = [hit for rel, hits in found.items() if rel not in _PENDING for hit in hits]
    assert unexpected == []
    assert sorted(found) == sorted(_PENDING), "a pending file no longer names a kind: remove it from _PENDING"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _top_level_imports(tree: ast.Module) -> list[str]:
    """The fieldwatch modules a module imports when it is imported (TYPE_CHECKING blocks left out)."""
    out: list[str] = []

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.If):
                if not (isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"):
                    visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)
            elif isinstance(node, ast.Import):
                out.extend(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                out.append(node.module)
                out.extend(f"{node.module}.{a.name}" for a in node.names)

    visit(tree.body)
    return [m for m in out if m.split(".")[0] == "fieldwatch"]


def _function_imports(tree: ast.Module) -> list[int]:
    return [
        inner.lineno
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        for inner in ast.walk(node)
        if isinstance(inner, (ast.Import, ast.ImportFrom))
        and any(n.split(".")[0] == "fieldwatch" for n in ([inner.module or ""] if isinstance(inner, ast.ImportFrom)
                                                          else [a.name for a in inner.names]))
    ]  # fmt: skip


def _graph() -> tuple[dict[str, set[str]], dict[str, ast.Module]]:
    trees = {_module_name(p): ast.parse(p.read_text(encoding="utf-8")) for p in ROOT.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, tree in trees.items():
        edges = set()
        for target in _top_level_imports(tree):
            parts = target.split(".")
            # importing a.b.c runs a/__init__ and a/b/__init__ first
            edges.update(".".join(parts[:i]) for i in range(1, len(parts) + 1) if ".".join(parts[:i]) in trees)
        # a module's own packages are already (being) imported when it runs: no edge to them
        graph[name] = {e for e in edges if not name.startswith(e + ".")} - {name}
    return graph, trees


def _cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[set[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(comp)

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for v in graph:
        if v not in index:
            strong(v)
    return out


def test_config_and_the_protocol_folders_import_without_a_cycle() -> None:
    graph, trees = _graph()
    assert "fieldwatch.kinds" in graph["fieldwatch.config.loader"]  # the graph sees the registry
    assert "fieldwatch.actors.icmp.kind" in graph["fieldwatch.kinds"]
    registry_side = [m for m in graph if m.startswith(("fieldwatch.config", "fieldwatch.schema", "fieldwatch.kinds",
                                                        "fieldwatch.protocol", "fieldwatch.families",
                                                        "fieldwatch.policy"))
                     or m.endswith((".kind", ".schema"))]  # fmt: skip
    cycles = [c for c in _cycles(graph) if c & set(registry_side)]
    assert cycles == []
    dodged = {m: lines for m in registry_side if (lines := _function_imports(trees[m]))}
    assert dodged == {}  # no function-level import hides a cycle


_LAZY = """
import sys
from fieldwatch.config import parse_config_text
from fieldwatch.kinds import KINDS
import fieldwatch.daemon

config = parse_config_text(
    "instance: x\\nsites:\\n  - name: s\\n    endpoints:\\n      - {name: r, kind: icmp, host: 127.0.0.1}\\n",
    "/tmp/f.yaml",
)
assert config.sites[0].endpoints[0].options.host == "127.0.0.1"
KINDS[config.sites[0].endpoints[0].kind].actor_class()
heavy = lambda: sorted({m.split(".")[0] for m in sys.modules if m.split(".")[0] in ("asyncua", "paho")})
print(heavy())
KINDS["opcua"].actor_class()
KINDS["mqtt"].actor_class()
print(heavy())
"""


def test_an_icmp_only_daemon_never_imports_the_other_client_libraries() -> None:
    out = subprocess.run([sys.executable, "-c", _LAZY], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.splitlines() == ["[]", "['asyncua', 'paho']"]  # loading their actors does


def test_a_registered_kind_is_gone_after_its_block() -> None:
    icmp = KINDS["icmp"]
    toy = type(icmp)(name="toy", options=icmp.options, schema=icmp.schema, actor=icmp.actor)
    with KINDS.registered(toy):
        assert KINDS.names()[-1] == "toy" and KINDS.get("toy") is toy
        try:
            KINDS.register(toy)
        except ValueError as err:
            assert "already registered" in str(err)
        else:
            raise AssertionError("a kind registered twice")
    assert "toy" not in KINDS and KINDS.names() == ("icmp", "opcua", "mqtt")
