"""The edge's fast sshd parser: agrees with connectors/authlog line by line, and counts like the ground truth."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from connectors import MappingError
from connectors.authlog import record_from_text, to_alert
from soc_agent.edge import parse
from soc_agent.edge.firewall import NullFirewall
from soc_agent.edge.guardlite import EdgeGuard, compile_policy
from soc_agent.edge.sensor import EdgeSensor

REPO = Path(__file__).resolve().parents[3]
SAMPLES = sorted((REPO.parent / "shared" / "payloads" / "auth_logs").glob("*.log"))
JOURNAL = REPO / "tests" / "connectors" / "fixtures" / "journald_sshd.ndjson"
GENERATOR = REPO.parent / "shared" / "bench" / "edge" / "gen_sshd_log.py"


def _authlog(record: dict) -> tuple[str, str] | None:
    try:
        alert = to_alert(record)
    except MappingError:
        return None
    src = next(e.value for e in alert.entities if e.role == "src")
    return alert.rule_id, src


def _edge(line: bytes) -> tuple[str, str] | None:
    header = parse.split_header(line)
    if header is None or header["prog"] not in (b"sshd", b"sshd-session"):
        return None
    hit = parse.classify_message(header["msg"])
    if hit is None or hit[0] not in parse.RULE_IDS:
        return None
    return parse.RULE_IDS[hit[0]], hit[1].decode()


def _sample_lines() -> list[bytes]:
    lines = []
    for path in SAMPLES:
        lines += [ln for ln in path.read_bytes().splitlines() if ln and not ln.startswith(b"#")]
    return lines


@pytest.mark.skipif(not SAMPLES, reason="shared sample logs (../shared/payloads/auth_logs) not present")
def test_every_shared_sample_line_classifies_as_authlog_does():
    lines = _sample_lines()
    assert len(lines) > 300
    disagree = []
    for line in lines:
        ours, theirs = _edge(line), _authlog(record_from_text(line.decode("utf-8", "replace")))
        if theirs is not None and theirs[1] != theirs[1].strip():
            continue
        if ours != theirs:
            disagree.append((line, ours, theirs))
    assert not disagree, disagree[:5]


def test_journald_fixture_classifies_as_authlog_does():
    for raw in JOURNAL.read_bytes().splitlines():
        record = json.loads(raw)
        hit = parse.classify_message(record["MESSAGE"].encode())
        ours = (parse.RULE_IDS[hit[0]], hit[1].decode()) if hit and hit[0] in parse.RULE_IDS else None
        assert ours == _authlog(record)


def _sensor(tmp_path: Path) -> EdgeSensor:
    policy = tmp_path / "policy.yml"
    text = (REPO / "playbooks" / "policy.yml").read_text()
    policy.write_text(text.replace("203.0.113.0/24]", '203.0.113.0/24, 198.18.0.0/15, "2001:db8::/32"]'))
    return EdgeSensor(EdgeGuard(compile_policy(policy)), NullFirewall())


@pytest.mark.skipif(not GENERATOR.exists(), reason="shared benchmark generator not present")
def test_generated_log_failures_and_crossings_match_its_ground_truth(tmp_path):
    log, truth = tmp_path / "auth.log", tmp_path / "truth.json"
    subprocess.run([sys.executable, str(GENERATOR), "-n", "40000", "-o", str(log), "--truth", str(truth),
                    "--seed", "7"], check=True, capture_output=True, timeout=120)
    expected = json.loads(truth.read_text())
    sensor = _sensor(tmp_path)
    sensor.feed_chunk(log.read_bytes().rstrip(b"\n"))
    assert sensor.failures == expected["summary"]["failure_events"]
    assert sensor.flagged == {r["ip"] for r in expected["crossing"]}
    # the line-by-line path (other syslog layouts) reaches the same result
    slow = _sensor(tmp_path)
    slow.feed(log.read_bytes().splitlines())
    assert (slow.failures, slow.flagged) == (sensor.failures, sensor.flagged)


def test_failed_lines_after_invalid_user_count_once_and_key_probe_counts(tmp_path):
    sensor = _sensor(tmp_path)
    lines = [
        b"Jun 10 10:00:00 h sshd[10]: Invalid user bob from 203.0.113.5 port 1",
        b"Jun 10 10:00:01 h sshd[10]: Failed password for invalid user bob from 203.0.113.5 port 1 ssh2",
        b"Jun 10 10:00:02 h sshd[10]: Failed password for invalid user bob from 203.0.113.5 port 1 ssh2",
        b"Jun 10 10:00:02 h sshd[10]: Connection closed by invalid user bob 203.0.113.5 port 1 [preauth]",
        b"Jun 10 10:00:03 h sshd[11]: Failed password for root from 203.0.113.5 port 2 ssh2",
        b"Jun 10 10:00:03 h sshd[11]: Received disconnect from 203.0.113.5 port 2:11: Bye [preauth]",
        b"Jun 10 10:00:03 h sshd[11]: Disconnected from authenticating user root 203.0.113.5 port 2 [preauth]",
        b"Jun 10 10:00:04 h sshd[12]: Invalid user eve from 203.0.113.5 port 3",
        b"Jun 10 10:00:05 h sshd[12]: Connection closed by invalid user eve 203.0.113.5 port 3 [preauth]",
        b"Jun 10 10:00:06 h sshd[13]: Connection closed by authenticating user git 203.0.113.5 port 4 [preauth]",
    ]
    sensor.feed_chunk(b"\n".join(lines))
    assert sensor.failures == 5  # 2 passwords, 1 root password, 1 untried invalid user, 1 key probe
    assert sensor.flagged == {"203.0.113.5"}


def test_journald_export_records_are_counted_per_connection(tmp_path):
    sensor = _sensor(tmp_path)
    records = [{"__REALTIME_TIMESTAMP": str(1718000000_000000 + i * 1_000_000), "_HOSTNAME": "h",
                "SYSLOG_IDENTIFIER": "sshd", "_PID": str(100 + i),
                "MESSAGE": f"Failed password for invalid user u{i} from 2001:db8::7 port {i} ssh2"} for i in range(5)]
    records.append({**records[0], "SYSLOG_IDENTIFIER": "sudo"})
    sensor.feed_chunk(b"\n".join(json.dumps(r).encode() for r in records))
    assert sensor.failures == 5 and sensor.flagged == {"2001:db8::7"}
