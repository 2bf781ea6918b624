"""Benchmark: the embedded pipeline end to end (SQLite, enforce mode).

    .venv/bin/python bench/run.py --alerts 10000 [--alerts 100000] [--run-batch-size 1]

Reports alerts/s, p50/p99/max arrival-to-decision latency over all alerts and
over the events that complete a brute-force threshold (whether the guard
allowed the block or sent it to a person), graph runs, peak memory (max
RSS) and the garbage collector's full collections (count and longest
pause). Each size runs in a fresh workdir. ``--run-batch-size``
overrides the settings' default (1: every case run is its own graph invocation).
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.stream import generate  # noqa: E402
from soc_agent.config import DEMO_AUTONOMY, Settings  # noqa: E402
from soc_agent.pipeline import Pipeline  # noqa: E402
from soc_agent.types import RunMode  # noqa: E402


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return round(values[min(len(values) - 1, int(q * len(values)))], 3)


class _GcPauses:
    """Times the garbage collector's full (generation 2) collections: every alert waits out each one."""

    def __init__(self) -> None:
        self.full: list[float] = []
        self._started = 0.0

    def __call__(self, phase: str, info: dict) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.full.append((time.perf_counter() - self._started) * 1000)


def run(n_alerts: int, batch_size: int | None = None) -> dict:
    """One benchmark run of ``n_alerts``."""
    lines = generate(n_alerts)
    workdir = Path(tempfile.mkdtemp(prefix="soc-bench-"))
    try:
        overrides = {"run_batch_size": batch_size} if batch_size else {}
        pipeline = Pipeline(Settings(workdir=workdir, mode=RunMode.ENFORCE, autonomy_file=DEMO_AUTONOMY, **overrides))
        latencies, threshold, threshold_to_person = [], [], 0
        pauses = _GcPauses()
        gc.callbacks.append(pauses)
        started = time.perf_counter()
        for result in pipeline.run_lines(lines, "bench"):
            latencies.append(result.latency_ms)
            # The event that completes a threshold reports the run it caused: allowed, or sent to a person
            # (the guard's block-rate limit sends most blocks of a fast stream to one). Both are decisions.
            if result.status in ("decided", "pending_approval") and result.alert_id.startswith("ev-") \
                    and result.incident_class in ("brute_force", "password_spray"):
                threshold.append(result.latency_ms)
                threshold_to_person += result.status == "pending_approval"
        pipeline.store.commit()
        elapsed = time.perf_counter() - started
        gc.callbacks.remove(pauses)
        summary = pipeline.summary
        pipeline.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return {
        "alerts": n_alerts, "run_batch_size": pipeline.batch_size, "elapsed_s": round(elapsed, 2),
        "alerts_per_s": round(n_alerts / elapsed, 1),
        "processed": summary.processed, "dead_lettered": summary.dead_lettered,
        "duplicates": summary.duplicates, "graph_runs": summary.graph_runs,
        "p50_ms": _pct(latencies, 0.50), "p99_ms": _pct(latencies, 0.99), "max_ms": _pct(latencies, 1.0),
        "threshold_decisions": len(threshold), "threshold_to_person": threshold_to_person,
        "threshold_p50_ms": _pct(threshold, 0.50),
        "threshold_p99_ms": _pct(threshold, 0.99),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "gc_full_collections": len(pauses.full), "gc_full_pause_max_ms": _pct(pauses.full, 1.0),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--alerts", type=int, action="append", help="stream size (repeatable)")
    parser.add_argument("--run-batch-size", type=int, default=None, help="case runs per graph invocation")
    args = parser.parse_args()
    for n in args.alerts or [10_000]:
        print(json.dumps(run(n, args.run_batch_size)), flush=True)


if __name__ == "__main__":
    main()
