"""The fault tier: 3 workers on Postgres and Redis while the test breaks things.

During the run the test makes one worker die right after a firewall call and
before its result is recorded, kill -9s another mid-batch, restarts Postgres,
pauses Redis, has the firewall refuse some blocks, and breaks the LLM
endpoint the workers reason with (a local fake, ``tests/fake_llm.py``): 500s,
429s with ``Retry-After``, timeouts, then answers that cite evidence the case
does not have or propose an action off the menu, each in turn, then healthy
again. At the end: alerts in = processed + dead-lettered, no case
duplicated, no action executed twice, the audit chain verifies, every paused
approval is still resumable, every case reasoned during the outage says the
deterministic reasoner stood in, and no invalid answer was ever acted on.

Size: ``FAULT_ALERTS`` alerts, default 50,000, as the issue asks: on this
2-core machine the tier takes about 6 minutes (376 s measured with another
job holding one core), well inside CI's budget. Set it lower for a quick
local run; the faults are the same at any size, what size buys is soak
time. The run's deadline grows with ``FAULT_ALERTS``.

The "no case duplicated" check compares each alert with the previous
alert of the same detection and source: within the correlation window they
must share a case (a strong indicator may join other rules' alerts to a
case; the window may end one). A single process holds this on the same
stream at every size (``bench/stream.py``, 10,000 alerts: no split case).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "soc_agent" / "fleet"))
from fleet_kit import ADMIN_URL, postgres_up, redis_up  # noqa: E402

from bench.stream import generate  # noqa: E402
from soc_agent.audit import verify  # noqa: E402
from soc_agent.config import DEMO_AUTONOMY, Settings  # noqa: E402
from soc_agent.correlate import is_internal_ip  # noqa: E402
from soc_agent.fleet import Broker, BrokerConfig  # noqa: E402
from soc_agent.fleet.postgres import temporary_database, upgrade_schema  # noqa: E402
from soc_agent.types import RunMode  # noqa: E402
from tests.fake_llm import FakeModel, running_fake_model  # noqa: E402

pytestmark = pytest.mark.faults

ALERTS = int(os.environ.get("FAULT_ALERTS", "50000"))
DEADLINE_S = 420 + ALERTS // 20  # generous: 50,000 alerts took 376 s on 2 shared cores
HARNESS = Path(__file__).with_name("fault_worker.py")

# The LLM outage, in order; the last two are answers that must never be believed.
OUTAGE = ("500", "429", "slow", "bogus_evidence", "off_menu")
INVALID = ("bogus_evidence", "off_menu")
INVALID_VERDICT = "false_positive"
"""What the invalid answers claim (healthy answers say true_positive, so an "llm" false_positive was believed)."""
INVALID_NARRATIVE = "FAULT-DRILL invalid answer"
FALLBACK = "deterministic (llm fallback)"
SETTLE_S = 3.0
"""A reason record this long after the outage began asked the broken endpoint (an answer fetched just
before it may be recorded a little later on a loaded machine)."""
LLM_ENV = {
    "SOC_AGENT_REASONER": "llm", "SOC_AGENT_LLM_MODEL": "fake-model",
    # A timeout well under the fake's slow answers; one retry; a breaker that probes again soon.
    "SOC_AGENT_LLM_TIMEOUT_S": "0.5", "SOC_AGENT_LLM_RETRIES": "1",
    "SOC_AGENT_LLM_BREAKER_FAILURES": "3", "SOC_AGENT_LLM_BREAKER_COOLDOWN_S": "1",
    # Budgets out of the way: a budget refusal is a fallback this test did not cause.
    "SOC_AGENT_LLM_REQUESTS_PER_MINUTE": "100000000", "SOC_AGENT_LLM_TOKENS_PER_MINUTE": "100000000000",
    "SOC_AGENT_LLM_TOKENS_PER_RUN": "100000000000000",
    # Every case run asks the model, so the outage hits the runs it is meant to hit.
    "SOC_AGENT_LLM_CONSULT": "always",
}


class LLMOutage(threading.Thread):
    """Breaks the fake endpoint for part of the run: each ``OUTAGE`` mode in turn, then healthy again.

    Each mode lasts until the endpoint has answered with it ``min_served``
    times and at least ``min_s``, so every fault is really met by a worker.
    ``started`` / ``ended`` (wall clock) bound the records reasoned against
    the broken endpoint.
    """

    def __init__(self, model: FakeModel, progress: Callable[[], float], start_at: float = 0.1,
                 min_s: float = 2.0, min_served: int = 3, max_s: float = 60.0) -> None:
        super().__init__(name="llm-outage", daemon=True)
        self.model, self.progress = model, progress
        self.start_at, self.min_s, self.min_served, self.max_s = start_at, min_s, min_served, max_s
        self.stop = threading.Event()
        self.started: float | None = None
        self.ended: float | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # noqa: BLE001 - reported by the test, not lost in a thread
            self.error = exc

    def _progress(self) -> float:
        try:
            return self.progress()
        except Exception:  # noqa: BLE001 - Postgres may be restarting under us; ask again
            return 0.0

    def _run(self) -> None:
        model = self.model
        while not self.stop.is_set() and self._progress() < self.start_at:
            self.stop.wait(0.2)
        healthy = (model.verdict, model.confidence, model.narrative)
        for mode in OUTAGE:
            if mode in INVALID and model.verdict != INVALID_VERDICT:
                # Changed while the endpoint is failing anyway: no healthy answer ever carries them.
                model.verdict, model.confidence, model.narrative = INVALID_VERDICT, 0.99, INVALID_NARRATIVE
                time.sleep(0.5)
            model.mode = mode
            if self.started is None:
                self.started = time.time()
            began = time.monotonic()
            while not self.stop.is_set() and time.monotonic() - began < self.max_s and (
                    time.monotonic() - began < self.min_s or model.served[mode] < self.min_served):
                self.stop.wait(0.1)
        model.mode = "500"
        time.sleep(0.5)
        model.verdict, model.confidence, model.narrative = healthy
        time.sleep(0.5)
        self.ended = time.time()
        model.mode = "ok"


def _pg_cluster() -> list[str] | None:
    versions = sorted(os.listdir("/etc/postgresql")) if os.path.isdir("/etc/postgresql") else []
    if not versions or os.geteuid() != 0:
        return None
    return ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main"]


def _scalar(url: str, sql: str):
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(text(sql)).scalar()
    finally:
        engine.dispose()


def _split_cases(url: str, window_s: int) -> list[tuple[str, str, str, str]]:
    """(rule, source, case, other case) for consecutive alerts of one rule and source, within the
    correlation window of each other, that landed in two cases. Entities are each alert's own
    (from its payload), so a case that joined another rule through a strong indicator is no pair; two alerts
    about different machines are no pair either (a weak entity joins only within one machine)."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT case_id, ts, rule_id, payload FROM alerts WHERE kind = 'alert' "
                                     "AND duplicate_of IS NULL AND case_id IS NOT NULL ORDER BY ts, key")).all()
    finally:
        engine.dispose()
    last: dict[tuple[str, str], tuple[object, str, set[str]]] = {}
    split = []
    for case_id, ts, rule_id, payload in rows:
        ts = datetime.fromisoformat(ts) if isinstance(ts, str) else ts  # SQLite hands back text
        entities = json.loads(payload)["entities"]
        # The correlator joins a weak entity only within one machine (when both alerts name one).
        machines = {f"{e['kind']}:{e['value']}" for e in entities
                    if e["kind"] == "host" or (e["kind"] == "ip" and is_internal_ip(e["value"]))}
        for entity in entities:
            if entity.get("role") != "src":
                continue
            pair = (rule_id, f"{entity['kind']}:{entity['value']}")
            before = last.get(pair)
            same_machine = not (machines and before and before[2]) or bool(machines & before[2])
            if before is not None and before[1] != case_id and (ts - before[0]).total_seconds() <= window_s \
                    and same_machine:
                split.append((*pair, before[1], case_id))
            last[pair] = (ts, case_id, machines)
    return split


class Fleet:
    """Worker processes started, killed and replaced by name."""

    def __init__(self, env: dict[str, str], logdir: Path) -> None:
        self.env, self.logdir = env, logdir
        self.procs: dict[str, subprocess.Popen] = {}
        self.n = 0

    def start(self) -> str:
        self.n += 1
        name = f"w{self.n}"
        log = open(self.logdir / f"{name}.log", "w")  # noqa: SIM115
        self.procs[name] = subprocess.Popen([sys.executable, str(HARNESS), name], env=self.env,
                                            stdout=log, stderr=subprocess.STDOUT)
        return name

    def alive(self) -> list[str]:
        return [n for n, p in self.procs.items() if p.poll() is None]

    def kill9(self, name: str) -> None:
        os.kill(self.procs[name].pid, signal.SIGKILL)
        self.procs[name].wait(10)

    def stop(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs.values():
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()


@pytest.mark.skipif(not (postgres_up() and redis_up()), reason="needs Postgres and Redis (.ci/run starts them)")
def test_three_workers_survive_kills_restarts_pauses_and_failing_responder_and_llm(tmp_path):
    cluster = _pg_cluster()
    if cluster is None:
        pytest.skip("restarting Postgres needs root and pg_ctlcluster")
    prefix = f"soctest-faults-{uuid.uuid4().hex[:8]}"
    config = BrokerConfig(prefix=prefix, partitions=12, lease_ms=3000, claim_idle_ms=2000, max_attempts=5)
    broker = Broker(config)
    try:
        _drill(tmp_path, cluster, prefix, broker)
    finally:
        broker.drop()  # this test's keys only, pass or fail


def _drill(tmp_path: Path, cluster: list[str], prefix: str, broker: Broker) -> None:
    with temporary_database(ADMIN_URL) as url, running_fake_model() as (model, llm_url):
        model.slow_s, model.retry_after = 1.5, "1"
        upgrade_schema(url)
        engine = create_engine(url)
        with engine.begin() as conn:  # the "external" firewall's own table (see fault_worker.py)
            conn.execute(text("CREATE TABLE ext_calls (action_id int, target text, worker text)"))
        engine.dispose()
        crash_flag = tmp_path / "crash-after-firewall-call"
        env = {**os.environ, "SOC_AGENT_DATABASE_URL": url, "SOC_AGENT_BROKER_PREFIX": prefix,
               "SOC_AGENT_BROKER_PARTITIONS": "12", "SOC_AGENT_BROKER_LEASE_MS": "3000",
               "SOC_AGENT_BROKER_CLAIM_IDLE_MS": "2000", "SOC_AGENT_BROKER_MAX_ATTEMPTS": "5",
               "FAULT_WORKDIR": str(tmp_path), "FAULT_FAIL_MOD": "7", "FAULT_CRASH_FLAG": str(crash_flag),
               "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
               **LLM_ENV, "SOC_AGENT_LLM_BASE_URL": llm_url}
        fleet = Fleet(env, tmp_path)
        lines = generate(ALERTS)
        lines[100:100] = [b"{broken json", b'{"id": "x"}']  # dead-lettered by the pipeline
        published = broker.publish(lines, "faults")
        done = lambda: _scalar(url, "SELECT count(*) FROM fleet_inbox")  # noqa: E731
        outage = LLMOutage(model, lambda: done() / published.queued)
        try:
            for _ in range(3):
                fleet.start()
            started = time.monotonic()
            outage.start()

            # 1. A worker dies between the firewall call and recording its result.
            crash_flag.touch()
            while crash_flag.exists() and time.monotonic() - started < 120:
                time.sleep(0.2)
            assert not crash_flag.exists(), "no block was attempted in 120 s"
            time.sleep(0.5)
            assert len(fleet.alive()) == 2, "the crash hook killed one worker"
            fleet.start()

            # 2. kill -9 a worker in the middle of its batch.
            while done() < published.queued * 0.35 and time.monotonic() - started < DEADLINE_S:
                time.sleep(0.5)
            fleet.kill9(fleet.alive()[0])
            fleet.start()

            # 3. Postgres restarts under the fleet.
            while done() < published.queued * 0.55 and time.monotonic() - started < DEADLINE_S:
                time.sleep(0.5)
            subprocess.run([*cluster, "restart"], check=True, timeout=60)

            # 4. Redis stops answering for 2 s.
            time.sleep(2)
            subprocess.run(["redis-cli", "CLIENT", "PAUSE", "2000", "ALL"], check=True, timeout=10)

            while time.monotonic() - started < DEADLINE_S:
                if done() >= published.queued and broker.pending() == 0 and not outage.is_alive():
                    break
                time.sleep(1)
        finally:
            outage.stop.set()
            outage.join(10)
            fleet.stop()

        logs = "\n".join(p.read_text()[-2000:] for p in tmp_path.glob("w*.log"))
        processed = _scalar(url, "SELECT count(*) FROM fleet_inbox WHERE outcome = 'processed'")
        dead = _scalar(url, "SELECT count(*) FROM fleet_inbox WHERE outcome <> 'processed'")
        shed = broker.stats()["shed"]
        # Every alert in is accounted for, exactly once.
        assert published.queued + published.shed == ALERTS + 2
        assert processed + dead + shed == ALERTS + 2, logs
        assert dead >= 2
        assert _scalar(url, "SELECT count(*) FROM dead_letters") == dead
        # No case duplicated: alerts of one detection on one source within the correlation window
        # always share a case (the single-process run of the same stream holds the same invariant).
        assert _split_cases(url, Settings().correlation_window_s) == []
        assert _scalar(url, "SELECT count(*) FROM (SELECT alert_key FROM fleet_inbox WHERE alert_key IS NOT NULL "
                            "GROUP BY alert_key, message_id HAVING count(*) > 1) d") == 0
        # No action executed twice: one intent per key, one firewall call per action.
        assert _scalar(url, "SELECT count(*) FROM (SELECT idempotency_key FROM actions "
                            "GROUP BY 1 HAVING count(*) > 1) d") == 0
        assert _scalar(url, "SELECT count(*) FROM (SELECT action_id FROM ext_calls "
                            "GROUP BY 1 HAVING count(*) > 1) d") == 0
        # ... and no block forgotten: every firewall call is a recorded, done action.
        assert _scalar(url, "SELECT count(*) FROM ext_calls c LEFT JOIN actions a ON a.id = c.action_id "
                            "WHERE a.status IS DISTINCT FROM 'done'") == 0
        assert _scalar(url, "SELECT count(*) FROM actions WHERE status = 'intent'") == 0
        assert _scalar(url, "SELECT count(*) FROM actions WHERE status = 'failed'") > 0, "the firewall refused some"
        assert _scalar(url, "SELECT count(*) FROM audit WHERE kind = 'action.settled'") >= 1, logs
        engine = create_engine(url)
        result = verify(engine)
        engine.dispose()
        assert result.ok, result.reason
        _assert_llm_outage_was_survived(url, outage, model)

        # Every paused approval is still resumable from its Postgres checkpoint.
        from soc_agent.pipeline import Pipeline

        pipeline = Pipeline(Settings(workdir=tmp_path / "approver", database_url=url, mode=RunMode.ENFORCE,
                                     autonomy_file=DEMO_AUTONOMY),
                            expire_on_start=False)
        try:
            pending = pipeline.pending_approvals()
            for item in pending:
                snapshot = pipeline.graph.get_state({"configurable": {"thread_id": item.thread_id}})
                assert snapshot.next, f"approval {item.thread_id} has no paused run"
            for item in pending[:3]:
                state = pipeline.resume(item.thread_id, approved=False, by="faults", comment="drill")
                assert not state.get("__interrupt__")
        finally:
            pipeline.close()


def _assert_llm_outage_was_survived(url: str, outage: LLMOutage, model: FakeModel) -> None:
    """The fallback is visible in the audit and the notes, and no invalid answer was acted on."""
    assert outage.error is None, repr(outage.error)
    assert outage.started is not None and outage.ended is not None, "the outage never ran"
    for mode in OUTAGE:
        assert model.served[mode] >= 1, f"no worker met the endpoint's {mode!r} answers: {dict(model.served)}"
    assert model.served["ok"] > 0, "healthy answers were used outside the outage"
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            reasons = [(datetime.fromisoformat(ts).timestamp(), case_id, json.loads(payload)) for ts, case_id, payload
                       in conn.execute(text("SELECT ts, case_id, payload FROM audit WHERE kind = 'node.reason'"))]
            notes = dict(conn.execute(text("SELECT case_id, notes_json FROM notes")).all())
            off_menu = conn.execute(text("SELECT count(*) FROM actions WHERE name = 'reimage_host'")).scalar()
    finally:
        engine.dispose()

    def in_outage(ts: float) -> bool:
        return outage.started + SETTLE_S <= ts <= outage.ended

    during = [p for ts, _, p in reasons if in_outage(ts)]
    assert during, "no case was reasoned during the outage"
    for payload in during:
        # The deterministic assessment stood in, flagged; or an answer the reasoner had cached
        # before the outage (no call: the endpoint was not asked).
        fallback = payload["reasoner"] == FALLBACK and "llm_fallback" in payload["flags"]
        cached = payload["reasoner"] == "llm" and payload["llm"] is None
        assert fallback or cached, f"reasoned during the outage without the visible fallback: {payload}"
    assert sum(p["reasoner"] == FALLBACK for p in during) > len(during) / 2
    # Healthy answers were used outside it (the fake's endpoint really was the reasoner).
    assert any(p["reasoner"] == "llm" and p["llm"] for ts, _, p in reasons if not in_outage(ts))

    # Cases reasoned only during the outage say in their notes that the deterministic reasoner stood in.
    by_case: dict[str, list[float]] = {}
    for ts, case_id, _ in reasons:
        by_case.setdefault(case_id, []).append(ts)
    outage_cases = [c for c, stamps in by_case.items() if all(in_outage(ts) for ts in stamps) and c in notes]
    assert outage_cases, "no case was decided entirely during the outage"
    for case_id in outage_cases:
        note = json.loads(notes[case_id])
        assert note["reasoner"] == FALLBACK, (case_id, note["reasoner"])
        assert "the deterministic assessment stands" in note["reasoning"], note["reasoning"]

    # No invalid answer was acted on: its verdict never became an assessment, its off-menu action
    # was never taken, its narrative never reached a case's notes.
    believed = [p for _, _, p in reasons if p["reasoner"] == "llm" and (
        p["verdict"] == INVALID_VERDICT or p.get("proposed_action") == "reimage_host")]
    assert believed == [], believed[:3]
    assert off_menu == 0
    assert not any(INVALID_NARRATIVE in text_ for text_ in notes.values())
