"""The registry's promises: shared modules never name a kind, config and the protocol folders
import each other without a cycle, and a kind's client library loads only with its actor."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from fieldwatch.kinds import KINDS
from tests.importgraph import cycles, function_imports, import_graph, module_name

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


def test_config_and_the_protocol_folders_import_without_a_cycle() -> None:
    graph = import_graph()
    assert "fieldwatch.kinds" in graph["fieldwatch.config.loader"]  # the graph sees the registry
    assert "fieldwatch.actors.icmp.kind" in graph["fieldwatch.kinds"]
    registry_side = {m for m in graph if m.startswith(("fieldwatch.config", "fieldwatch.schema", "fieldwatch.kinds",
                                                       "fieldwatch.protocol", "fieldwatch.families",
                                                       "fieldwatch.policy"))
                     or m.endswith((".kind", ".schema"))}  # fmt: skip
    assert [c for c in cycles(graph) if set(c) & registry_side] == []
    dodged = [(rel, line) for rel, line, name in function_imports()
              if module_name(rel) in registry_side and name.startswith("fieldwatch")]  # fmt: skip
    assert dodged == []  # no function-level import hides a cycle


_LAZY = """
import sys
from fieldwatch.config import parse_config_text
from fieldwatch.kinds import KINDS
from tests.importgraph import cycles, function_imports, import_graph, module_name
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
