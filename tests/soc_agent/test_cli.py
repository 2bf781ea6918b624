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

    # A crown jewel: the two-person rule. The first lead's approval waits for a second, different lead.
    first = cli("approvals", "approve", approval_id, "--by", "lead.ana", workdir=workdir)
    assert first.returncode == 0, first.stderr
    assert "awaiting a second approver" in first.stdout, first.stdout
    approved = cli("approvals", "approve", approval_id, "--by", "lead.di", workdir=workdir)
    assert approved.returncode == 0, approved.stderr
    assert f"approval {approval_id}: approved by" in approved.stdout and "lead.di" in approved.stdout
    assert "executed" in approved.stdout, approved.stdout

    still = cli("approvals", "list", workdir=workdir)
    assert result["case_id"] not in still.stdout, "the item left the queue"


# ---- hostile alert text on the terminal ------------------------------------------------------

# Clear screen, an OSC window title, a one-byte CSI (U+009B), a bidi override, and Rich markup and emoji codes.
HOSTILE = "evil\x1b[2J\x1b]0;pwned\x07\u009b31m\u202egnp.exe [/] [bold red]RED[/bold red] :email:"
# What a terminal would act on or hide: C0 (but newline), DEL, C1, bidi controls, separators, zero-width.
RAW = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")


def _hostile(alert: bytes, **fields) -> bytes:
    return json.dumps({**json.loads(alert), **fields}).encode()


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> tuple[Path, dict[str, dict]]:
    """Triage of hostile alerts in the demo environment: one awaits approval, one killed a process."""
    base = tmp_path_factory.mktemp("hostile")
    lines = [
        _hostile(CROWN_JEWEL_MALWARE, title=HOSTILE),
        _hostile(make_alert("suspicious_powershell",
                            [("host", "wks-eng-01.corp.example", "dst"),
                             ("process", "power[/]shell[bold red]:email:\u202e.exe:4242", "process"),
                             ("user", "alice", "actor")],
                            alert_id="hostile-ps", command_line="powershell.exe -nop -w hidden -enc AAAA",
                            parent_process="winword.exe", pid=4242), title=HOSTILE),
        _hostile(make_alert("phishing_reported", [("email", "x:email:[/]@evil.example", "sender"),
                                                  ("user", "bob", "recipient")], alert_id="hostile-mail"),
                 title=HOSTILE),
    ]
    proc = cli("triage", str(_write(base / "hostile.jsonl", lines)), workdir=base / "work", env=EARNED)
    assert proc.returncode == 0, proc.stderr
    results = {r["alert_id"]: r for r in map(json.loads, proc.stdout.splitlines())}
    assert results["dc-1"]["status"] == "pending_approval"
    assert (results["hostile-ps"]["action"], results["hostile-ps"]["decision"]) == ("kill_process", "allow")
    return base / "work", results


def _shown(proc: subprocess.CompletedProcess) -> str:
    """The command's output, asserting it succeeded and printed nothing a terminal would act on."""
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "Traceback" not in output, output
    raw = sorted({f"U+{ord(c):04X}" for c in RAW.findall(output)})
    assert not raw, f"raw control characters reach the terminal: {raw}\n{output}"
    return output


def test_approvals_show_prints_a_hostile_title_visibly_escaped(hostile):
    workdir, _ = hostile
    listed = _shown(cli("approvals", "list", workdir=workdir))
    approval_id = re.search(r"│ (\d+)\s+│ \S+\s+│ isolate_host", listed).group(1)
    shown = _shown(cli("approvals", "show", approval_id, workdir=workdir))
    title = next(line for line in shown.splitlines() if line.startswith(f"approval {approval_id} "))
    assert title.endswith(r"evil\x1b[2J\x1b]0;pwned\x07\x9b31m\u202egnp.exe [/] [bold red]RED[/bold red] :email:")
    assert "\U0001f4e7" not in shown, ":email: is text, not an emoji"


def test_actions_list_shows_a_process_name_with_markup_as_text(hostile):
    listed = _shown(cli("actions", "list", workdir=hostile[0]))
    assert "MarkupError" not in listed
    row = next(line for line in listed.splitlines() if "kill_process" in line)
    assert r"power[/]shell[bold red]:email:\u202e.exe:4242" in row


def test_cases_list_and_show_keep_hostile_text_inert(hostile):
    workdir, results = hostile
    listed = _shown(cli("cases", "list", workdir=workdir))
    for result in results.values():
        assert result["case_id"] in listed
    for result in results.values():
        shown = _shown(cli("cases", "show", result["case_id"], workdir=workdir))
        assert "## Verdict" in shown and r"\x9b31m" in shown, shown
        assert "\U0001f4e7" not in shown


def test_blocks_list_survives_hostile_data(hostile):
    _shown(cli("blocks", "list", "--all", workdir=hostile[0]))


# ---- bad command lines -------------------------------------------------------------------------


def _usage_error(proc: subprocess.CompletedProcess, *names: str) -> str:
    """A usage error: exit 2, one line on stderr that names ``names``, no traceback."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    for name in names:
        assert name in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize("args, names", [
    (["triage", "{alerts}", "--mode", "yolo"], ["yolo", "shadow", "enforce"]),
    (["triage", "{alerts}", "--reasoner", "gpt5"], ["gpt5", "deterministic", "llm"]),
    (["triage", "{alerts}", "--format", "bogus"], ["bogus", "auto", "native", "splunk"]),
    (["triage", "{missing}"], ["not a file", "missing.jsonl"]),
    (["demo", "--reasoner", "gpt5"], ["gpt5", "deterministic", "llm"]),
    (["approvals", "approve", "1", "--role", "boss"], ["boss", "viewer", "analyst", "lead"]),
    (["approvals", "reject", "1", "--role", "boss"], ["boss", "viewer", "analyst", "lead"]),
], ids=["mode", "reasoner", "format", "missing-file", "demo-reasoner", "approve-role", "reject-role"])
def test_a_bad_option_is_a_one_line_usage_error_and_creates_nothing(args, names, small_file, tmp_path):
    workdir = tmp_path / "work"
    args = [a.format(alerts=small_file, missing=tmp_path / "missing.jsonl") for a in args]
    _usage_error(cli(*args, workdir=workdir), *names)
    assert not workdir.exists()


def test_a_bad_role_is_refused_before_the_store_is_touched(triaged):
    workdir, _ = triaged
    _usage_error(cli("approvals", "edit", "1", "--role", "boss", workdir=workdir), "boss", "lead")


@pytest.mark.parametrize("args", [["cases", "list"], ["cases", "show", "case-1"], ["approvals", "list"],
                                  ["approvals", "show", "1"], ["actions", "list"], ["blocks", "list"]],
                         ids=lambda a: "-".join(a))
def test_a_read_only_command_on_a_missing_workdir_fails_and_creates_nothing(args, tmp_path):
    workdir = tmp_path / "typo"
    line = _usage_error(cli(*args, workdir=workdir), "no soc-agent workdir at", str(workdir))
    assert line.startswith("no soc-agent workdir at")
    assert not workdir.exists()


# ---- Ctrl-C ----------------------------------------------------------------------------------------------


def _counts(workdir: Path) -> dict[str, int]:
    db = sqlite3.connect(workdir / "soc-agent.db")
    try:
        return {t: db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("cases", "approvals", "actions")}
    finally:
        db.close()


def test_ctrl_c_finishes_what_it_took_in_says_how_to_resume_and_the_re_run_ends_as_one_run(tmp_path):
    import signal
    import time

    from bench.stream import generate

    stream = tmp_path / "big.jsonl"
    stream.write_bytes(b"\n".join(generate(3000, seed=5)) + b"\n")
    # The block-rate limit counts in wall-clock windows: one long window makes both runs count alike however
    # slow the machine is (the restart restores the blocks decided within it).
    playbooks = tmp_path / "playbooks"
    shutil.copytree(REPO / "playbooks", playbooks)
    policy = playbooks / "policy.yml"
    policy.write_text(re.sub(r"rate_window_s: \d+", "rate_window_s: 3600", policy.read_text()))
    env = {**EARNED, "SOC_AGENT_PLAYBOOKS_DIR": str(playbooks)}
    whole = cli("triage", str(stream), "--json", workdir=tmp_path / "whole", env=env)
    assert whole.returncode == 0, whole.stderr

    workdir = tmp_path / "cut"
    proc = subprocess.Popen([sys.executable, "-m", "soc_agent.cli", "triage", str(stream), "--workdir", str(workdir)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO, env={**_env(), **env})
    for _ in range(300):  # a few hundred results in, then Ctrl-C
        assert proc.stdout.readline(), proc.stderr.read()
    proc.send_signal(signal.SIGINT)
    started = time.monotonic()
    out, errors = proc.communicate(timeout=120)
    errors = errors.decode()
    assert proc.returncode == 130, errors
    assert "Traceback" not in errors and "interrupted:" in errors and "run the same command again" in errors
    assert time.monotonic() - started < 60
    interrupted = _counts(workdir)
    assert interrupted["cases"] < _counts(tmp_path / "whole")["cases"], "it stopped before the end"

    resumed = cli("triage", str(stream), "--json", workdir=workdir, env=env)
    assert resumed.returncode == 0, resumed.stderr
    assert _counts(workdir) == _counts(tmp_path / "whole")


# ---- effects belong to the action that made them -------------------------------------------------------


def _other_case_blocks(workdir: Path, ip: str, ttl: int) -> int:
    """Another case blocks ``ip`` (as an approver's 600 s edit would): returns its action id."""
    from soc_agent.audit import AuditLog
    from soc_agent.responders import ActionExecutor, LocalResponder
    from soc_agent.store import CaseRow, Store
    from soc_agent.types import (
        Entity,
        EntityKind,
        ProposedAction,
        Tier,
        to_db_time,
        utcnow,
    )

    store = Store(f"sqlite:///{workdir / 'soc-agent.db'}")
    try:
        now = to_db_time(utcnow())
        store.session.add(CaseRow(id="case-b", opened_at=now, updated_at=now, status="contained"))
        action = ProposedAction(name="block_ip", tier=Tier.CONTAIN_SOFT, capability="firewall.block",
                                target=Entity(kind=EntityKind.IP, value=ip), params={"ttl_seconds": ttl},
                                rollback="unblock_ip")
        row = ActionExecutor(store, AuditLog(store.engine), [LocalResponder(store)]).execute(
            action, "case-b", run=1, approved_by="bo.analyst")
        store.commit()
        return row.id
    finally:
        store.close()


def test_rolling_back_a_no_op_block_leaves_the_other_cases_block_and_says_it_owned_nothing(tmp_path):
    workdir = tmp_path / "work"
    proc = cli("triage", str(_write(tmp_path / "bf.jsonl", _failures(6))), workdir=workdir, env=EARNED)
    assert proc.returncode == 0, proc.stderr
    with _db(workdir) as db:
        a_id, case_a = db.execute("SELECT id, case_id FROM actions WHERE name = 'block_ip' AND status = 'done'"
                                  ).fetchone()
    b_id = _other_case_blocks(workdir, ATTACKER, 600)  # the address is already blocked for longer: a no-op

    listed = cli("actions", "list", workdir=workdir)
    line = next(row for row in listed.stdout.splitlines() if re.match(rf"\W*{b_id}\b", row))
    assert f"already in effect: action {a_id}" in line and "owns nothing" in line, listed.stdout

    rolled = cli("actions", "rollback", str(b_id), "--by", "alice", workdir=workdir)
    assert rolled.returncode == 0, rolled.stderr
    assert "owned nothing" in rolled.stdout and "nothing lifted" in rolled.stdout
    blocked = _active_block_lines(workdir)
    assert len(blocked) == 1 and str(a_id) in blocked[0], "case A's block stays"
    with _db(workdir) as db:
        assert db.execute("SELECT status FROM cases WHERE id = 'case-b'").fetchone() == ("open",)
        note = db.execute("SELECT markdown FROM notes WHERE case_id = 'case-b'").fetchone()[0]
    assert f"action {b_id}" in note and "rolled back by alice" in note and "owned nothing" in note
    assert (workdir / "notes" / "case-b.md").read_text() == note, "the notes file mirrors the row"

    rolled = cli("actions", "rollback", str(a_id), "--by", "alice", workdir=workdir)
    assert rolled.returncode == 0 and "lifted" in rolled.stdout, rolled.stdout + rolled.stderr
    assert _active_block_lines(workdir) == [], "its own holder's rollback lifts it"
    shown = cli("cases", "show", case_a, workdir=workdir)
    assert "## Rollbacks" in shown.stdout and "rolled back by alice" in shown.stdout
    with _db(workdir) as db:
        assert db.execute("SELECT status FROM cases WHERE id = ?", [case_a]).fetchone() == ("open",)
