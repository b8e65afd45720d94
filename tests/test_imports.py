"""The package's import structure: no cycle at module level, no import hidden in a function
(how the graph is read: tests/importgraph.py)."""

from __future__ import annotations

from tests.importgraph import cycles, function_imports, import_graph

# Function-level imports that are allowed, as (file under fieldwatch/, imported module) -> why.
LAZY_IMPORTS: dict[tuple[str, str], str] = {
    # amqtt is an optional, heavy fallback broker: imported only when mosquitto is missing.
    ("sim/mqtt_broker.py", "amqtt.broker"): "optional heavy library, fallback only",
}
# Not listed because they are no import statement: the kind registry's lazy loader
# (`fieldwatch.protocol._load`, importlib: a protocol's client library loads only when
# one of its endpoints starts) and the CLI's (`fieldwatch.cli._lazy`: `check-config`
# never imports the daemon).


def test_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_graph_sees_imports_and_their_packages() -> None:
    graph = import_graph()
    assert "fieldwatch.ledger" in graph["fieldwatch.daemon"]
    assert "fieldwatch.storage.db" in graph["fieldwatch.daemon"]
    assert "fieldwatch.storage" in graph["fieldwatch.daemon"]  # the package of storage.db runs too


def test_no_import_cycle() -> None:
    assert cycles(import_graph()) == []


def test_no_function_level_import_outside_the_allowlist() -> None:
    found = set(function_imports())
    unexpected = sorted(f"{path}:{line} imports {name}" for path, line, name in found
                        if (path, name) not in LAZY_IMPORTS)  # fmt: skip
    assert unexpected == []
    stale = set(LAZY_IMPORTS) - {(path, name) for path, _, name in found}
    assert stale == set(), "allowlisted imports that are gone: drop them from LAZY_IMPORTS"
