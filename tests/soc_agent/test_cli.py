"""The ``soc-agent`` command line, driven as a real subprocess on temporary workdirs."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import sqlite3
import subprocess
import sys
from contextlib import closing
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
    """A private copy of the demo workdir, for tests that tamper with it.

    SQLite files are copied through the backup API: a connection another test left to the garbage
    collector may checkpoint and delete a ``-wal`` file in the middle of a plain file copy.
    """
    copy = tmp_path / "work"
    databases = [p for p in demo_workdir.iterdir() if p.suffix in (".db", ".sqlite")]
    shutil.copytree(demo_workdir, copy, ignore=shutil.ignore_patterns("*.db", "*.sqlite", "*-wal", "*-shm"))
    for source in databases:
        with closing(sqlite3.connect(source)) as src, closing(sqlite3.connect(copy / source.name)) as dst:
            src.backup(dst)
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


def _run_printed(command: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run a command line the demo printed (``soc-agent ...``) as this checkout's CLI."""
    words = shlex.split(command)
    assert words[0] == "soc-agent", command
    proc = subprocess.run([sys.executable, "-m", "soc_agent.cli", *words[1:]], capture_output=True, cwd=REPO,
                          env=_env(), timeout=timeout, text=True, check=False)
    assert proc.returncode == 0, (command, proc.stderr)
    return proc


def test_demo_json_names_every_guard_outcome_and_what_waits_for_a_person(demo_run):
    workdir, stdout = demo_run
    summary = json.loads(stdout)
    assert list(summary["decisions"]) == ["allow", "needs_approval", "deny"]
    assert all(summary["decisions"][outcome] >= 1 for outcome in summary["decisions"]), summary["decisions"]
    with _db(workdir) as db:
        pending = [row[0] for row in db.execute("SELECT id FROM approvals WHERE status = 'pending' ORDER BY id")]
        denied = [row[0] for row in db.execute("SELECT id FROM cases WHERE decision = 'deny' ORDER BY id")]
        contained = dict(db.execute("SELECT name, COUNT(*) FROM actions WHERE status = 'done' AND tier IN "
                                    "('contain_soft', 'contain_hard', 'destructive') GROUP BY name"))
        closed = db.execute("SELECT COUNT(*) FROM actions WHERE status = 'done' AND name = 'close_case'").fetchone()
    assert summary["awaiting_approval"] == len(pending) > 0
    assert summary["denied_cases"] == denied and len(denied) >= 1
    assert summary["contained"] == contained and summary["contained"]["block_ip"] >= 1
    assert summary["closed_without_a_person"] == closed[0]
    assert summary["web"]["url"] == "http://127.0.0.1:8080/ui" and summary["web"]["tokens_file"] is None

    # Every printed command is real and works on the printed workdir.
    commands = summary["commands"]
    assert set(commands) == {"approvals", "denied", "actions", "blocks", "cases", "closed", "notes", "serve"}
    assert all(f"--workdir {workdir}" in command for command in commands.values())
    listed = _run_printed(commands["approvals"]).stdout
    assert all(re.search(rf"│\s*{item}\s*│", listed) for item in pending), listed
    shown = _run_printed(commands["denied"]).stdout
    assert denied[0] in shown and "never block" in shown and "private address" in shown
    assert "block_ip" in _run_printed(commands["actions"]).stdout
    for name in ("blocks", "closed", "notes"):
        _run_printed(commands[name])


def test_demo_text_ends_with_the_next_steps_and_names_each_outcome_even_at_zero(tmp_path):
    workdir = tmp_path / "work"
    first = cli("demo", workdir=workdir, timeout=300)
    assert first.returncode == 0, first.stderr
    counts = {outcome: int(n) for outcome, n in re.findall(r"decisions: (\w+)\s*│\s*(\d+)", first.stdout)}
    assert list(counts) == ["allow", "needs_approval", "deny"] and counts["deny"] >= 1, first.stdout
    assert (f"guard outcomes this run: allow {counts['allow']}, needs_approval {counts['needs_approval']}, "
            f"deny {counts['deny']}") in first.stdout
    waiting = re.search(r"(\d+) actions? awaits? approval\n\s*→ (soc-agent approvals list --workdir \S+)\n",
                        first.stdout)
    assert waiting, first.stdout
    listed = _run_printed(waiting.group(2)).stdout
    assert len(re.findall(r"needs_approval:", listed)) >= int(waiting.group(1)) > 0
    denied = re.search(r"(\d+) cases? whose planned action the guard denied.*\n\s*→ (soc-agent cases show \S+ "
                       r"--workdir \S+)\n", first.stdout)
    assert denied and int(denied.group(1)) == counts["deny"], first.stdout
    assert "never block" in _run_printed(denied.group(2)).stdout
    assert re.search(r"contained without a person: block_ip \d+", first.stdout)
    assert f"case notes: {workdir / 'notes'}" in first.stdout
    assert re.search(r"web page: http://127\.0\.0\.1:8080/ui .*sign in at http://127\.0\.0\.1:8080/ui/login .*"
                     r"SOC_AGENT_TOKENS_FILE.*\n\s*→ soc-agent serve --workdir ", first.stdout)

    # The same demo again: nothing decided this time, and each outcome is still named (0); the store is as it was,
    # so the same items still wait for a person.
    again = cli("demo", workdir=workdir, timeout=300)
    assert again.returncode == 0, again.stderr
    assert re.findall(r"decisions: (\w+)\s*│\s*(\d+)", again.stdout) == [
        ("allow", "0"), ("needs_approval", "0"), ("deny", "0")]
    assert "guard outcomes this run: allow 0, needs_approval 0, deny 0" in again.stdout
    assert f"{waiting.group(1)} action" in again.stdout and "already holds the demo" in again.stdout


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
    assert missing.returncode == 2
    assert "no case 'nope'" in missing.stderr


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


@pytest.mark.parametrize("file, text, line, fragment", [
    ("policy.yml", "mode: enforce\nkill_switch: false\ntiers:\n  contain_soft: {min_confidence: high}\n", 4,
     "tiers.contain_soft.min_confidence"),
    ("brute_force.yml", None, 2, "duplicate key 'name'"),
], ids=["policy", "playbook"])
def test_a_broken_configuration_file_ends_the_command_at_its_line(file, text, line, fragment, small_file, tmp_path):
    playbooks = shutil.copytree(REPO / "playbooks", tmp_path / "playbooks")
    path = playbooks / file
    if text is None:  # the shipped file with its name given twice, the second time on `line`
        original = path.read_text().splitlines(keepends=True)
        first = next(i for i, row in enumerate(original) if row.startswith("name:"))
        text = "".join(original[first:first + 1] * 2 + original[:first] + original[first + 1:])
    path.write_text(text)
    proc = cli("triage", str(small_file), workdir=tmp_path / "work",
               env={"SOC_AGENT_PLAYBOOKS_DIR": str(playbooks)})
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr
    # Whatever the command said before it read the file, it ends with the problem, at its line.
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"{path}:{line}: "), proc.stderr
    assert fragment in last


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
                                  ["approvals", "show", "1"], ["actions", "list"], ["blocks", "list"],
                                  ["dead-letters", "list"], ["dead-letters", "show", "1"],
                                  ["dead-letters", "retry", "1"]],
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


# ---- lists that answer questions ---------------------------------------------------------------------------


def _json_list(*args: str, workdir: Path, env: dict[str, str] | None = None) -> list[dict]:
    """A listing's ``--json``: exactly one JSON array on stdout."""
    proc = cli(*args, "--json", workdir=workdir, env=env)
    assert proc.returncode == 0, proc.stderr
    assert len([line for line in proc.stdout.splitlines() if line.strip()]) == 1, proc.stdout
    data = json.loads(proc.stdout)
    assert isinstance(data, list)
    return data


def _store_ids(workdir: Path, where: str, params: tuple = ()) -> set[str]:
    with _db(workdir) as db:
        return {r[0] for r in db.execute(f"SELECT id FROM cases WHERE {where}", params)}


def test_cases_list_json_is_every_case_as_a_full_record(demo_workdir):
    records = _json_list("cases", "list", workdir=demo_workdir)
    assert {r["id"] for r in records} == _store_ids(demo_workdir, "1")
    for r in records:
        assert {"title", "status", "severity", "verdict", "confidence", "opened_at", "updated_at"} <= set(r)
        assert isinstance(r["reasons"], list) and isinstance(r["entities"], list)
    assert any(r["entities"] for r in records)


def _most_common(workdir: Path, column: str, table: str = "cases") -> str:
    with _db(workdir) as db:
        return db.execute(f"SELECT {column} FROM {table} WHERE {column} IS NOT NULL GROUP BY {column} "
                          f"ORDER BY COUNT(*) DESC LIMIT 1").fetchone()[0]


@pytest.mark.parametrize("option", ["status", "verdict", "class", "severity", "entity", "since"])
def test_each_cases_list_filter_lists_exactly_the_matching_cases(option, demo_workdir):
    workdir = demo_workdir
    if option == "status":
        value = _most_common(workdir, "status")
        expected = _store_ids(workdir, "status = ?", (value,))
    elif option == "verdict":
        value = _most_common(workdir, "verdict")
        expected = _store_ids(workdir, "verdict = ?", (value,))
    elif option == "class":
        value = _most_common(workdir, "incident_class")
        expected = _store_ids(workdir, "incident_class = ?", (value,))
    elif option == "severity":  # a minimum: high lists high and critical
        value = "high"
        expected = _store_ids(workdir, "severity IN ('high', 'critical')")
    elif option == "entity":  # in more than one case, matched whatever its case
        with _db(workdir) as db:
            value = db.execute("SELECT value FROM case_entities WHERE value GLOB '*[a-z]*' GROUP BY value "
                               "HAVING COUNT(DISTINCT case_id) > 1 ORDER BY value LIMIT 1").fetchone()[0]
        expected = _store_ids(workdir, "id IN (SELECT case_id FROM case_entities WHERE value = ?)", (value,))
        value = value.upper()
    else:  # the median update time, as an ISO time
        with _db(workdir) as db:
            times = sorted(r[0] for r in db.execute("SELECT updated_at FROM cases"))
        middle = times[len(times) // 2]
        value = middle.replace(" ", "T") + "Z"
        expected = _store_ids(workdir, "updated_at >= ?", (middle,))
    everything = _store_ids(workdir, "1")
    assert expected and expected < everything, "the filter must split the demo's cases to mean anything"
    listed = _json_list("cases", "list", f"--{option}", value, workdir=workdir)
    assert {r["id"] for r in listed} == expected


def test_cases_list_since_takes_an_age_or_a_time_in_any_offset(demo_workdir):
    from datetime import UTC, datetime, timedelta, timezone

    assert {r["id"] for r in _json_list("cases", "list", "--since", "1d", workdir=demo_workdir)} \
        == _store_ids(demo_workdir, "1"), "the demo ran minutes ago"
    assert _json_list("cases", "list", "--since", "2999-01-01T00:00:00Z", workdir=demo_workdir) == []
    with _db(demo_workdir) as db:
        (latest,) = db.execute("SELECT MAX(updated_at) FROM cases").fetchone()
    # The newest case's update time, written as the same instant two hours east of UTC.
    east = datetime.fromisoformat(latest).replace(tzinfo=UTC).astimezone(timezone(timedelta(hours=2)))
    listed = _json_list("cases", "list", "--since", east.isoformat(), workdir=demo_workdir)
    assert {r["id"] for r in listed} == _store_ids(demo_workdir, "updated_at >= ?", (latest,))


@pytest.mark.parametrize("sort, field", [("updated", "updated_at"), ("opened", "opened_at"),
                                         ("severity", "severity"), ("confidence", "confidence"),
                                         ("alerts", "alert_count")])
def test_cases_list_sorts_by_each_key_both_ways(sort, field, demo_workdir):
    rank = ["informational", "low", "medium", "high", "critical"]

    def key(record: dict):
        value = record[field]
        return rank.index(value) if field == "severity" else value

    newest = _json_list("cases", "list", "--sort", sort, workdir=demo_workdir)
    oldest = _json_list("cases", "list", "--sort", sort, "--asc", workdir=demo_workdir)
    for records, reverse in ((newest, True), (oldest, False)):
        keyed = [key(r) for r in records if r[field] is not None]
        assert keyed == sorted(keyed, reverse=reverse)
        assert len(set(keyed)) > 1, "the demo's cases differ on this key"
        assert all(r[field] is None for r in records[len(keyed):]), "cases without the value come last"
    top = _json_list("cases", "list", "--sort", sort, "--limit", "3", workdir=demo_workdir)
    assert [r["id"] for r in top] == [r["id"] for r in newest[:3]]


def test_cases_list_at_80_columns_prints_every_case_id_whole(demo_workdir):
    proc = cli("cases", "list", workdir=demo_workdir, env={"COLUMNS": "80"})
    assert proc.returncode == 0, proc.stderr
    assert max(len(line) for line in proc.stdout.splitlines()) <= 80
    assert "…" not in proc.stdout
    shown = set(re.findall(r"\bcase-[0-9a-f]+\b", proc.stdout))
    assert shown == _store_ids(demo_workdir, "1")


@pytest.mark.parametrize("args, names", [
    (["cases", "list", "--status", "bogus"], ["bogus", "open", "pending_approval", "contained", "closed"]),
    (["cases", "list", "--verdict", "maybe"], ["maybe", "true_positive", "undetermined"]),
    (["cases", "list", "--severity", "huge"], ["huge", "informational", "critical"]),
    (["cases", "list", "--sort", "colour"], ["colour", "updated", "confidence", "alerts"]),
    (["cases", "list", "--since", "yesterday"], ["yesterday", "ISO 8601", "7d"]),
    (["cases", "list", "--limit", "0"], ["--limit"]),
    (["dead-letters", "list", "--since", "soon"], ["soon", "12h"]),
    (["dead-letters", "retry"], ["ID", "--all"]),
    (["dead-letters", "retry", "1", "--format", "bogus"], ["bogus", "auto", "native"]),
], ids=["status", "verdict", "severity", "sort", "since", "limit", "dl-since", "dl-no-id", "dl-format"])
def test_a_bad_listing_option_is_a_one_line_usage_error(args, names, demo_workdir):
    _usage_error(cli(*args, workdir=demo_workdir), *names)


def test_the_status_choices_are_the_case_statuses():
    from soc_agent.cli import CASE_STATUSES
    from soc_agent.store import CaseRow

    assert " | ".join(CASE_STATUSES) == CaseRow.model_fields["status"].description


@pytest.mark.parametrize("args, id_field, table", [
    (["approvals", "list"], "case_id", "SELECT case_id FROM approvals WHERE status = 'pending'"),
    (["actions", "list"], "case_id", "SELECT case_id FROM actions"),
    (["blocks", "list", "--all"], "target", "SELECT target FROM containments"),
], ids=["approvals", "actions", "blocks"])
def test_every_listing_has_json_with_full_ids_and_full_ids_at_80_columns(args, id_field, table, demo_workdir):
    with _db(demo_workdir) as db:
        expected = sorted(r[0] for r in db.execute(table))
    assert expected, "the demo fills this table"
    records = _json_list(*args, workdir=demo_workdir)
    assert sorted(r[id_field] for r in records) == expected
    narrow = cli(*args, workdir=demo_workdir, env={"COLUMNS": "80"})
    assert narrow.returncode == 0, narrow.stderr
    for value in set(expected):
        assert value in narrow.stdout, f"{value} is printed whole at 80 columns"


# ---- dead letters ------------------------------------------------------------------------------------------

# A terminal escape sequence (OSC title, clear screen) and a bidi override in a line that is not an alert.
HOSTILE_LINE = b"evil \x1b]0;pwned\x07\x1b[2J \xe2\x80\xae text"
GENERIC_MAPPING = "id: evt\nrule_id: signature\ntimestamp: when\nentities:\n  - {kind: ip, role: src, path: src}\n"


@pytest.fixture
def dead_lettered(tmp_path: Path) -> Path:
    """A workdir whose triage dead-lettered: a future time, an unknown format, a hostile line, bad UTF-8."""
    from datetime import UTC, datetime, timedelta

    now = datetime.now(UTC)
    future = json.loads(GOOD[1]) | {"id": "dl-future", "timestamp": (now + timedelta(hours=2)).isoformat()}
    unknown = {"evt": "dl-unknown", "signature": "odd_thing", "when": (now - timedelta(minutes=3)).isoformat(),
               "src": "198.51.100.7"}
    lines = [GOOD[0], json.dumps(future).encode(), json.dumps(unknown).encode(), HOSTILE_LINE,
             b'\xff\xfe{"id": 1}']
    proc = cli("triage", str(_write(tmp_path / "in.jsonl", lines)), "--json", workdir=tmp_path / "work")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["dead_lettered"] == 4
    # The reasons in the summary are whole: grouped by kind (values elided), each kind's first reason in full.
    assert summary["dead_letter_reasons"]["timestamp … is in the future"] == 1
    example = summary["dead_letter_examples"]["timestamp … is in the future"]
    assert example == f"timestamp {future['timestamp']} is in the future"
    return tmp_path / "work"


def _dead(workdir: Path) -> dict[str, tuple]:
    with _db(workdir) as db:
        rows = db.execute("SELECT id, reason, retried_at, retry_result, raw FROM dead_letters ORDER BY id").fetchall()
    return {"future": rows[0], "unknown": rows[1], "hostile": rows[2], "binary": rows[3]}


def _alerts_with_id(workdir: Path, alert_id: str) -> int:
    with _db(workdir) as db:
        return db.execute("SELECT COUNT(*) FROM alerts WHERE alert_id = ?", [alert_id]).fetchone()[0]


def test_dead_letters_list_json_has_every_row_with_its_whole_reason(dead_lettered):
    records = _json_list("dead-letters", "list", workdir=dead_lettered)
    rows = _dead(dead_lettered)
    assert [(r["id"], r["reason"]) for r in records] == [(row[0], row[1]) for row in rows.values()]
    assert records[0]["reason"].startswith("timestamp 20") and records[0]["reason"].endswith(" is in the future")
    assert all(r["retryable"] for r in records[:3]) and not records[3]["retryable"]
    assert _json_list("dead-letters", "list", "--source", "elsewhere", workdir=dead_lettered) == []
    assert len(_json_list("dead-letters", "list", "--since", "1h", workdir=dead_lettered)) == 4


def test_dead_letters_list_and_show_print_a_hostile_line_escaped(dead_lettered):
    _shown(cli("dead-letters", "list", workdir=dead_lettered, env={"COLUMNS": "80"}))
    hostile = _dead(dead_lettered)["hostile"][0]
    shown = _shown(cli("dead-letters", "show", str(hostile), workdir=dead_lettered))
    assert r"evil \x1b]0;pwned\x07\x1b[2J \u202e text" in shown
    assert "65 76 69 6c 20 1b 5d 30" in shown, "and as hex"
    binary = _shown(cli("dead-letters", "show", str(_dead(dead_lettered)["binary"][0]), workdir=dead_lettered))
    assert "not valid UTF-8" in binary and "ef bf bd ef bf bd 7b" in binary
    missing = cli("dead-letters", "show", "999", workdir=dead_lettered)
    assert missing.returncode == 1 and "no dead letter 999" in missing.stderr


def test_a_retried_line_is_processed_once_after_the_setting_changes(dead_lettered):
    workdir = dead_lettered
    row_id = str(_dead(workdir)["future"][0])
    # Under the same settings the line fails again: the new reason is kept and the row stays retryable.
    again = cli("dead-letters", "retry", row_id, workdir=workdir)
    assert again.returncode == 1 and "failed" in again.stdout and "in the future" in again.stdout, again.stdout
    _, reason, retried_at, retry_result, _ = _dead(workdir)["future"]
    assert retried_at is None and "in the future" in reason and "failed again" in retry_result
    assert _alerts_with_id(workdir, "dl-future") == 0

    skew = {"SOC_AGENT_MAX_CLOCK_SKEW_S": str(3 * 3600)}
    done = cli("dead-letters", "retry", row_id, "--by", "ana", workdir=workdir, env=skew)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"dead letter {row_id}: processed as alert dl-future in case case-" in done.stdout
    _, _, retried_at, retry_result, _ = _dead(workdir)["future"]
    assert retried_at is not None and "native:dl-future" in retry_result and "by ana" in retry_result
    assert _alerts_with_id(workdir, "dl-future") == 1

    twice = cli("dead-letters", "retry", row_id, workdir=workdir, env=skew)
    assert twice.returncode == 1 and "already retried" in twice.stderr, twice.stderr
    assert _alerts_with_id(workdir, "dl-future") == 1

    # Were the mark lost, the alert is still a re-send to the store's key dedupe: not taken in twice.
    with _db(workdir) as db:
        db.execute("UPDATE dead_letters SET retried_at = NULL WHERE id = ?", [int(row_id)])
    replayed = cli("dead-letters", "retry", row_id, "--json", workdir=workdir, env=skew)
    assert json.loads(replayed.stdout)[0]["result"] == "duplicate"
    assert _alerts_with_id(workdir, "dl-future") == 1
    verify = cli("audit", "verify", workdir=workdir)
    assert verify.returncode == 0 and "intact" in verify.stdout
    with _db(workdir) as db:
        audited = [json.loads(p) for (p,) in db.execute("SELECT payload FROM audit WHERE kind = 'dead_letter.retry'")]
    assert len(audited) == 3 and audited[0]["result"] == "failed" and audited[2]["result"] == "duplicate"
    assert audited[1]["by"] == "ana" and audited[1]["alert"] == "native:dl-future"


def test_retry_all_after_a_mapping_change_takes_in_the_unknown_format_once(dead_lettered, tmp_path):
    workdir = dead_lettered
    mapping = tmp_path / "mapping.yml"
    mapping.write_text(GENERIC_MAPPING)
    env = {"SOC_AGENT_GENERIC_MAPPING": str(mapping)}
    first = cli("dead-letters", "retry", "--all", "--json", workdir=workdir, env=env)
    outcomes = {o["id"]: o for o in json.loads(first.stdout)}
    rows = _dead(workdir)
    assert outcomes[rows["unknown"][0]]["status"] == "processed"
    assert outcomes[rows["hostile"][0]]["status"] == "failed", "still not an alert"
    assert outcomes[rows["future"][0]]["status"] == "failed"
    binary = outcomes[rows["binary"][0]]
    assert binary["status"] == "skipped" and "not valid UTF-8" in binary["reason"], "replaced bytes are not re-run"
    assert first.returncode == 1, "some failed again"
    assert _alerts_with_id(workdir, "dl-unknown") == 1
    second = cli("dead-letters", "retry", "--all", "--json", workdir=workdir, env=env)
    assert rows["unknown"][0] not in {o["id"] for o in json.loads(second.stdout)}, "--all passes over what was done"
    assert _alerts_with_id(workdir, "dl-unknown") == 1


# ---- case work: close, reopen, comment, assign; the audit trail in words ------------------------------------


def _pending_case(workdir: Path) -> str:
    with _db(workdir) as db:
        return db.execute("SELECT id FROM cases WHERE status = 'pending_approval' ORDER BY id LIMIT 1").fetchone()[0]


def _tokens(tmp_path: Path) -> dict[str, str]:
    from soc_agent.runners.auth import hash_token

    path = tmp_path / "tokens.yml"
    path.write_text("tokens:\n"
                    f"  - {{name: bo.analyst, role: analyst, sha256: {hash_token('tok-analyst')}}}\n"
                    f"  - {{name: vic.viewer, role: viewer, sha256: {hash_token('tok-viewer')}}}\n")
    return {"SOC_AGENT_TOKENS_FILE": str(path)}


def test_case_work_from_the_cli_is_shown_with_who_and_when_and_learned(demo_copy):
    workdir = demo_copy
    case_id = _pending_case(workdir)
    with _db(workdir) as db:
        alerts = db.execute("SELECT COUNT(DISTINCT alert_id) FROM alerts WHERE case_id = ? AND duplicate_of IS NULL",
                            [case_id]).fetchone()[0]
    assert cli("cases", "comment", case_id, "owner says: \x1b[2Jexpected [bold]x[/bold]", "--by", "ana",
               workdir=workdir).returncode == 0
    assigned = cli("cases", "assign", case_id, "bo.analyst", "--by", "ana", workdir=workdir)
    assert assigned.returncode == 0 and "assigned to bo.analyst by ana" in assigned.stdout
    closed = cli("cases", "close", case_id, "--as", "false_positive", "--reason", "owner confirmed", "--by", "ana",
                 workdir=workdir)
    assert closed.returncode == 0, closed.stderr
    assert f"case {case_id}: closed as false_positive by ana" in closed.stdout

    shown = cli("cases", "show", case_id, workdir=workdir)
    assert shown.returncode == 0, shown.stderr
    head = shown.stdout.splitlines()
    assert head[0].startswith(f"case {case_id}: closed; disposition false_positive; assignee bo.analyst")
    history = [line.strip() for line in head[2:6]]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC ana \(analyst\) commented: owner says: "
                        r"\\x1b\[2Jexpected \[bold\]x\[/bold\]", history[0]), history[0]
    assert history[1].endswith("ana (analyst) assigned the case to bo.analyst")
    # Closing as a false positive withdrew the case's waiting action first (a rejection by the closer).
    assert history[2].endswith("ana (analyst, via queue) commented: reject: case closed as false_positive: "
                               "owner confirmed")
    assert history[3].endswith("ana (analyst) closed the case as false_positive: owner confirmed")
    assert not RAW.search(shown.stdout)

    learned = cli("learn", workdir=workdir)
    assert learned.returncode == 0, learned.stderr
    assert f"learned {alerts} disposition(s)" in learned.stdout, learned.stdout

    reopened = cli("cases", "reopen", case_id, "--reason", "user denies it", "--by", "ana", workdir=workdir)
    assert reopened.returncode == 0 and "now open (false_positive withdrawn)" in reopened.stdout
    with _db(workdir) as db:
        assert db.execute("SELECT status, label FROM cases WHERE id = ?", [case_id]).fetchone() == \
            ("open", None)  # its waiting action was withdrawn by the close


@pytest.mark.parametrize("args, names", [
    (["cases", "close", "case-nope", "--as", "false_positive", "--reason", "x"], ["404", "no case 'case-nope'"]),
    (["cases", "close", "{case}", "--as", "benign", "--reason", "x"],
     ["benign", "true_positive", "benign_positive", "false_positive"]),
    (["cases", "close", "{case}", "--as", "false_positive", "--reason", "x", "--role", "viewer"],
     ["403", "viewer may not close"]),
    (["cases", "comment", "{case}", "hi", "--role", "viewer"], ["403", "viewer may not comment"]),
    (["cases", "assign", "{case}", "bo", "--role", "viewer"], ["403", "viewer may not assign"]),
    (["cases", "reopen", "{case}"], ["409", "not closed"]),
    (["cases", "comment", "{case}", "x" * 4097], ["422", "longer than 4096"]),
], ids=["unknown-case", "bad-disposition", "viewer-close", "viewer-comment", "viewer-assign", "reopen-open",
        "long-comment"])
def test_refused_case_work_is_a_one_line_error_and_changes_nothing(args, names, demo_copy):
    workdir = demo_copy
    case_id = _pending_case(workdir)
    with _db(workdir) as db:
        before = db.execute("SELECT status, label, assignee FROM cases WHERE id = ?", [case_id]).fetchone()
    _usage_error(cli(*[a.format(case=case_id) for a in args], workdir=workdir), *names)
    with _db(workdir) as db:
        assert db.execute("SELECT status, label, assignee FROM cases WHERE id = ?", [case_id]).fetchone() == before
        assert db.execute("SELECT COUNT(*) FROM case_events").fetchone()[0] == 0


def test_case_work_takes_identity_and_role_from_a_token(demo_copy, tmp_path):
    workdir = demo_copy
    case_id = _pending_case(workdir)
    env = _tokens(tmp_path)
    refused = cli("cases", "close", case_id, "--as", "true_positive", "--reason", "x", "--token", "tok-viewer",
                  workdir=workdir, env=env)
    _usage_error(refused, "403", "viewer")
    done = cli("cases", "close", case_id, "--as", "true_positive", "--reason", "confirmed", "--by", "mallory",
               "--role", "lead", "--token", "tok-analyst", workdir=workdir, env=env)
    assert done.returncode == 0, done.stderr
    with _db(workdir) as db:
        assert db.execute("SELECT who, role FROM case_events").fetchall() == [("bo.analyst", "analyst")]
        refusal = json.loads(db.execute("SELECT payload FROM audit WHERE kind = 'case.refused'").fetchone()[0])
    assert (refusal["by"], refusal["role"], refusal["status"]) == ("vic.viewer", "viewer", 403)


def test_audit_show_says_the_trail_in_words(demo_copy):
    workdir = demo_copy
    case_id = _pending_case(workdir)
    cli("cases", "close", case_id, "--as", "benign_positive", "--reason", "\u202eexpected\x07 scan", "--by", "ana",
        workdir=workdir)
    shown = cli("audit", "show", "--case", case_id, workdir=workdir)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    with _db(workdir) as db:
        total, for_case = (db.execute("SELECT COUNT(*) FROM audit").fetchone()[0],
                           db.execute("SELECT COUNT(*) FROM audit WHERE case_id = ?", [case_id]).fetchone()[0])
    assert len(lines) == for_case and all(case_id in line for line in lines)
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC ana \(analyst\) closed the case as benign_positive "
                        rf"\(case {case_id}\): \\u202eexpected\\x07 scan", lines[-1]), lines[-1]
    assert any("the guard said" in line for line in lines)
    assert not RAW.search(shown.stdout)

    everything = cli("audit", "show", "--since", "1d", workdir=workdir)
    assert len(everything.stdout.splitlines()) == total
    assert cli("audit", "show", "--since", "2999-01-01T00:00:00Z", workdir=workdir).stdout == ""
    as_json = json.loads(cli("audit", "show", "--case", case_id, "--json", workdir=workdir).stdout)
    assert [r["seq"] for r in as_json] == sorted(r["seq"] for r in as_json) and len(as_json) == for_case
    assert as_json[-1]["kind"] == "case.closed" and as_json[-1]["payload"]["by"] == "ana"
    assert as_json[-1]["text"].endswith("\u202eexpected\x07 scan")  # JSON keeps the text as given
    _usage_error(cli("audit", "show", "--since", "yesterday", workdir=workdir), "yesterday", "7d")


@pytest.mark.parametrize("args", [["audit", "show"], ["cases", "close", "case-1", "--as", "true_positive",
                                                      "--reason", "x"], ["cases", "comment", "case-1", "hi"]],
                         ids=lambda a: "-".join(a[:2]))
def test_case_work_and_audit_show_on_a_missing_workdir_fail_and_create_nothing(args, tmp_path):
    workdir = tmp_path / "typo"
    _usage_error(cli(*args, workdir=workdir), "no soc-agent workdir at", str(workdir))
    assert not workdir.exists()
