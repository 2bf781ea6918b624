"""What one LangGraph run of the triage topology costs with no work in its nodes.

    .venv/bin/python bench/graph_floor.py [--runs 300]

Same nodes, edges, routers, state schema, SQLite checkpointer and
durability as the real graph, but every node returns at once: the result
is the framework's floor per case run on this machine, which bounds how
many new cases a second one process can decide.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from langgraph.graph import END, START, StateGraph  # noqa: E402

from soc_agent.checkpoint import sqlite_checkpointer  # noqa: E402
from soc_agent.state import TriageState  # noqa: E402

_NODES = ["ingest", "guard_replay", "enrich", "load_case", "assess", "reason", "plan", "guard", "act", "verify",
          "write_notes"]


def _noop(name: str):
    def node(state: TriageState) -> dict:
        return {"trace": [name]}
    return node


def build(checkpointer):
    graph = StateGraph(TriageState)
    for name in _NODES:
        graph.add_node(name, _noop(name))
    graph.add_edge(START, _NODES[0])
    for a, b in zip(_NODES, _NODES[1:]):
        graph.add_edge(a, b)
    graph.add_edge(_NODES[-1], END)
    return graph.compile(checkpointer=checkpointer)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=300)
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, checkpointer, durability in (
            ("no checkpointer", None, None),
            ("sqlite, durability=exit", sqlite_checkpointer(Path(tmp) / "cp.db"), "exit"),
        ):
            app = build(checkpointer)
            times = []
            for i in range(args.runs):
                started = time.perf_counter()
                kwargs = {"durability": durability} if durability else {}
                app.invoke({"case_id": "c", "run": i, "trace": []},
                           {"configurable": {"thread_id": f"t{i}"}}, **kwargs)
                times.append((time.perf_counter() - started) * 1000)
            results[label] = {"median_ms": round(statistics.median(times), 2),
                              "p90_ms": round(sorted(times)[int(0.9 * len(times))], 2)}
    print(json.dumps(results))


if __name__ == "__main__":
    main()
