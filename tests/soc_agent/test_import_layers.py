"""The import layers: the store imports nothing above it, nodes import only leaf modules, no circles."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NODES = ROOT / "soc_agent" / "nodes"


def _fresh_modules(statement: str) -> set[str]:
    """The modules a fresh interpreter has loaded after running ``statement``."""
    script = f"import json, sys\n{statement}\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout.splitlines()[-1]))


def _imported(path: Path) -> set[str]:
    """Every module ``path`` imports, at any depth of its body."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_the_store_engine_imports_no_wing_above_it():
    loaded = _fresh_modules("import soc_agent.store.engine")
    above = ("soc_agent.runners", "soc_agent.learning", "soc_agent.edge", "soc_agent.fleet", "soc_agent.pdp",
             "connectors")
    assert "soc_agent.store.engine" in loaded
    assert sorted(m for m in loaded if m.startswith(above)) == []


@pytest.mark.parametrize("entry", ["soc_agent.composition", "soc_agent.pipeline"])
def test_an_entry_point_that_opens_the_store_registers_every_table_of_the_schema(entry):
    script = (f"import json\nimport {entry}\nfrom sqlmodel import SQLModel\n"
              "before = set(SQLModel.metadata.tables)\n"
              "import soc_agent.store.schema\n"
              "print(json.dumps(sorted(set(SQLModel.metadata.tables) - before)))")
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == [], f"tables {entry} leaves unregistered"


def test_the_schema_lists_every_table_module():
    from soc_agent.store import schema

    declaring = {path.relative_to(ROOT).with_suffix("").as_posix().replace("/", ".")
                 for path in [*ROOT.glob("soc_agent/**/*.py"), *ROOT.glob("connectors/**/*.py")]
                 if "table=True" in path.read_text(encoding="utf-8")}
    # The fleet registers its own tables (importing them loads the broker and the worker).
    assert declaring - {"soc_agent.fleet.tables"} == {module.__name__ for module in schema.WINGS}


@pytest.mark.parametrize("path", sorted(NODES.glob("*.py")), ids=lambda p: p.name)
def test_a_node_imports_no_other_node(path: Path):
    others = {m for m in _imported(path) if m.startswith("soc_agent.nodes")}
    assert others == set(), f"{path.name} imports {sorted(others)}: move what they share to a leaf module"


def test_the_generic_mapping_does_not_import_the_registry_that_imports_it():
    for path in (ROOT / "connectors" / "generic").glob("*.py"):
        assert not {m for m in _imported(path) if m.startswith("connectors.registry")}, path.name


def test_the_deterministic_reasoner_does_not_import_the_llm_reasoner_built_on_it():
    assert not {m for m in _imported(ROOT / "soc_agent" / "reasoner.py") if m.startswith("soc_agent.llm")}


def test_the_command_line_loads_no_heavy_package_before_a_command_needs_it():
    # `soc-agent --help` and the light commands: the graph, the model, the web stack, the store and the
    # connectors load in the command that uses them.
    loaded = _fresh_modules("import soc_agent.cli")
    heavy = ("langgraph", "langchain_core", "lightgbm", "numpy", "fastapi", "uvicorn", "sqlalchemy", "sqlmodel",
             "httpx", "openai", "mcp", "cryptography", "connectors")
    assert "soc_agent.cli" in loaded
    assert sorted({m.split(".")[0] for m in loaded} & set(heavy)) == []


def test_the_injection_detector_does_not_bring_the_model_client():
    # Every graph (the reason node) and every decision point scans for injection; only --reasoner llm talks to a
    # model, so only it may load openai.
    loaded = _fresh_modules("import soc_agent.llm.injection, soc_agent.pdp.engine, soc_agent.nodes.reason")
    assert "soc_agent.llm.injection" in loaded
    assert "openai" not in {m.split(".")[0] for m in loaded}
    assert "openai" in {m.split(".")[0] for m in _fresh_modules("from soc_agent.llm import LLMReasoner")}
