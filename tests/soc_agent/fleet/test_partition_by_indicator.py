"""Partitioning follows correlation: alerts that share a strong indicator meet on one partition.

Correlation joins alerts from different sources through a shared file hash,
URL, domain, sender or external address, but each partition has its own
correlator: two such alerts routed by their sources to two partitions would
open two cases (and the second host would be handled on its own, the shared
indicator unseen). Real Redis and Postgres, like the other broker tests.
"""

from __future__ import annotations

from fleet_kit import broker_config, pg_url  # noqa: F401  (fixtures)
from sqlalchemy import create_engine, text

from connectors import parse_record
from soc_agent.config import DEMO_AUTONOMY, Settings
from soc_agent.fleet import Broker, Worker, correlation_key, partition_of
from soc_agent.types import RunMode
from tests.conftest import make_alert

HASH = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"


def _settings(tmp_path, url: str) -> Settings:
    return Settings(workdir=tmp_path / "work", database_url=url, mode=RunMode.ENFORCE,
                    autonomy_file=DEMO_AUTONOMY)


def _hosts_on_two_partitions(partitions: int) -> tuple[str, str]:
    first = "wks-a1.corp.example"
    for n in range(2, 100):
        other = f"wks-a{n}.corp.example"
        if partition_of(f"host:{other}", partitions) != partition_of(f"host:{first}", partitions):
            return first, other
    raise AssertionError("no two hosts on different partitions")


def _cases(url: str) -> dict[str, str]:
    engine = create_engine(url)
    with engine.connect() as conn:
        rows = dict(conn.execute(text("SELECT alert_id, case_id FROM alerts WHERE kind = 'alert'")).all())
    engine.dispose()
    return rows


def test_alerts_sharing_a_file_hash_from_two_sources_meet_on_one_partition_and_one_case(
        tmp_path, pg_url, broker_config):
    broker = Broker(broker_config)
    host_a, host_b = _hosts_on_two_partitions(broker_config.partitions)
    lines = [
        make_alert("malware_detected", [("host", host_a, "src"), ("file_hash", HASH, "file")],
                   alert_id="m-a", minutes_ago=6),
        make_alert("malware_detected", [("host", host_b, "src"), ("file_hash", HASH, "file")],
                   alert_id="m-b", minutes_ago=5),
        # The first host again, another file: a same-rule follow-up of host A, joined through the host.
        make_alert("malware_detected", [("host", host_a, "src"), ("file_hash", "ab" * 32, "file")],
                   alert_id="m-a2", minutes_ago=4),
    ]
    # The source alone would have split them: that is what each alert's own key says.
    alerts = [parse_record(line, "auto", 1 << 20) for line in lines]
    assert partition_of(correlation_key(alerts[0]), broker_config.partitions) != \
        partition_of(correlation_key(alerts[1]), broker_config.partitions)

    published = broker.publish(lines, "test")
    assert published.queued == 3 and len(published.per_partition) == 1, published.per_partition

    Worker(_settings(tmp_path, pg_url), broker_config, worker_id="w", batch=10).run(idle_exit_s=2)
    cases = _cases(pg_url)
    assert set(cases) == {"m-a", "m-b", "m-a2"}
    assert len(set(cases.values())) == 1, cases


def test_routing_looks_up_every_key_an_alert_can_join_through(broker_config):
    broker = Broker(broker_config)
    host_a, host_b = _hosts_on_two_partitions(broker_config.partitions)
    first = parse_record(make_alert("phishing_reported", [("email", "a@evil.example", "sender"),
                                                          ("domain", "evil.example", "sender_domain"),
                                                          ("user", "ann", "recipient")], alert_id="p1"),
                         "auto", 1 << 20)
    home = broker.partition(first)
    # A new sender, the same lure domain: the domain's partition, wherever the sender hashes.
    second = parse_record(make_alert("phishing_reported", [("email", "b@other.example", "sender"),
                                                           ("domain", "evil.example", "sender_domain")],
                                     alert_id="p2"), "auto", 1 << 20)
    assert broker.partition(second) == home
    # Raw events still go by their source (the threshold detectors count per source)...
    event = parse_record(make_alert("auth_failure", [("ip", "203.0.113.77", "src"), ("host", host_b, "dst")],
                                    alert_id="e1", kind="event"), "auto", 1 << 20)
    assert broker.partition(event) == partition_of("ip:203.0.113.77", broker_config.partitions)
    # ...and an alert naming that external source later meets its detector's case there.
    bad = parse_record(make_alert("connection_to_known_bad_ip", [("host", host_a, "src"),
                                                                 ("ip", "203.0.113.77", "dst")], alert_id="k1"),
                       "auto", 1 << 20)
    assert broker.partition(bad) == broker.partition(event)
