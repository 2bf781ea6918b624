"""Benchmark: fleet mode (Postgres + Redis, 1..N worker processes) against the SQLite default.

    .venv/bin/python bench/fleet.py --alerts 3000 --workers 1 --workers 2 --workers 3

Same stream as ``bench/run.py`` (``bench/stream.py``). For each worker
count: a fresh Postgres database and Redis prefix, the stream published
first, then the workers started together; alerts/s is the number of alerts
over the time from the workers' start until every message is in the inbox
(worker start-up included, as an operator would see it). The SQLite line is
``bench/run.py``'s single process. Needs Postgres on 127.0.0.1:5432 and
Redis on 127.0.0.1:6379.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.run import run as run_sqlite  # noqa: E402
from bench.stream import generate  # noqa: E402
from soc_agent.fleet import Broker, BrokerConfig  # noqa: E402
from soc_agent.fleet.postgres import temporary_database, upgrade_schema  # noqa: E402


def _inbox(url: str) -> int:
    import psycopg

    from soc_agent.fleet.postgres import psycopg_url

    with psycopg.connect(psycopg_url(url)) as conn:
        return conn.execute("SELECT count(*) FROM fleet_inbox").fetchone()[0]


def run_fleet(n_alerts: int, workers: int, partitions: int = 12, timeout_s: float = 1800) -> dict:
    """One fleet run: ``workers`` processes of ``soc-agent worker`` over ``n_alerts``."""
    prefix = f"socbench-{uuid.uuid4().hex[:8]}"
    broker = Broker(BrokerConfig(prefix=prefix, partitions=partitions))
    workdir = Path(tempfile.mkdtemp(prefix="soc-fleet-bench-"))
    with temporary_database(prefix="socagent_bench") as url:
        upgrade_schema(url)
        published = broker.publish(generate(n_alerts), "bench")
        env = {**os.environ, "SOC_AGENT_DATABASE_URL": url, "SOC_AGENT_BROKER_PREFIX": prefix,
               "SOC_AGENT_BROKER_PARTITIONS": str(partitions), "SOC_AGENT_MODE": "enforce"}
        procs = []
        started = time.perf_counter()
        for i in range(workers):
            procs.append(subprocess.Popen(
                [str(Path(sys.executable).parent / "soc-agent"), "worker", "--workdir", str(workdir / f"w{i}")],
                env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        done = 0
        while time.perf_counter() - started < timeout_s:
            done = _inbox(url) if _table_ready(url) else 0
            if done >= published.queued:
                break
            time.sleep(0.25)
        elapsed = time.perf_counter() - started
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(60)
    broker.drop()
    return {"mode": f"fleet-{workers}", "workers": workers, "alerts": n_alerts, "processed": done,
            "shed": published.shed, "elapsed_s": round(elapsed, 2), "alerts_per_s": round(done / elapsed, 1)}


def _table_ready(url: str) -> bool:
    try:
        _inbox(url)
        return True
    except Exception:  # noqa: BLE001 - not created yet
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--alerts", type=int, default=3000)
    parser.add_argument("--workers", type=int, action="append", help="worker count (repeatable); default 1, 2, 3")
    parser.add_argument("--no-sqlite", action="store_true", help="skip the single-process SQLite baseline")
    args = parser.parse_args()
    if not args.no_sqlite:
        base = run_sqlite(args.alerts)
        print(json.dumps({"mode": "sqlite-single-process", "workers": 1, "alerts": args.alerts,
                          "elapsed_s": base["elapsed_s"], "alerts_per_s": base["alerts_per_s"]}), flush=True)
    for n in args.workers or [1, 2, 3]:
        print(json.dumps(run_fleet(args.alerts, n)), flush=True)


if __name__ == "__main__":
    main()
