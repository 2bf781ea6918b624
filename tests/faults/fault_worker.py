"""A fleet worker for the fault tier, run as its own process (``python fault_worker.py ID``).

It is the real ``Worker`` with one test double: an "external" firewall that
keeps its blocks in its own table through its own autocommit connection, so
its effects survive the worker's death like a real firewall's would. Test
hooks, by environment:

* ``FAULT_CRASH_FLAG``: when this file exists, the worker removes it and
  ``os._exit``s right after the firewall call returns, before the result
  is recorded: the crash that exactly-once effects are about.
* ``FAULT_FAIL_MOD``: blocks of targets whose last octet is divisible by it
  fail with a ``ResponderError`` (a responder that is down for some calls).

``SOC_AGENT_REASONER=llm`` with ``SOC_AGENT_LLM_*`` points the reasoner at
the test's fake OpenAI-compatible endpoint (``tests/fake_llm.py``), which the
test breaks for part of the run.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from soc_agent.config import DEMO_AUTONOMY, Settings  # noqa: E402
from soc_agent.fleet import BrokerConfig, Worker  # noqa: E402
from soc_agent.fleet.postgres import psycopg_url  # noqa: E402
from connectors.base import ResponderError  # noqa: E402
from soc_agent.types import RunMode  # noqa: E402


class ExternalFirewall:
    """A firewall outside the store's transactions: every call is logged in ``ext_calls``."""

    name = "ext-firewall"
    capabilities = frozenset({"firewall.block"})

    def __init__(self, url: str, fail_mod: int, crash_flag: str | None) -> None:
        self.conn = psycopg.connect(psycopg_url(url), autocommit=True)
        self.fail_mod, self.crash_flag = fail_mod, crash_flag

    def _ok(self) -> psycopg.Connection:
        if self.conn.closed or self.conn.broken:
            self.conn = psycopg.connect(self.conn.info.dsn, autocommit=True)
        return self.conn

    def execute(self, action, case_id, action_id, now):
        target = action.target.value
        if self.fail_mod and int(target.rsplit(".", 1)[-1]) % self.fail_mod == 0:
            raise ResponderError(f"firewall refused {target} (injected fault)")
        self._ok().execute("INSERT INTO ext_calls VALUES (%s, %s, %s)", (action_id, target, sys.argv[1]))
        if self.crash_flag and os.path.exists(self.crash_flag):
            os.remove(self.crash_flag)
            os._exit(9)  # the call happened; its result is never recorded
        return {"blocked": target}

    def verify(self, action) -> bool:
        row = self._ok().execute("SELECT 1 FROM ext_calls WHERE target = %s", (action.target.value,)).fetchone()
        return row is not None

    def rollback(self, action, case_id, now):
        return {"lifted": action.target.value}

    def expire(self, now):
        return []


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format=f"%(asctime)s {sys.argv[1]} %(message)s")
    url = os.environ["SOC_AGENT_DATABASE_URL"]
    settings = Settings(workdir=Path(os.environ["FAULT_WORKDIR"]) / sys.argv[1], database_url=url,
                        mode=RunMode.ENFORCE, autonomy_file=DEMO_AUTONOMY, reasoner=os.environ.get("SOC_AGENT_REASONER", "deterministic"))
    worker = Worker(settings, BrokerConfig.from_env(), worker_id=sys.argv[1], batch=50)
    firewall = ExternalFirewall(url, int(os.environ.get("FAULT_FAIL_MOD", "0")), os.environ.get("FAULT_CRASH_FLAG"))
    worker.pipeline.services.executor._by_capability["firewall.block"] = firewall
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stats = worker.run(stop)
    print(stats, flush=True)


if __name__ == "__main__":
    main()
