"""The broker and workers on real Redis and Postgres: routing, backpressure, poison, handover."""

from __future__ import annotations

import threading

from fleet_kit import broker_config, pg_url  # noqa: F401  (fixtures)
from sqlalchemy import create_engine, text

from bench.stream import generate
from connectors import parse_record
from soc_agent.audit import verify
from soc_agent.config import DEMO_AUTONOMY, Settings
from soc_agent.fleet import Broker, BrokerConfig, Worker, correlation_key, partition_of
from soc_agent.types import RunMode
from tests.conftest import make_alert


def _settings(tmp_path, url: str) -> Settings:
    return Settings(workdir=tmp_path / "work", database_url=url, mode=RunMode.ENFORCE,
                    autonomy_file=DEMO_AUTONOMY)


def _counts(url: str) -> dict:
    engine = create_engine(url)
    with engine.connect() as conn:
        inbox = dict(conn.execute(text("SELECT outcome, count(*) FROM fleet_inbox GROUP BY 1")).all())
        # Two cases for one source entity and one detection would be a duplicated case.
        dupes = conn.execute(text(
            "SELECT e.key, a.rule_id FROM case_entities e JOIN alerts a ON a.case_id = e.case_id "
            "WHERE e.role = 'src' AND a.kind = 'alert' AND a.duplicate_of IS NULL GROUP BY e.key, a.rule_id "
            "HAVING count(DISTINCT e.case_id) > 1")).all()
        twice = conn.execute(text("SELECT idempotency_key FROM actions GROUP BY 1 HAVING count(*) > 1")).all()
    audit = verify(engine)
    engine.dispose()
    return {"inbox": inbox, "dupes": dupes, "twice": twice, "audit": audit}


def test_one_correlation_key_always_lands_on_one_partition():
    line = make_alert("auth_failure", [("ip", "203.0.113.9", "src"), ("user", "root", "target")],
                      alert_id="x", kind="event")
    alert = parse_record(line, "auto", 1 << 20)
    assert correlation_key(alert) == alert.entities[0].key
    assert len({partition_of(correlation_key(alert), 12) for _ in range(5)}) == 1
    assert {partition_of(f"ip:10.0.0.{i}", 12) for i in range(200)} == set(range(12)), "keys spread out"


def test_backpressure_sheds_to_the_dead_letter_stream_with_a_reason(broker_config):
    config = BrokerConfig(**{**broker_config.__dict__, "high_water": 5, "max_wait_s": 0.2, "partitions": 1})
    broker = Broker(config)
    lines = generate(40)
    result = broker.publish(lines, "test", chunk=10)
    assert result.queued + result.shed == 40 and result.shed > 0 and result.waited_s > 0
    stats = broker.stats()
    assert stats["dead_letter_stream"] == result.shed and stats["backlog"] == result.queued
    [(_, fields)] = broker.redis.xrange(broker.dlq, count=1)
    assert fields[b"reason"].startswith(b"backpressure: partition 0 backlog over 5")


def test_a_stream_is_published_in_bounded_memory_and_an_oversize_line_is_dead_lettered(broker_config):
    import io

    broker = Broker(broker_config)
    good = generate(2)
    huge = b'{"id": "big", "x": "' + b"A" * (2 << 20) + b'"}'
    stream = io.BytesIO(good[0] + b"\n" + huge + b"\n" + good[1] + b"\n")
    result = broker.publish(stream, "test", max_line_bytes=64 * 1024)
    assert result.queued == 2 and result.dead_lettered == 1
    [(_, fields)] = broker.redis.xrange(broker.dlq)
    assert fields[b"reason"].startswith(b"oversize: line is 2097") and fields[b"line_no"] == b"2"
    assert len(fields[b"raw"]) <= 64 * 1024, "only the line's first bytes reach Redis"


def test_two_workers_split_the_partitions_and_account_for_every_alert(tmp_path, pg_url, broker_config):
    broker = Broker(broker_config)
    lines = generate(400)
    lines.insert(50, b"{not json")
    published = broker.publish(lines, "test")
    workers = [Worker(_settings(tmp_path / str(i), pg_url), broker_config, worker_id=f"w{i}", batch=50)
               for i in range(2)]
    stats = []
    threads = [threading.Thread(target=lambda w=w: stats.append(w.run(idle_exit_s=3))) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    counts = _counts(pg_url)
    assert sum(counts["inbox"].values()) == published.queued == 401
    assert counts["inbox"].get("dead_lettered") == 1
    assert sum(s.takeovers for s in stats) >= broker_config.partitions
    assert all(s.processed > 0 for s in stats), "both workers did work"
    assert counts["dupes"] == [] and counts["twice"] == []
    assert counts["audit"].ok, counts["audit"].reason
    assert broker.stats()["backlog"] == 0 and broker.pending() == 0


def test_a_poison_message_is_dead_lettered_after_its_attempts(tmp_path, pg_url, broker_config, monkeypatch):
    broker = Broker(broker_config)
    broker.publish([make_alert("port_scan", [("ip", "198.51.100.7", "src")], alert_id="poison")] +
                   generate(30), "test")
    worker = Worker(_settings(tmp_path, pg_url), broker_config, worker_id="w", batch=10)
    real = worker.pipeline.take_alert

    def explode(alert, counted=False):
        if alert.id == "poison":
            raise RuntimeError("a bug this alert triggers")
        return real(alert, counted)

    monkeypatch.setattr(worker.pipeline, "take_alert", explode)
    stats = worker.run(idle_exit_s=3)
    counts = _counts(pg_url)
    assert stats.poison == 1 and counts["inbox"]["poison"] == 1
    assert sum(counts["inbox"].values()) == 31
    [(_, fields)] = broker.redis.xrange(broker.dlq)
    assert fields[b"reason"].startswith(b"poison: failed 3 delivery attempts")
    assert counts["audit"].ok


def test_a_dead_workers_entries_are_claimed_by_the_next_owner(tmp_path, pg_url, broker_config):
    broker = Broker(broker_config)
    broker.publish(generate(60), "test")
    for p in range(broker_config.partitions):
        broker.ensure_group(p)
    # A worker that read everything and died before processing or acknowledging any of it.
    taken = broker.read(range(broker_config.partitions), "dead-worker", 1000, 100)
    assert len(taken) == 60 and broker.pending() == 60
    stats = Worker(_settings(tmp_path, pg_url), broker_config, worker_id="heir").run(idle_exit_s=4)
    assert stats.claimed == 60 and sum(_counts(pg_url)["inbox"].values()) == 60
    assert broker.pending() == 0
