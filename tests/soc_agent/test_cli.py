"""The ``soc-agent`` command line, driven as a real subprocess on temporary workdirs."""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import make_alert
from tests.soc_agent.test_graph import CROWN_JEWEL_MALWARE

REPO = Path(__file__).resolve().parents[2]
ATTACKER = "203.0.113.45"  # on the demo intel watchlist


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOC_AGENT_")}
    # Wide, colourless rich output so tables never truncate ids or addresses.
    env.update(COLUMNS="300", NO_COLOR="1", TERM="dumb", PYTHONPATH=str(REPO))
    return env


def cli(*args: str, workdir: Path, stdin: bytes | None = None, timeout: float = 120,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run ``python -m soc_agent.cli ARGS --workdir WORKDIR``; text output; ``env`` adds variables."""
    proc = subprocess.run([sys.executable, "-m", "soc_agent.cli", *args, "--workdir", str(workdir)],
                          input=stdin, capture_output=True, cwd=REPO, env={**_env(), **(env or {})},
                          timeout=timeout)
    proc.stdout = proc.stdout.decode("utf-8", errors="replace")
    proc.stderr = proc.stderr.decode("utf-8", errors="replace")
    return proc


def _failures(n: int, ip: str = ATTACKER, spacing_s: float = 5.0) -> list[bytes]:
    return [make_alert("auth_failure", [("ip", ip, "src"), ("user", "root", "target"),
                                        ("host", "web01.corp.example", "dst")],
                       alert_id=f"ev-{i}", kind="event", severity="low",
                       minutes_ago=(n - i) * spacing_s / 60, service="ssh", outcome="failure")
            for i in range(n)]


def _write(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def _db(workdir: Path) -> sqlite3.Connection:
    return sqlite3.connect(workdir / "soc-agent.db")


# ---- demo and the audit trail ---------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory) -> tuple[Path, str]:
    """One ``demo --json`` run for the module (it takes several seconds): its workdir and stdout."""
    workdir = tmp_path_factory.mktemp("demo") / "work"
    proc = cli("demo", "--json", workdir=workdir, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return workdir, proc.stdout


@pytest.fixture
def demo_workdir(demo_run) -> Path:
    return demo_run[0]


@pytest.fixture
def demo_copy(demo_workdir: Path, tmp_path: Path) -> Path:
    """A private copy of the demo workdir, for tests that tamper with it."""
    copy = tmp_path / "work"
    shutil.copytree(demo_workdir, copy)
    return copy


def test_demo_json_prints_one_summary_that_accounts_for_every_alert(demo_run):
    demo_workdir, stdout = demo_run
    lines = [line for line in stdout.splitlines() if line.strip()]
    assert len(lines) == 1, "--json prints exactly one JSON object on stdout"
    summary = json.loads(lines[0])
    assert summary["alerts_in"] == summary["processed"] + summary["dead_lettered"]
    assert summary["alerts_in"] >= 300
    assert summary["cases"] > 0
    assert (demo_workdir / "soc-agent.db").is_file()


def test_audit_verify_is_intact_after_the_demo(demo_workdir):
    proc = cli("audit", "verify", workdir=demo_workdir)
    assert proc.returncode == 0, proc.stderr
    assert "intact" in proc.stdout


def test_audit_verify_names_an_edited_record(demo_copy):
    with _db(demo_copy) as db:
        assert db.execute("UPDATE audit SET payload = ? WHERE seq = 10", ['{"tampered": true}']).rowcount == 1
    proc = cli("audit", "verify", workdir=demo_copy)
    assert proc.returncode == 1
    output = proc.stdout + proc.stderr
    assert "BROKEN" in output and re.search(r"\brecord 10\b", output), output


def test_audit_verify_catches_a_deleted_middle_record(demo_copy):
    with _db(demo_copy) as db:
        (count,) = db.execute("SELECT COUNT(*) FROM audit").fetchone()
        middle = count // 2
        assert db.execute("DELETE FROM audit WHERE seq = ?", [middle]).rowcount == 1
    proc = cli("audit", "verify", workdir=demo_copy)
    assert proc.returncode == 1
    assert f"record {middle}" in proc.stdout + proc.stderr


def test_rolling_back_a_non_reversible_action_fails_clearly(demo_copy):
    with _db(demo_copy) as db:
        row = db.execute("SELECT id, name FROM actions WHERE rollback IS NULL AND status = 'done' "
                         "ORDER BY id LIMIT 1").fetchone()
    assert row is not None, "the demo executes at least one action without a rollback"
    proc = cli("actions", "rollback", str(row[0]), workdir=demo_copy)
    assert proc.returncode == 1
    assert "cannot roll back" in proc.stderr and "not reversible" in proc.stderr, proc.stderr


# ---- triage ---------------------------------------------------------------------------------


GOOD = [
    make_alert("malware_detected", [("host", "wks-eng-01.corp.example", "dst"),
                                    ("file_hash", "5e0528fc55f3f6083d51611de73f26d17c743571a57e557036f1df1215aac156",
                                     "file")], alert_id="cli-m-1"),
    make_alert("port_scan", [("ip", "10.0.5.20", "src"), ("host", "backup01.corp.example", "dst")],
               alert_id="cli-s-1", severity="medium"),
]
RESULT_KEYS = {"alert_id", "case_id", "verdict", "confidence", "action", "decision", "reasons"}


@pytest.fixture
def small_file(tmp_path: Path) -> Path:
    return _write(tmp_path / "alerts.jsonl", [GOOD[0], b'{"id": "broken", ', GOOD[1]])


def test_triage_json_prints_only_the_summary(small_file, tmp_path):
    proc = cli("triage", str(small_file), "--json", workdir=tmp_path / "work")
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert len(lines) == 1
    summary = json.loads(lines[0])
    assert (summary["alerts_in"], summary["processed"], summary["dead_lettered"]) == (3, 2, 1)
    assert "malformed JSON" in json.dumps(summary["dead_letter_reasons"])


@pytest.fixture(scope="module")
def triaged(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """``triage FILE`` (without --json) once, for the tests that read its output and its store."""
    base = tmp_path_factory.mktemp("triaged")
    source = _write(base / "alerts.jsonl", [GOOD[0], b'{"id": "broken", ', GOOD[1]])
    proc = cli("triage", str(source), workdir=base / "work")
    assert proc.returncode == 0, proc.stderr
    return base / "work", proc


def test_triage_prints_one_json_line_per_processed_alert(triaged):
    _, proc = triaged
    results = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    assert [r["alert_id"] for r in results] == ["cli-m-1", "cli-s-1"]
    for r in results:
        assert RESULT_KEYS <= set(r), r
        assert r["case_id"] and r["verdict"] and r["decision"]
    assert "alerts in 3, processed 2, dead-lettered 1" in proc.stderr


def test_cases_list_and_show(triaged):
    workdir, proc = triaged
    case_id = json.loads(proc.stdout.splitlines()[0])["case_id"]

    listed = cli("cases", "list", workdir=workdir)
    assert listed.returncode == 0, listed.stderr
    assert case_id in listed.stdout

    shown = cli("cases", "show", case_id, workdir=workdir)
    assert shown.returncode == 0, shown.stderr
    assert "## Verdict" in shown.stdout and case_id in shown.stdout

    missing = cli("cases", "show", "nope", workdir=workdir)
    assert missing.returncode == 1
    assert "no notes for case 'nope'" in missing.stderr


# ---- blocks, actions and rollback ------------------------------------------------------------


def _active_block_lines(workdir: Path) -> list[str]:
    proc = cli("blocks", "list", workdir=workdir)
    assert proc.returncode == 0, proc.stderr
    return [line for line in proc.stdout.splitlines() if ATTACKER in line]


# The demo environment's earned autonomy: brute force blocks run on their own there.
EARNED = {"SOC_AGENT_AUTONOMY_FILE": str(REPO / "demo" / "autonomy.yml")}


def test_a_fresh_install_says_it_is_supervised_and_asks_a_person_to_block(tmp_path):
    proc = cli("triage", str(_write(tmp_path / "bf.jsonl", _failures(6))), workdir=tmp_path / "work")
    assert proc.returncode == 0, proc.stderr
    assert "supervised" in proc.stderr
    decided = [json.loads(line) for line in proc.stdout.splitlines() if '"pending_approval"' in line]
    assert [(r["action"], r["decision"]) for r in decided] == [("block_ip", "needs_approval")]
    assert _active_block_lines(tmp_path / "work") == []


def test_brute_force_block_is_listed_and_rolls_back_once(tmp_path):
    workdir = tmp_path / "work"
    proc = cli("triage", str(_write(tmp_path / "bf.jsonl", _failures(6))), workdir=workdir, env=EARNED)
    assert proc.returncode == 0, proc.stderr
    assert "earned per class in" in proc.stderr
    decided = [json.loads(line) for line in proc.stdout.splitlines() if '"decided"' in line]
    assert [(r["action"], r["decision"]) for r in decided] == [("block_ip", "allow")]

    blocked = _active_block_lines(workdir)
    assert len(blocked) == 1 and "blocked_ip" in blocked[0] and "True" in blocked[0]

    actions = cli("actions", "list", workdir=workdir)
    assert actions.returncode == 0, actions.stderr
    rows = [line for line in actions.stdout.splitlines() if "block_ip" in line and ATTACKER in line]
    assert len(rows) == 1, actions.stdout
    action_id = re.search(r"\b(\d+)\b", rows[0]).group(1)
    with _db(workdir) as db:
        assert db.execute("SELECT name, target_value FROM actions WHERE id = ?", [int(action_id)]).fetchone() \
            == ("block_ip", ATTACKER)

    rolled = cli("actions", "rollback", action_id, workdir=workdir)
    assert rolled.returncode == 0, rolled.stderr
    assert f"action {action_id} (block_ip on {ATTACKER}) rolled back" in rolled.stdout
    assert _active_block_lines(workdir) == [], "the block is lifted"

    again = cli("actions", "rollback", action_id, workdir=workdir)
    assert again.returncode == 1
    assert "cannot roll back" in again.stderr and "only executed actions roll back" in again.stderr, again.stderr

    verify = cli("audit", "verify", workdir=workdir)
    assert verify.returncode == 0 and "intact" in verify.stdout, "rollbacks are audited in the same chain"


# ---- approvals ------------------------------------------------------------------------------


def test_triage_from_stdin_then_crown_jewel_approval_is_listed_and_executed(tmp_path):
    workdir = tmp_path / "work"
    stdin = b"\n".join([GOOD[0], b"not json", CROWN_JEWEL_MALWARE]) + b"\n"
    proc = cli("triage", "-", workdir=workdir, stdin=stdin)
    assert proc.returncode == 0, proc.stderr
    results = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    assert [r["alert_id"] for r in results] == ["cli-m-1", "dc-1"]
    assert "alerts in 3, processed 2, dead-lettered 1" in proc.stderr
    result = results[1]
    assert result["status"] == "pending_approval" and result["decision"] == "needs_approval"

    listed = cli("approvals", "list", workdir=workdir)
    assert listed.returncode == 0, listed.stderr
    rows = [line for line in listed.stdout.splitlines() if result["case_id"] in line]
    assert len(rows) == 1 and "crown-jewel" in rows[0], listed.stdout
    approval_id = re.search(r"\b(\d+)\b", rows[0]).group(1)

    approved = cli("approvals", "approve", approval_id, "--by", "lead.ana", workdir=workdir)
    assert approved.returncode == 0, approved.stderr
    assert f"approval {approval_id}: approved by lead.ana" in approved.stdout
    assert "executed" in approved.stdout, approved.stdout

    still = cli("approvals", "list", workdir=workdir)
    assert result["case_id"] not in still.stdout, "the item left the queue"
