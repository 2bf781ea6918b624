"""Where the embedded pipeline's time goes: per node, per batch, per alert.

    .venv/bin/python bench/breakdown.py --alerts 10000

Same stream and settings as ``bench/run.py``. Wraps each node (and each
node's batch form), the batch graph invocation, the hand-over of paused
runs and the store's commits with timers, and prints one JSON object:
milliseconds per case run for each node, and per alert for everything
outside the graph and for what intake alone costs of that. The timers
themselves cost a little; use ``bench/run.py`` for throughput.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import soc_agent.graph as graph_module  # noqa: E402
import soc_agent.pipeline as pipeline_module  # noqa: E402
from bench.stream import generate  # noqa: E402
from soc_agent.config import DEMO_AUTONOMY, Settings  # noqa: E402
from soc_agent.pipeline import Pipeline  # noqa: E402
from soc_agent.types import RunMode  # noqa: E402

_spent: Counter = Counter()
_calls: Counter = Counter()


def _timed(name: str, fn, count=lambda *a: 1):
    def wrapper(*args, **kwargs):
        started = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            _spent[name] += time.perf_counter() - started
            _calls[name] += count(*args)
    return wrapper


_graph_depth = [0]


def _inside_graph(fn):
    # Commits made by nodes (an executor's, before a non-transactional responder acts) are part of
    # the batch graph's time; only the pipeline's own commits count as outside it.
    def wrapper(*args, **kwargs):
        _graph_depth[0] += 1
        try:
            return fn(*args, **kwargs)
        finally:
            _graph_depth[0] -= 1
    return wrapper


def breakdown(n_alerts: int) -> dict:
    """One instrumented run of ``n_alerts``."""
    for name, node in list(graph_module.NODES.items()):
        if name != "await_approval":  # runs only in a paused run's own thread
            graph_module.NODES[name] = _timed(name, node)
    for name, form in list(graph_module.BATCH_FORMS.items()):
        graph_module.BATCH_FORMS[name] = _timed(name, form, count=lambda states, runtime: len(states))
    pipeline_module.hand_over = _timed("hand_over", pipeline_module.hand_over)
    lines = generate(n_alerts)
    with tempfile.TemporaryDirectory(prefix="soc-breakdown-") as workdir:
        pipeline = Pipeline(Settings(workdir=Path(workdir), mode=RunMode.ENFORCE, autonomy_file=DEMO_AUTONOMY))
        pipeline.batch_graph.invoke = _timed("batch_graph", _inside_graph(pipeline.batch_graph.invoke))
        commit = pipeline.store.commit
        timed_commit = {False: _timed("commit", commit), True: _timed("commit_in_graph", commit)}
        pipeline.store.commit = lambda: timed_commit[_graph_depth[0] > 0]()
        started = time.perf_counter()
        for _ in pipeline.run_lines(lines, "bench"):
            pass
        pipeline.store.commit()
        elapsed = time.perf_counter() - started
        runs = pipeline.summary.graph_runs
        pipeline.close()
    nodes = {name: round(_spent[name] / runs * 1000, 3) for name in graph_module.NODES if _calls[name]}
    return {
        "alerts": n_alerts, "elapsed_s": round(elapsed, 2), "graph_runs": runs,
        "batches": _calls["batch_graph"], "paused_runs": _calls["hand_over"],
        "node_ms_per_run": dict(sorted(nodes.items(), key=lambda item: -item[1])),
        "nodes_ms_per_run": round(sum(nodes.values()), 3),
        "batch_graph_ms_per_run": round(_spent["batch_graph"] / runs * 1000, 3),
        "hand_over_ms_each": round(_spent["hand_over"] / max(_calls["hand_over"], 1) * 1000, 3),
        "commit_ms_per_alert": round(_spent["commit"] / n_alerts * 1000, 3),
        "outside_graph_ms_per_alert": round((elapsed - _spent["batch_graph"]) / n_alerts * 1000, 3),
        # What is left outside the batch graph once hand-overs and commits are taken out: parsing,
        # dedupe, correlation into cases, threshold detection and the buffered row writes.
        "intake_ms_per_alert": round((elapsed - _spent["batch_graph"] - _spent["hand_over"] - _spent["commit"])
                                     / n_alerts * 1000, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--alerts", type=int, default=10_000)
    args = parser.parse_args()
    print(json.dumps(breakdown(args.alerts)), flush=True)


if __name__ == "__main__":
    main()
