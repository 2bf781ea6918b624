"""The ``soc-agent`` command line."""

from __future__ import annotations

import json
import logging
import os
import re
import shlex
import signal
import stat
import sys
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, Optional

import typer
from pydantic import ValidationError
from typer.core import TyperGroup
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from evals.dataset import load_demo_stream
from soc_agent.config import DEMO_AUTONOMY, Settings
from soc_agent.config_file import ConfigError
from soc_agent.edge.guardlite import compile_policy, write_compiled
from soc_agent.pdp.cli import pdp_app, print_pending_calls
from soc_agent.runners.auth import Identity, Role, TokenStore
from soc_agent.terminal import make_console, safe_cell, safe_text
from soc_agent.types import Outcome, Reason, RunMode, Severity, Verdict
from soc_agent.wording import counted

if TYPE_CHECKING:  # annotations only: the store is imported when a command needs it
    from soc_agent.store import Store


class _Commands(TyperGroup):
    """The root command group: a configuration file or setting that cannot be used ends any command with its
    ``file:line: problem`` lines on stderr and exit status 2, never a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            for line in str(exc).splitlines():
                err.print(safe_cell(line), soft_wrap=True)
            raise typer.Exit(2) from None


app = typer.Typer(help="soc-agent: autonomous SOC triage with guarded actions and a verifiable audit trail.",
                  no_args_is_help=True, add_completion=False, cls=_Commands)
cases_app = typer.Typer(help="Inspect and work cases: close, reopen, comment, assign.", no_args_is_help=True)
blocks_app = typer.Typer(help="Inspect TTL'd blocks.", no_args_is_help=True)
actions_app = typer.Typer(help="Inspect and roll back actions.", no_args_is_help=True)
audit_app = typer.Typer(help="The hash-chained audit trail.", no_args_is_help=True)
approvals_app = typer.Typer(help="The analyst approval queue.", no_args_is_help=True)
dead_letters_app = typer.Typer(help="Input that could not be taken in: why, the line itself, and a retry.",
                               no_args_is_help=True)
app.add_typer(cases_app, name="cases")
app.add_typer(blocks_app, name="blocks")
app.add_typer(actions_app, name="actions")
app.add_typer(audit_app, name="audit")
app.add_typer(approvals_app, name="approvals")
app.add_typer(dead_letters_app, name="dead-letters")
app.add_typer(pdp_app, name="pdp")

# Everything printed from alerts or the store goes through soc_agent.terminal (safe_cell, safe_text).
err = make_console(stderr=True)
out = make_console()

WorkdirOpt = typer.Option(Path("./soc-agent-work"), "--workdir", help="store, checkpoints and notes")


REASONERS = ("deterministic", "llm")
ROLES = ("viewer", "analyst", "lead")


def _fail(message: str) -> NoReturn:
    """A usage error: one line on stderr, exit status 2."""
    err.print(safe_cell(message), soft_wrap=True)
    raise typer.Exit(2)


def _choice(option: str, value: Optional[str], choices) -> None:
    """Fail unless ``value`` (when given) is one of ``choices``."""
    if value is not None and value not in choices:
        _fail(f"invalid {option} {value!r}: choose one of {', '.join(choices)}")


def _settings(workdir: Path, mode: Optional[str] = None, reasoner: Optional[str] = None) -> Settings:
    _choice("--mode", mode, [m.value for m in RunMode])
    _choice("--reasoner", reasoner, REASONERS)
    try:
        return Settings.from_env(workdir=workdir, mode=RunMode(mode) if mode else None, reasoner=reasoner)
    except ValidationError as exc:
        _fail("invalid setting: " + "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()))


def _store(db_url: str) -> "Store":
    """The store with every wing's tables registered, so a command on a fresh workdir creates them all."""
    # deferred: the store loads sqlmodel and SQLAlchemy (~0.4 s): for the commands that open it, not for `--help`
    # or the others; each such command imports its row classes and queries the same way
    import soc_agent.store.schema  # noqa: F401
    from soc_agent.store import Store

    return Store(db_url)


def _existing_settings(workdir: Path) -> Settings:
    """Settings for a command that reads an existing store: fail, creating nothing, when there is none."""
    settings = _settings(workdir)
    if settings.database_url is None and not (settings.workdir / "soc-agent.db").is_file():
        _fail(f"no soc-agent workdir at {settings.workdir} (no soc-agent.db there)")
    return settings


def _row(table: Table, *values: object) -> None:
    """Add a table row of untrusted values: escaped, never parsed as markup or emoji."""
    table.add_row(*(safe_cell(value) for value in values))


def _listing(*columns: str, ids: tuple[str, ...] = (), short: tuple[str, ...] = ()) -> Table:
    """A listing's table: ``ids`` columns never wrap, shrink or ellipsize (an id is copied whole from the
    terminal), nor do ``short`` ones (numbers, times); every other column folds rather than cutting its text."""
    table = Table()
    for col in columns:
        if col in ids or col in short:
            table.add_column(col, no_wrap=True, overflow="ignore")
        else:
            table.add_column(col, overflow="fold")
    return table


def _print_json(value: object) -> None:
    """A listing's ``--json``: one JSON document on stdout, no Rich (times ISO 8601)."""
    print(json.dumps(value, default=lambda v: v.isoformat() if hasattr(v, "isoformat") else str(v)))


def _record(row, **parsed_json: bool) -> dict:
    """A store row as a dict; the columns named in ``parsed_json`` hold JSON text and are decoded."""
    data = row.model_dump()
    for key in parsed_json:
        try:
            data[key] = json.loads(data[key])
        except (TypeError, ValueError):
            pass  # kept as the stored text
    return data


_AGE_UNITS = {"d": 86400, "h": 3600, "m": 60}


def _since(value: Optional[str]):
    """``--since``: an ISO 8601 time (naive means UTC) or an age such as 7d, 12h or 30m before now."""
    if value is None:
        return None
    age = re.fullmatch(r"\s*(\d{1,6})\s*([dhm])\s*", value)
    if age:
        return datetime.now(UTC) - timedelta(seconds=int(age.group(1)) * _AGE_UNITS[age.group(2)])
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        _fail(f"invalid --since {value!r}: give an ISO 8601 time (2026-12-01T08:00:00Z) or an age (7d, 12h, 30m)")
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


ReasonerOpt = typer.Option(None, "--reasoner", help="deterministic | llm (default: SOC_AGENT_REASONER or "
                           "deterministic; llm reads SOC_AGENT_LLM_BASE_URL, _MODEL, _API_KEY...)")


def _pipeline(settings: Settings):
    from soc_agent.pipeline import Pipeline  # deferred: the graph (langgraph), only for commands that triage

    return Pipeline(settings)


def _progress() -> Progress:
    return Progress(TextColumn("[bold]triage"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=err, transient=False)


@app.command()
def demo(workdir: Path = WorkdirOpt, as_json: bool = typer.Option(False, "--json", help="summary as JSON"),
         reasoner: Optional[str] = ReasonerOpt) -> None:
    """Run the bundled labelled stream (12 incident classes, noise, duplicates) through the graph; then what
    waits for a person, what was contained, where the notes and web page are."""
    settings = _settings(workdir, reasoner=reasoner)
    if settings.autonomy_file is None:
        settings = settings.model_copy(update={"autonomy_file": DEMO_AUTONOMY})
    lines = load_demo_stream()
    pipeline = _pipeline(settings)
    reasons: dict[Outcome, Counter] = {Outcome.NEEDS_APPROVAL: Counter(), Outcome.DENY: Counter()}
    actions: Counter = Counter()
    with _progress() as progress:
        task = progress.add_task("demo", total=len(lines))
        for result in pipeline.run_lines(lines, "demo"):
            progress.advance(task)
            if result.status in ("decided", "pending_approval") and result.decision:
                actions[(result.action, result.decision)] += 1
                for line in result.reasons:
                    outcome = Reason.parse(line).outcome
                    if outcome in reasons:
                        reasons[outcome][line] += 1
        progress.update(task, completed=len(lines))
    pipeline.store.commit()
    summary = pipeline.summary.as_dict(pipeline.store)
    # Every guard outcome is named, with 0 when the run had none of it.
    summary["decisions"] = {outcome: summary["decisions"].get(outcome, 0) for outcome in _GUARD_OUTCOMES}
    summary["actions"] = {f"{a} ({d})": n for (a, d), n in actions.most_common()}
    # The most common reasons for asking a person, and those for a deny (rarer, so they are not crowded out).
    summary["top_reasons"] = dict(reasons[Outcome.NEEDS_APPROVAL].most_common(6)
                                  + reasons[Outcome.DENY].most_common(3))
    summary["notes_dir"] = str(settings.notes_dir)
    summary["workdir"] = str(settings.workdir)
    summary["autonomy_file"] = str(settings.autonomy_file)
    # A second demo in the same workdir re-sends the same alerts: nothing is done twice, and it says so.
    summary["already_run"] = summary["alerts_in"] > 0 and summary["duplicates"] == summary["alerts_in"]
    summary.update(_demo_next_steps(pipeline.store, settings))
    pipeline.close()
    if as_json:
        print(json.dumps(summary))
        return
    _print_summary(summary)


_GUARD_OUTCOMES = ("allow", "needs_approval", "deny")
"""The guard's outcomes, in the order the demo names them (each one, even at 0)."""
_CONTAINMENT_TIERS = ("contain_soft", "contain_hard", "destructive")


def _command(*words: str) -> str:
    """A soc-agent command line to copy: named as this process was started (``.venv/bin/soc-agent`` stays so),
    each word shell-quoted."""
    program = sys.argv[0] if Path(sys.argv[0]).name == "soc-agent" else "soc-agent"
    return shlex.join([program, *words])


def _demo_next_steps(store, settings: Settings) -> dict:
    """What the workdir now holds for a person: pending approvals, cases whose planned action the guard denied,
    what was contained and closed without a person, and the commands (and web page) that show each."""
    # deferred: the store (sqlmodel, SQLAlchemy), see _store()
    from sqlmodel import select

    from soc_agent.store import ActionRow, ApprovalRow, CaseRow

    with store.reader() as session:
        pending_cases = session.exec(select(ApprovalRow.case_id).where(ApprovalRow.status == "pending")
                                     .order_by(ApprovalRow.id)).all()
        any_case = session.exec(select(CaseRow.id).order_by(CaseRow.id)).first()
        denied = session.exec(select(CaseRow.id).where(CaseRow.decision == "deny").order_by(CaseRow.id)).all()
        done = session.exec(select(ActionRow.name, ActionRow.tier).where(ActionRow.status == "done")).all()
    contained = Counter(name for name, tier in done if tier in _CONTAINMENT_TIERS)
    workdir = str(settings.workdir)
    return {
        "awaiting_approval": len(pending_cases),
        "denied_cases": list(denied),
        "contained": dict(contained.most_common()),
        "closed_without_a_person": sum(1 for name, _ in done if name == "close_case"),
        "commands": {
            "approvals": _command("approvals", "list", "--workdir", workdir),
            "denied": (_command("cases", "show", denied[0], "--workdir", workdir) if denied
                       else _command("cases", "list", "--workdir", workdir)),
            "actions": _command("actions", "list", "--workdir", workdir),
            "blocks": _command("blocks", "list", "--workdir", workdir),
            "cases": _command("cases", "list", "--workdir", workdir),
            "closed": _command("cases", "list", "--status", "closed", "--workdir", workdir),
            # The notes of a case that waits for a person (any case when none waits).
            "notes": _command("cases", "show", (pending_cases[0] if pending_cases else any_case) or "CASE_ID",
                              "--workdir", workdir),
            "serve": _command("serve", "--workdir", workdir),
        },
        # `serve`'s defaults; signing in needs a token whose hash is in $SOC_AGENT_TOKENS_FILE (README).
        "web": {"url": "http://127.0.0.1:8080/ui", "login": "http://127.0.0.1:8080/ui/login",
                "tokens_file": os.environ.get("SOC_AGENT_TOKENS_FILE") or None},
    }


def _print_summary(summary: dict) -> None:
    table = Table(title="soc-agent demo", show_header=True)
    table.add_column("what")
    table.add_column("count", justify="right")
    for key in ("alerts_in", "processed", "dead_lettered", "duplicates", "graph_runs", "cases"):
        _row(table, key, summary[key])
    for verdict, n in sorted(summary["cases_by_verdict"].items()):
        _row(table, f"cases: {verdict}", n)
    for outcome in _GUARD_OUTCOMES:
        _row(table, f"decisions: {outcome}", summary["decisions"].get(outcome, 0))
    out.print(table)
    if summary.get("actions"):
        actions = Table(title="actions (decision)")
        actions.add_column("action")
        actions.add_column("runs", justify="right")
        for name, n in summary["actions"].items():
            _row(actions, name, n)
        out.print(actions)
    if summary.get("top_reasons"):
        reasons = Table(title="top reasons for approval or denial")
        reasons.add_column("reason")
        reasons.add_column("n", justify="right")
        for reason, n in summary["top_reasons"].items():
            _row(reasons, reason, n)
        out.print(reasons)
    out.print(safe_cell(f"autonomy: the demo environment's earned autonomy, {summary['autonomy_file']} (a fresh "
                        f"install has none and runs supervised)"), soft_wrap=True)
    if summary.get("already_run"):
        out.print("this workdir already holds the demo: every alert was received before, so nothing was done "
                  "twice and the store is as it was; give a fresh --workdir to run it again")
    _print_next_steps(summary)


def _print_next_steps(summary: dict) -> None:
    """The end of the demo: what waits for a person and the command that shows each thing."""
    commands, decisions, web = summary["commands"], summary["decisions"], summary["web"]
    denied, contained = summary["denied_cases"], summary["contained"]
    pending = summary["awaiting_approval"]
    closed = summary["closed_without_a_person"]
    contained_text = ", ".join(f"{name} {n}" for name, n in contained.items()) or "nothing"
    sign_in = (f"a token whose sha256 is in {web['tokens_file']}" if web["tokens_file"] else
               "a token from the tokens file named by SOC_AGENT_TOKENS_FILE (not set here: see the README, "
               "First login)")
    steps = [
        (f"{counted(pending, 'action')} {'awaits' if pending == 1 else 'await'} approval", commands["approvals"]),
        (f"{counted(len(denied), 'case')} whose planned action the guard denied: another response is needed",
         commands["denied"]),
        (f"contained without a person: {contained_text}", f"{commands['actions']}   {commands['blocks']}"),
        (f"{counted(closed, 'case')} closed as benign or false positive without a person", commands["closed"]),
        (f"case notes: {summary['notes_dir']}, one markdown file per case", commands["notes"]),
        (f"web page: {web['url']} while this runs; sign in at {web['login']} with {sign_in}", commands["serve"]),
    ]
    out.print(safe_cell("guard outcomes this run: " + ", ".join(
        f"{outcome} {decisions.get(outcome, 0)}" for outcome in _GUARD_OUTCOMES)), soft_wrap=True)
    out.print(safe_cell("next steps (in this workdir):"), soft_wrap=True)
    for what, command in steps:
        out.print(safe_cell(f"  {what}"), soft_wrap=True)
        out.print(safe_cell(f"    → {command}"), soft_wrap=True)


def _stop_on_interrupt() -> threading.Event:
    """Ctrl-C asks the run to stop between two alerts (the one in hand is finished and committed); a second
    Ctrl-C interrupts at once."""
    stop = threading.Event()

    def handle(signum, frame) -> None:
        if stop.is_set():
            signal.signal(signal.SIGINT, signal.default_int_handler)
            raise KeyboardInterrupt
        stop.set()

    signal.signal(signal.SIGINT, handle)
    return stop


def _is_regular_file(stream) -> bool:
    try:
        return stat.S_ISREG(os.fstat(stream.fileno()).st_mode)
    except (OSError, ValueError, AttributeError):
        return False


@app.command()
def triage(
    source: str = typer.Argument(..., help="newline-delimited alerts: a file, or - for stdin"),
    workdir: Path = WorkdirOpt,
    mode: Optional[str] = typer.Option(None, "--mode", help="shadow | enforce (default: the policy's)"),
    fmt: str = typer.Option("auto", "--format", help="auto, or a format name (elastic, splunk, native, ...)"),
    out_file: Optional[Path] = typer.Option(None, "--out", help="write result lines here instead of stdout"),
    as_json: bool = typer.Option(False, "--json", help="print only the summary, as one JSON object"),
    reasoner: Optional[str] = ReasonerOpt,
    to_broker: bool = typer.Option(False, "--to-broker", help="publish to the Redis Streams broker "
                                   "(SOC_AGENT_REDIS_URL) for `soc-agent worker`s instead of triaging here"),
) -> None:
    """Triage alerts; one JSON line per processed alert, then a summary."""
    from connectors import FORMATS  # deferred: the format registry loads every vendor package (httpx)

    settings = _settings(workdir, mode, reasoner)
    _choice("--format", fmt, ["auto", *FORMATS])
    if source != "-" and not Path(source).is_file():
        _fail(f"not a file: {source}")
    stream = sys.stdin.buffer if source == "-" else open(source, "rb")  # noqa: SIM115
    if to_broker:
        from soc_agent.fleet.broker import Broker, BrokerConfig  # deferred: the fleet (redis, psycopg)

        try:
            published = Broker(BrokerConfig.from_env()).publish(stream, source, fmt,
                                                                max_line_bytes=settings.max_alert_bytes)
        finally:
            if stream is not sys.stdin.buffer:
                stream.close()
        print(json.dumps({"queued": published.queued, "shed": published.shed,
                          "dead_lettered": published.dead_lettered, "waited_s": round(published.waited_s, 3)}))
        return
    err.print(safe_cell(settings.autonomy_in_force()))
    pipeline = _pipeline(settings)
    sink = open(out_file, "w") if out_file else None  # noqa: SIM115
    interrupted = _stop_on_interrupt()
    try:
        # A pipe or a terminal may pause between lines: then every line is decided before the next is read.
        for result in pipeline.run_lines(stream, source, fmt, batched=_is_regular_file(stream)):
            if sink is not None:
                sink.write(result.to_json() + "\n")
            elif not as_json:
                print(result.to_json())
            if interrupted.is_set():
                break  # between two alerts: what was taken in is finished and committed below
        pipeline.flush_runs()
        pipeline.store.commit()
        summary = pipeline.summary.as_dict(pipeline.store)
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        if sink is not None:
            sink.close()
        if stream is not sys.stdin.buffer:
            stream.close()
        pipeline.close()
    if interrupted.is_set():
        err.print(safe_cell(f"interrupted: {summary['alerts_in']} alert(s) taken in and committed "
                            f"({summary['processed']} processed, {summary['dead_lettered']} dead-lettered, "
                            f"{summary['cases']} cases); run the same command again to resume: alerts already "
                            f"stored are skipped as duplicates"))
        raise typer.Exit(130)
    if as_json:
        print(json.dumps(summary))
    else:
        err.print(safe_cell(f"alerts in {summary['alerts_in']}, processed {summary['processed']}, "
                            f"dead-lettered {summary['dead_lettered']}, cases {summary['cases']}, "
                            f"decisions {summary['decisions']}"))


CASE_STATUSES = ("open", "pending_approval", "contained", "closed")
"""A case's statuses (``CaseRow.status``)."""
CASE_SORTS = ("updated", "opened", "severity", "confidence", "alerts")


@cases_app.command("list")
def cases_list(
    workdir: Path = WorkdirOpt,
    status: Optional[str] = typer.Option(None, "--status", help=" | ".join(CASE_STATUSES)),
    verdict: Optional[str] = typer.Option(None, "--verdict", help="true_positive | benign_positive | "
                                          "false_positive | undetermined"),
    severity: Optional[str] = typer.Option(None, "--severity", help="minimum severity: high lists high and "
                                           "critical (informational | low | medium | high | critical)"),
    incident_class: Optional[str] = typer.Option(None, "--class", help="incident class, e.g. brute_force"),
    entity: Optional[str] = typer.Option(None, "--entity", help="cases holding this entity value (an IP, user, "
                                         "host, domain, hash...; case-insensitive)"),
    since: Optional[str] = typer.Option(None, "--since", help="updated at or after: an ISO 8601 time or an age "
                                        "(7d, 12h, 30m)"),
    sort: str = typer.Option("updated", "--sort", help=" | ".join(CASE_SORTS)),
    descending: bool = typer.Option(True, "--desc/--asc", help="highest, newest first (default) or the reverse"),
    limit: Optional[int] = typer.Option(None, "--limit", help="at most this many cases"),
    as_json: bool = typer.Option(False, "--json", help="one JSON array of full case records (with entities)"),
) -> None:
    """List cases, most recently updated first; filter and sort them."""
    # deferred: the store (sqlmodel, SQLAlchemy), see _store()
    from sqlalchemy import case as sql_case
    from sqlalchemy import func
    from sqlmodel import select

    from soc_agent.store import CaseEntityRow, CaseRow

    _choice("--status", status, CASE_STATUSES)
    _choice("--verdict", verdict, [v.value for v in Verdict])
    _choice("--severity", severity, [s.value for s in Severity])
    _choice("--sort", sort, CASE_SORTS)
    if limit is not None and limit < 1:
        _fail(f"invalid --limit {limit}: give 1 or more")
    after = _since(since)
    store = _store(_existing_settings(workdir).db_url)
    rank = sql_case({s.value: s.rank for s in Severity}, value=CaseRow.severity, else_=-1)
    key = {"updated": CaseRow.updated_at, "opened": CaseRow.opened_at, "severity": rank,
           "confidence": CaseRow.confidence, "alerts": CaseRow.alert_count}[sort]
    # Cases without a confidence (not yet judged) come last either way; ties in the case id's order.
    order = (key.desc() if descending else key.asc()).nulls_last()
    query = select(CaseRow).order_by(order, CaseRow.id.desc() if descending else CaseRow.id.asc())
    if status:
        query = query.where(CaseRow.status == status)
    if verdict:
        query = query.where(CaseRow.verdict == verdict)
    if severity:
        query = query.where(rank >= Severity(severity).rank)
    if incident_class:
        query = query.where(CaseRow.incident_class == incident_class)
    if entity:
        query = query.where(CaseRow.id.in_(select(CaseEntityRow.case_id).where(
            func.lower(CaseEntityRow.value) == entity.strip().lower())))
    if after is not None:
        query = query.where(CaseRow.updated_at >= after)
    if limit:
        query = query.limit(limit)
    with store.reader() as session:
        cases = session.exec(query).all()
        if as_json:
            entities: dict[str, list] = {c.id: [] for c in cases}
            ids = list(entities)
            for start in range(0, len(ids), 500):
                for e in session.exec(select(CaseEntityRow).where(CaseEntityRow.case_id.in_(ids[start:start + 500]))
                                      .order_by(CaseEntityRow.case_id, CaseEntityRow.key)):
                    entities[e.case_id].append({"kind": e.kind, "value": e.value, "role": e.role,
                                                "last_seen": e.last_seen})
    store.close()
    if as_json:
        _print_json([_record(c, reasons=True) | {"entities": entities[c.id]} for c in cases])
        return
    # A narrow terminal gets the columns that say what a case is; with the action columns a row needs about 160.
    wide = out.width >= 160
    columns = ("case", "sev", "class", "status", "verdict", "conf", "alerts") + (
        ("action", "decision", "updated") if wide else ())
    table = _listing(*columns, ids=("case",), short=("conf", "alerts", "updated"))
    for c in cases:
        values = [c.id, c.severity, c.incident_class or "-", c.status, c.verdict or "-",
                  f"{c.confidence:.2f}" if c.confidence is not None else "-", c.alert_count]
        if wide:
            values += [c.action or "-", c.decision or "-", c.updated_at.strftime("%Y-%m-%d %H:%M")]
        _row(table, *values)
    out.print(table)


@cases_app.command("show")
def cases_show(case_id: str, workdir: Path = WorkdirOpt) -> None:
    """Print a case: status, disposition, assignee, its history (dispositions, comments, assignments), notes."""
    # deferred: the store (sqlmodel, SQLAlchemy), see _store()
    from soc_agent.case_history import case_history, history_line
    from soc_agent.store import CaseRow, NoteRow

    store = _store(_existing_settings(workdir).db_url)
    with store.reader() as session:
        case = session.get(CaseRow, case_id)
        note = session.get(NoteRow, case_id)
        history = case_history(session, case_id) if case is not None else []
    store.engine.dispose()
    if case is None:
        _fail(f"no case {case_id!r}")
    print(safe_text(f"case {case.id}: {case.status}; disposition {case.label or '-'}; "
                    f"assignee {case.assignee or '-'}; verdict {case.verdict or '-'}; severity {case.severity}"))
    print("history:" if history else "history: none")
    for entry in history:
        print("  " + safe_text(history_line(entry)))
    if note is None:
        print("notes: none yet")
        return
    # The notes' own "Case work" section repeats the history printed above (markdown-escaped): left out here.
    print()
    print(safe_text(re.sub(r"\n## Case work\n\n(?:- [^\n]*\n)*", "\n", note.markdown), multiline=True))


CaseRoleOpt = typer.Option("analyst", "--role", help="viewer | analyst | lead (ignored with --token)")
CaseTokenOpt = typer.Option(None, "--token", envvar="SOC_AGENT_TOKEN", help="an API token; identity and role "
                            "from $SOC_AGENT_TOKENS_FILE instead of --by/--role")


def _case_call(workdir: Path, method: str, *args, **kwargs) -> dict:
    """Run one case action on the workdir's store; a refusal is one line on stderr, exit status 2."""
    # deferred: the case actions resume the graph (langgraph), like _pipeline()
    from soc_agent.runners.approvals import ApprovalError
    from soc_agent.runners.case_actions import CaseActions

    pipeline = _pipeline(_existing_settings(workdir))
    try:
        return getattr(CaseActions(pipeline), method)(*args, **kwargs)
    except ApprovalError as exc:
        _fail(f"refused ({exc.status_code}): {exc}")
    finally:
        pipeline.close()


@cases_app.command("close")
def cases_close(case_id: str,
                disposition: str = typer.Option(..., "--as", help="true_positive | benign_positive | false_positive"),
                reason: str = typer.Option(..., "--reason", help="why (kept in the history, the notes and the audit)"),
                by: str = typer.Option("cli", "--by"), workdir: Path = WorkdirOpt, role: str = CaseRoleOpt,
                token: Optional[str] = CaseTokenOpt) -> None:
    """Close a case with a disposition; its alerts are labelled so `soc-agent learn` learns from it."""
    from soc_agent.runners.case_actions import DISPOSITIONS  # deferred: langgraph, like _case_call()

    _choice("--as", disposition, DISPOSITIONS)
    who = _cli_identity(by, role, token)
    result = _case_call(workdir, "close", case_id, who, disposition, reason)
    out.print(safe_cell(f"case {case_id}: closed as {result['label']} by {who.name} "
                        f"(was {result['status_before']})"))


@cases_app.command("reopen")
def cases_reopen(case_id: str, reason: str = typer.Option("", "--reason"), by: str = typer.Option("cli", "--by"),
                 workdir: Path = WorkdirOpt, role: str = CaseRoleOpt, token: Optional[str] = CaseTokenOpt) -> None:
    """Reopen a closed case: its earlier status comes back, its disposition is withdrawn, the history stays."""
    who = _cli_identity(by, role, token)
    result = _case_call(workdir, "reopen", case_id, who, reason)
    out.print(safe_cell(f"case {case_id}: reopened by {who.name}, now {result['status']}"
                        + (f" ({result['withdrawn_label']} withdrawn)" if result["withdrawn_label"] else "")))


@cases_app.command("comment")
def cases_comment(case_id: str, text: str, by: str = typer.Option("cli", "--by"), workdir: Path = WorkdirOpt,
                  role: str = CaseRoleOpt, token: Optional[str] = CaseTokenOpt) -> None:
    """Add a comment to a case (at most 4 KiB)."""
    who = _cli_identity(by, role, token)
    _case_call(workdir, "comment", case_id, who, text)
    out.print(safe_cell(f"case {case_id}: comment by {who.name} added"))


@cases_app.command("assign")
def cases_assign(case_id: str, assignee: str, by: str = typer.Option("cli", "--by"), workdir: Path = WorkdirOpt,
                 role: str = CaseRoleOpt, token: Optional[str] = CaseTokenOpt) -> None:
    """Assign a case to a person."""
    who = _cli_identity(by, role, token)
    result = _case_call(workdir, "assign", case_id, who, assignee)
    out.print(safe_cell(f"case {case_id}: assigned to {result['assignee']} by {who.name}"))


@blocks_app.command("list")
def blocks_list(workdir: Path = WorkdirOpt, all_: bool = typer.Option(False, "--all", help="include lifted"),
                as_json: bool = typer.Option(False, "--json", help="one JSON array of the containment records")) -> None:
    """Active blocks and other containments with their expiry (expired ones are lifted first)."""
    # deferred: the executor with the configured connectors (httpx, CEL), and the store, see _store()
    from sqlmodel import select

    from soc_agent.composition import open_executor
    from soc_agent.responders import LocalResponder
    from soc_agent.store import ContainmentRow

    settings = _existing_settings(workdir)
    store = _store(settings.db_url)
    open_executor(settings, store).expire()  # with the connectors' responders, so their effects are lifted too
    local = LocalResponder(store)
    table = _listing("effect", "target", "active", "action", "held by", "expires_at", ids=("target",))
    records = []
    with store.reader() as session:
        for row in session.exec(select(ContainmentRow)):
            if row.active or all_:
                holders = [h.action_id for h in local.holders(row.effect, row.target)]
                records.append(_record(row, detail=True) | {"held_by": holders})
                _row(table, row.effect, row.target, row.active, row.action_id,
                     ", ".join(map(str, holders)) or "-", row.expires_at.isoformat() if row.expires_at else "-")
    if as_json:
        _print_json(records)
        return
    out.print(table)


@actions_app.command("list")
def actions_list(workdir: Path = WorkdirOpt,
                 as_json: bool = typer.Option(False, "--json", help="one JSON array of full action records")) -> None:
    """Every action with its status."""
    # deferred: the store (sqlmodel, SQLAlchemy), see _store()
    from sqlmodel import select

    from soc_agent.responders.executor import describe_status
    from soc_agent.store import ActionRow

    store = _store(_existing_settings(workdir).db_url)
    table = _listing("id", "case", "action", "tier", "target", "status", "rollback", ids=("id", "case"))
    records = []
    with store.reader() as session:
        for row in session.exec(select(ActionRow).order_by(ActionRow.id)):
            records.append(_record(row, params=True, result=True) | {"status_text": describe_status(row)})
            _row(table, row.id, row.case_id, row.name, row.tier, row.target_value or "-", describe_status(row),
                 row.rollback or "-")
    if as_json:
        _print_json(records)
        return
    out.print(table)


@actions_app.command("rollback")
def actions_rollback(action_id: int, workdir: Path = WorkdirOpt, by: str = typer.Option("cli", "--by")) -> None:
    """Undo an executed action through its responder (audited)."""
    # deferred: the executor with the configured connectors (httpx, CEL), as blocks_list
    from soc_agent.composition import open_executor
    from soc_agent.notes import NoteFiles
    from connectors.base import ResponderError

    settings = _existing_settings(workdir)
    store = _store(settings.db_url)
    # The executor a triage process uses: a block made through nftables or an EDR is lifted there, not only here.
    executor = open_executor(settings, store)
    executor.note_files = NoteFiles(settings.notes_dir)  # the notes' markdown files get the rollback line too
    store.after_commit(executor.note_files.write)
    try:
        row = executor.rollback(action_id, by=by)
    except ResponderError as exc:
        err.print(safe_cell(f"cannot roll back: {exc}"))
        raise typer.Exit(1) from None
    undone = json.loads(row.result).get("rollback", {})
    what = ("it owned nothing (the effect was already in place); nothing lifted" if undone.get("owned") is False
            else f"still held by action {', '.join(map(str, undone['still_held_by']))}"
            if undone.get("still_held_by") else "lifted" if undone.get("lifted") else "undone")
    out.print(safe_cell(f"action {row.id} ({row.name} on {row.target_value}) rolled back: {what}"))


@audit_app.command("verify")
def audit_verify(workdir: Path = WorkdirOpt,
                 public_key: Optional[Path] = typer.Option(None, "--public-key", help="PEM public key kept "
                                                           "elsewhere to check the checkpoint signatures with"),
                 witness: Optional[Path] = typer.Option(None, "--witness", help="a witness's saved copy of the "
                                                        "checkpoints it received (one JSON object per line)")) -> None:
    """Check the chain, its MACs and its signed checkpoints (truncation, rewrites). Exit 0 intact; 1 broken
    (naming the first bad record or checkpoint); 2 nothing to verify; 3 MACs present but no key.

    With --witness, the chain and the local checkpoint file are also held to the witness's copy
    (SOC_AGENT_AUDIT_WITNESS_URL sends each signed checkpoint there)."""
    from soc_agent.audit_checkpoints import verify_workdir  # deferred: cryptography and SQLAlchemy

    if witness is not None and not witness.is_file():
        err.print(safe_cell(f"no witness copy at {witness}"), markup=False, highlight=False)
        raise typer.Exit(2)
    verdict = verify_workdir(_settings(workdir), public_key, witness)
    for note in verdict.notes:
        err.print(f"note: {note}", markup=False, highlight=False, soft_wrap=True)
    for problem in verdict.problems:
        err.print(f"audit BROKEN: {problem}", markup=False, highlight=False, soft_wrap=True)
    if verdict.ok:
        out.print(f"audit intact: {verdict.message}", markup=False, highlight=False, soft_wrap=True)
        return
    label = {"broken": "audit BROKEN", "nothing": "audit NOT VERIFIED", "unverifiable": "audit NOT VERIFIED"}
    err.print(f"{label[verdict.status]}: {verdict.message}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(verdict.exit_code)


@audit_app.command("show")
def audit_show(case_id: Optional[str] = typer.Option(None, "--case", help="only this case's records"),
               since: Optional[str] = typer.Option(None, "--since", help="recorded at or after: an ISO 8601 time "
                                                   "or an age (7d, 12h, 30m)"),
               as_json: bool = typer.Option(False, "--json", help="one JSON array: each record with its sentence"),
               workdir: Path = WorkdirOpt) -> None:
    """The audit trail in words, one line per record, oldest first: when, who or what, did what, why."""
    # deferred: the store (sqlmodel, SQLAlchemy), see _store()
    from soc_agent.audit import records
    from soc_agent.audit_text import describe
    from soc_agent.store.engine import make_engine
    import soc_agent.store.schema  # noqa: F401  (every table, for the store to create)

    after = _since(since)
    engine = make_engine(_existing_settings(workdir).db_url)
    lines = []
    try:
        for record in records(engine, case_id):
            if after is not None and datetime.fromisoformat(record.ts) < after:
                continue
            if as_json:
                lines.append({"seq": record.seq, "ts": record.ts, "kind": record.kind, "case_id": record.case_id,
                              "payload": json.loads(record.payload), "text": describe(record)})
            else:
                print(safe_text(describe(record)))
    finally:
        engine.dispose()
    if as_json:
        _print_json(lines)


@audit_app.command("export")
def audit_export(out_dir: Path = typer.Option(..., "--out", help="bundle folder (created)"),
                 workdir: Path = WorkdirOpt) -> None:
    """Write a bundle (records.jsonl, checkpoints.jsonl, the public key, verify_bundle.py) that verifies
    without soc-agent: `cd DIR && python verify_bundle.py`."""
    from soc_agent.audit_checkpoints import export_bundle  # deferred: cryptography and SQLAlchemy

    try:
        summary = export_bundle(_settings(workdir), out_dir)
    except LookupError as exc:
        err.print(f"audit NOT EXPORTED: {exc}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    out.print(f"audit exported: {summary}", markup=False, highlight=False, soft_wrap=True)


@approvals_app.command("list")
def approvals_list(workdir: Path = WorkdirOpt,
                   as_json: bool = typer.Option(False, "--json", help="one JSON array of the pending items")) -> None:
    """Pending approval items."""
    # deferred: the store (sqlmodel, SQLAlchemy), see _store()
    from sqlmodel import select

    from soc_agent.store import ApprovalRow

    store = _store(_existing_settings(workdir).db_url)
    table = _listing("id", "case", "action", "tier", "reasons", ids=("id", "case"))
    records = []
    with store.reader() as session:
        for row in session.exec(select(ApprovalRow).where(ApprovalRow.status == "pending").order_by(ApprovalRow.id)):
            records.append(_record(row, reasons=True))
            reasons = [r for r in json.loads(row.reasons) if Reason.parse(r).outcome is Outcome.NEEDS_APPROVAL]
            _row(table, row.id, row.case_id, row.action, row.tier, "; ".join(reasons))
    if as_json:
        _print_json(records)
        return
    out.print(table)
    print_pending_calls(store.engine)


def _cli_identity(by: str, role: str, token: Optional[str]):
    if token:
        who = TokenStore.from_file(os.environ.get("SOC_AGENT_TOKENS_FILE")).authenticate(token)
        if who is None:
            err.print("unknown token (check SOC_AGENT_TOKENS_FILE)")
            raise typer.Exit(1)
        return who
    # Whoever runs the CLI on the store's host already holds its keys; --role says which hat they wear.
    _choice("--role", role, ROLES)
    return Identity(name=by, role=Role(role))


def _queue_call(workdir: Path, method: str, *args, **kwargs) -> dict:
    from soc_agent.runners.approvals import ApprovalError, ApprovalQueue, QueuePolicy  # deferred: langgraph

    pipeline = _pipeline(_existing_settings(workdir))
    try:
        return getattr(ApprovalQueue(pipeline, QueuePolicy.from_env()), method)(*args, **kwargs)
    except ApprovalError as exc:
        err.print(safe_cell(f"refused ({exc.status_code}): {exc}"))
        raise typer.Exit(1) from None
    finally:
        pipeline.close()


def _decide_approval(approval_id: int, approved: bool, by: str, comment: str, workdir: Path,
                     role: str = "lead", token: Optional[str] = None) -> None:
    who = _cli_identity(by, role, token)
    method = "approve" if approved else "reject"
    result = _queue_call(workdir, method, approval_id, who, comment)
    out.print(safe_cell(f"approval {approval_id}: {result['status']} by {who.name}; "
                        f"action {result['action_status']} ({result['decision'] or '-'})"))
    _say_decision_notes(result)


def _say_decision_notes(result: dict) -> None:
    """What a decision did not do on its own: a first of two approvals, an effect already in place."""
    if result["status"] == "pending":
        out.print(safe_cell("; ".join(result.get("reasons") or ["awaiting a second approver"])))
    if result.get("note") or result.get("already_in_effect"):
        out.print(safe_cell(result.get("note") or result["already_in_effect"]))


RoleOpt = typer.Option("lead", "--role", help="viewer | analyst | lead (ignored with --token)")
TokenOpt = typer.Option(None, "--token", envvar="SOC_AGENT_TOKEN", help="an API token; identity and role from "
                        "$SOC_AGENT_TOKENS_FILE instead of --by/--role")


@approvals_app.command("approve")
def approvals_approve(approval_id: int, by: str = typer.Option("cli", "--by"), comment: str = "",
                      workdir: Path = WorkdirOpt, role: str = RoleOpt, token: Optional[str] = TokenOpt) -> None:
    """Approve a pending action; the guard is checked again before it runs."""
    _decide_approval(approval_id, True, by, comment, workdir, role, token)


@approvals_app.command("reject")
def approvals_reject(approval_id: int, by: str = typer.Option("cli", "--by"), comment: str = "",
                     workdir: Path = WorkdirOpt, role: str = RoleOpt, token: Optional[str] = TokenOpt) -> None:
    """Reject a pending action; it is recorded, not run."""
    _decide_approval(approval_id, False, by, comment, workdir, role, token)


@approvals_app.command("edit")
def approvals_edit(approval_id: int, by: str = typer.Option("cli", "--by"), comment: str = "",
                   action: Optional[str] = typer.Option(None, "--action", help="another action from the menu"),
                   param: list[str] = typer.Option([], "--param", help="KEY=VALUE, e.g. ttl_seconds=600"),
                   workdir: Path = WorkdirOpt, role: str = RoleOpt, token: Optional[str] = TokenOpt) -> None:
    """Approve with changes: another action from the case's menu, or changed params (e.g. a shorter TTL)."""
    params: dict = {}
    for item in param:
        key, sep, value = item.partition("=")
        if not sep:
            _fail(f"--param {item!r}: expected KEY=VALUE")
        try:
            params[key] = json.loads(value)
        except ValueError:
            params[key] = value
    who = _cli_identity(by, role, token)
    result = _queue_call(workdir, "edit", approval_id, who, comment, action=action, params=params)
    out.print(safe_cell(f"approval {approval_id}: edited and {result['status']} by {who.name}; "
                        f"action {result['action_status']} ({result['decision'] or '-'})"))
    _say_decision_notes(result)


@approvals_app.command("show")
def approvals_show(approval_id: int, workdir: Path = WorkdirOpt,
                   as_json: bool = typer.Option(False, "--json", help="the item as JSON")) -> None:
    """One item: case summary, action, tier, blast radius, rollback, guard reasons, evidence."""
    item = _queue_call(workdir, "show", approval_id)
    if as_json:
        print(json.dumps(item, default=str))
        return
    case = item["case"]

    def say(line: str) -> None:
        out.print(safe_cell(line))

    say(f"approval {item['id']} [{item['status']}] case {item['case_id']}: {case['title']}")
    say(f"action: {item['action']} ({item['tier']}) on {item['target'] or '-'} params {item['params']}")
    say(f"blast radius: {item['blast_radius'].get('summary')}")
    say(f"rollback: {item['rollback'] or 'none'} · needs: {item['required_role']} · "
        f"raised by: {item['requested_by']} · expires: {item['expires_at']}")
    say(f"menu: {', '.join(m['name'] for m in item['menu']) or '-'}")
    for vote in item.get("approvals", []):
        say(f"approved by {vote['by']} ({vote['role']}) at {vote['at']}: {vote['comment'] or '-'}")
    if item.get("awaiting_second_approver"):
        say("awaiting a second approver (two-person rule)")
    if item.get("already_in_effect"):
        say(item["already_in_effect"])
    say(f"summary: {case['summary']}")
    for reason in item["guard_reasons"]:
        say(f"  - {reason}")
    say("evidence:")
    for ev in case["evidence"]:
        say(f"  {ev['id']} ({ev['kind']}, {ev['weight']:+.1f}): {ev['summary']}")


@dead_letters_app.command("list")
def dead_letters_list(
    workdir: Path = WorkdirOpt,
    since: Optional[str] = typer.Option(None, "--since", help="received at or after: an ISO 8601 time or an age "
                                        "(7d, 12h, 30m)"),
    source: Optional[str] = typer.Option(None, "--source", help="only from this input (file, stdin, connector)"),
    as_json: bool = typer.Option(False, "--json", help="one JSON array of full records (raw line included)"),
) -> None:
    """Every input that could not be taken in, with its whole reason and whether it was retried."""
    from soc_agent.dead_letters import list_rows, record  # deferred: the store, see _store()

    after = _since(since)
    store = _store(_existing_settings(workdir).db_url)
    with store.reader() as session:
        rows = list_rows(session, since=after, source=source)
    store.close()
    if as_json:
        _print_json([record(row) for row in rows])
        return
    table = _listing("id", "received", "source", "line", "bytes", "reason", "retried", ids=("id",),
                     short=("received", "line", "bytes"))
    for row in rows:
        retried = (row.retry_result or "yes") if row.retried_at else ("failed again" if row.retry_result else "no")
        _row(table, row.id, row.received_at.strftime("%m-%d %H:%M"), row.source,
             row.line_no if row.line_no is not None else "-", row.raw_size, row.reason, retried)
    out.print(table)


@dead_letters_app.command("show")
def dead_letters_show(dead_letter_id: int = typer.Argument(..., metavar="ID"), workdir: Path = WorkdirOpt,
                      as_json: bool = typer.Option(False, "--json", help="the record as JSON")) -> None:
    """One dead letter: its whole reason, size, retry history and the raw line (escaped; hex if not text)."""
    # deferred: the store (sqlmodel, SQLAlchemy), see _store()
    from soc_agent.dead_letters import raw_preview, reason_kind, record
    from soc_agent.store import DeadLetterRow

    store = _store(_existing_settings(workdir).db_url)
    with store.reader() as session:
        row = session.get(DeadLetterRow, dead_letter_id)
    store.close()
    if row is None:
        err.print(safe_cell(f"no dead letter {dead_letter_id}"))
        raise typer.Exit(1)
    preview = raw_preview(row)
    if as_json:
        _print_json(record(row) | {"preview": {k: v for k, v in preview.items() if k != "text"}})
        return

    def say(line: str) -> None:
        out.print(safe_cell(line), soft_wrap=True)

    where = f"{row.source}" + (f" line {row.line_no}" if row.line_no is not None else "")
    say(f"dead letter {row.id} from {where}, received {row.received_at.isoformat()}")
    say(f"reason: {row.reason}")
    say(f"kind: {reason_kind(row.reason)}")
    kept = ("whole" if preview["complete"] else "invalid bytes stored as U+FFFD" if preview.get("replaced")
            else f"first {preview['stored_bytes']} bytes kept")
    say(f"size: {row.raw_size} bytes ({kept})")
    if row.retried_at is not None:
        say(f"retried: {row.retried_at.isoformat()}: {row.retry_result or 'processed'}")
    elif row.retry_result:
        say(f"last retry: {row.retry_result}")
    else:
        say("retried: never")
    say("raw (escaped):")
    say(f"  {row.raw.rstrip(chr(10))}")
    if "hex" in preview:
        why = ("the line was not valid UTF-8: its invalid bytes were stored as U+FFFD (ef bf bd)"
               if preview["replaced"] else "the line holds control characters")
        more = f", first {len(preview['hex']) * 16} bytes" if preview["hex_truncated"] else ""
        say(f"hex of the stored text{more} ({why}):")
        for line in preview["hex"]:
            say(f"  {line}")


@dead_letters_app.command("retry")
def dead_letters_retry(
    dead_letter_id: Optional[int] = typer.Argument(None, metavar="ID", help="the dead letter (or --all)"),
    all_: bool = typer.Option(False, "--all", help="every dead letter not yet retried (with --source, --since)"),
    fmt: str = typer.Option("auto", "--format", help="auto, or the format the line is in (the row does not "
                            "record the --format it was first read with)"),
    source: Optional[str] = typer.Option(None, "--source", help="--all: only from this input"),
    since: Optional[str] = typer.Option(None, "--since", help="--all: received at or after (ISO time or 7d/12h/30m)"),
    by: str = typer.Option("cli", "--by", help="who retries (audited)"),
    token: Optional[str] = TokenOpt,
    workdir: Path = WorkdirOpt,
    as_json: bool = typer.Option(False, "--json", help="the outcomes as one JSON array"),
) -> None:
    """Re-run a dead letter's line through the current mappings and settings, once.

    A line that is taken in is marked retried with what it became, and is never run again (a second retry
    is refused); a line that fails again keeps its new reason and stays retryable. Exit 1 when a retry
    failed or was refused.
    """
    # deferred: the format registry loads every vendor package (httpx); the store, see _store()
    from connectors import FORMATS
    from soc_agent.dead_letters import RetryOutcome, is_retryable, list_rows, retry

    _choice("--format", fmt, ["auto", *FORMATS])
    if all_ == (dead_letter_id is not None):
        _fail("give a dead letter ID or --all")
    if not all_ and (source is not None or since is not None):
        _fail("--source and --since select rows for --all")
    after = _since(since)
    who = _cli_identity(by, "analyst", token)
    pipeline = _pipeline(_existing_settings(workdir))
    skipped: list = []
    try:
        if all_:
            with pipeline.store.reader() as session:
                rows = list_rows(session, since=after, source=source, pending_only=True)
            # A row whose line was not kept whole cannot be re-run: --all says so and goes on.
            skipped = [RetryOutcome(row.id, "skipped", why) for row in rows if (why := is_retryable(row))]
            ids = [row.id for row in rows if is_retryable(row) is None]
        else:
            ids = [dead_letter_id]
        outcomes = [retry(pipeline, row_id, fmt, by=who.name) for row_id in ids]
    finally:
        pipeline.close()
    if as_json:
        _print_json([o.as_dict() for o in outcomes + skipped])
    else:
        for o in outcomes + skipped:
            if o.status == "processed":
                case = f" in case {o.case_id}" if o.case_id else ""
                out.print(safe_cell(f"dead letter {o.id}: processed as alert {o.alert_id}{case} ({o.result})"),
                          soft_wrap=True)
            else:
                say = out.print if o.status == "failed" else err.print
                say(safe_cell(f"dead letter {o.id}: {o.status}: {o.reason}"), soft_wrap=True)
        if all_ and not outcomes:
            out.print("nothing to retry")
    if any(o.status != "processed" for o in outcomes):
        raise typer.Exit(1)


db_app = typer.Typer(help="The database schema (Alembic).", no_args_is_help=True)
app.add_typer(db_app, name="db")


@db_app.command("upgrade")
def db_upgrade(workdir: Path = WorkdirOpt, revision: str = typer.Argument("head")) -> None:
    """Migrate the store's database (SOC_AGENT_DATABASE_URL) to ``revision``."""
    from soc_agent.fleet.postgres import upgrade_schema  # deferred: psycopg, alembic

    settings = _settings(workdir)
    upgrade_schema(settings.db_url, revision)
    out.print(safe_cell(f"database at {revision}"))


@app.command()
def worker(
    workdir: Path = WorkdirOpt,
    mode: Optional[str] = typer.Option(None, "--mode", help="shadow | enforce (default: the policy's)"),
    reasoner: Optional[str] = ReasonerOpt,
    batch: int = typer.Option(200, "--batch", help="messages per read and commit"),
    idle_exit: Optional[float] = typer.Option(None, "--idle-exit", help="stop after this many idle seconds"),
) -> None:
    """Consume alerts from the broker (SOC_AGENT_REDIS_URL, SOC_AGENT_BROKER_*) as one worker of a fleet."""
    # deferred: the fleet (redis, psycopg) and the graph (langgraph)
    from soc_agent.fleet.broker import BrokerConfig
    from soc_agent.fleet.worker import run_worker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stats = run_worker(_settings(workdir, mode, reasoner), BrokerConfig.from_env(), idle_exit_s=idle_exit,
                       stop=stop, batch=batch)
    print(json.dumps(stats.__dict__))


@app.command()
def serve(workdir: Path = WorkdirOpt, host: str = typer.Option("127.0.0.1", "--host"),
          port: int = typer.Option(8080, "--port"),
          to_broker: Optional[bool] = typer.Option(
              None, "--to-broker/--in-process", help="queue submitted alerts (API, ticket webhooks, HEC) on the "
              "Redis Streams broker (SOC_AGENT_REDIS_URL, SOC_AGENT_BROKER_*) for `soc-agent worker`s instead of "
              "triaging them here; 429/503 with Retry-After when it refuses (default: SOC_AGENT_TO_BROKER, off)")
          ) -> None:
    """Serve the approval queue (API and web page), the ticketing webhook and /metrics."""
    # deferred: the server (fastapi, uvicorn) and the graph (langgraph)
    from soc_agent.runners.server import serve as run_server
    from soc_agent.runners.webhooks import WebhookConfig

    # A webhook setting that cannot work stops here, before anything is created: its WebhookConfigError
    # (a ConfigError) reaches the root group, which prints it and exits 2.
    WebhookConfig.from_env()
    settings = Settings.from_env(workdir=workdir, to_broker=to_broker)
    err.print(safe_cell(settings.autonomy_in_force()))
    run_server(settings, host=host, port=port)


@app.command()
def poll(
    workdir: Path = WorkdirOpt,
    once: bool = typer.Option(False, "--once", help="poll every source once and exit"),
    interval: float = typer.Option(60.0, "--interval", min=1.0, help="seconds between polls"),
    connectors_file: Optional[Path] = typer.Option(None, "--connectors",
                                                   help="connectors file (default: $SOC_AGENT_CONNECTORS)"),
    mode: Optional[str] = typer.Option(None, "--mode", help="shadow | enforce (default: the policy's)"),
    reasoner: Optional[str] = ReasonerOpt,
) -> None:
    """Poll the alert APIs of connectors with `poll: true` and triage what they return."""
    # deferred: the connectors (httpx) load for polling only
    from connectors.loader import CONNECTORS_ENV, configured_sources
    from soc_agent.runners.poll import poll_forever, poll_once

    environ = {**os.environ, CONNECTORS_ENV: str(connectors_file)} if connectors_file else None
    sources = configured_sources(environ)  # a bad connectors file is a ConfigError: the root group prints it
    if not sources:
        err.print(safe_cell(f"no connector has poll: true (set {CONNECTORS_ENV} or --connectors)"))
        raise typer.Exit(2)

    def report(outcomes) -> None:
        for outcome in outcomes:
            print(json.dumps(outcome.as_dict()), flush=True)

    pipeline = _pipeline(_settings(workdir, mode, reasoner))
    try:
        if once:
            outcomes = poll_once(pipeline, sources)
            report(outcomes)
        else:
            stop = threading.Event()
            signal.signal(signal.SIGTERM, lambda *_: stop.set())
            try:
                poll_forever(pipeline, sources, interval, stop, report)
            except KeyboardInterrupt:
                pass
            outcomes = []
        summary = pipeline.summary.as_dict(pipeline.store)
    finally:
        pipeline.close()
    err.print(safe_cell(f"alerts in {summary['alerts_in']}, processed {summary['processed']}, "
                        f"dead-lettered {summary['dead_lettered']}, duplicates {summary['duplicates']}, "
                        f"cases {summary['cases']}"))
    if any(o.error for o in outcomes):
        raise typer.Exit(1)


@app.command("eval")
def eval_cmd(
    workdir: Path = typer.Option(Path("./soc-agent-eval"), "--workdir"),
    out_file: Path = typer.Option(Path("eval-results.json"), "--out", help="where the JSON results go"),
    as_json: bool = typer.Option(False, "--json"),
    dataset: str = typer.Option("all", "--dataset", help="demo | redteam | all"),
    reasoner: Optional[str] = ReasonerOpt,
    alerts: list[Path] = typer.Option([], "--alerts", help="a labelled set's alerts (plain or .gz; repeatable): "
                                      "score it instead of the bundled demo"),
    labels: list[Path] = typer.Option([], "--labels", help="its labels (alert_id, label; repeatable)"),
    learn_alerts: list[Path] = typer.Option([], "--learn-alerts", help="labelled history to learn first"),
    learn_labels: list[Path] = typer.Option([], "--learn-labels", help="the history's labels"),
) -> None:
    """Score the agent: per-class precision/recall, macro-F1, TPR/FPR, actions, guardrails, injection attacks.

    With ``--alerts``/``--labels``, score any labelled set in the dev-set format under the configured policy.
    """
    # deferred: the evaluations run the graph (langgraph)
    from evals.redteam import run_redteam
    from evals.runner import run_eval

    if alerts or labels or learn_alerts or learn_labels:
        _eval_labelled(workdir, out_file, as_json, reasoner, alerts, labels, learn_alerts, learn_labels)
        return
    if dataset not in ("demo", "redteam", "all"):
        err.print(safe_cell(f"unknown dataset {dataset!r}: demo, redteam or all"))
        raise typer.Exit(2)
    settings = _settings(workdir, reasoner=reasoner)
    results: dict = {}
    if dataset in ("demo", "all"):
        results.update(run_eval(settings))
        if settings.reasoner == "llm":
            # What the model adds is measured beside the run without it, on the same stream.
            plain = run_eval(settings.model_copy(update={"reasoner": "deterministic",
                                                         "workdir": settings.workdir / "deterministic"}))
            results["deterministic"] = {k: plain[k] for k in ("macro_f1", "tpr", "fpr", "forbidden_actions")}
    if dataset in ("redteam", "all"):
        results.update(run_redteam(settings))
        results["llm_calls"] = results.get("llm_calls", 0) + results["redteam_llm_calls"]
        results["tokens"] = results.get("tokens", 0) + results["redteam_tokens"]
    out_file.write_text(json.dumps(results, indent=2))
    if as_json:
        print(json.dumps(results))
        return
    if "per_label" in results:
        table = Table(title="verdicts by class")
        for col in ("label", "precision", "recall", "f1", "support"):
            table.add_column(col)
        for label, row in results["per_label"].items():
            _row(table, label, f"{row['precision']:.3f}", f"{row['recall']:.3f}", f"{row['f1']:.3f}",
                 row["support"])
        out.print(table)
        out.print(safe_cell(f"macro-F1 {results['macro_f1']:.3f} · TPR {results['tpr']:.3f} · "
                            f"FPR {results['fpr']:.3f} · "
                            f"action agreement {results['action_agreement']:.3f} · "
                            f"guardrail violations {results['guardrail_violations']}"))
    if "injection_attack_success_rate" in results:
        out.print(safe_cell(f"injection attack success rate {results['injection_attack_success_rate']:.3f} "
                            f"({results['injection_attack_successes']}/{results['redteam_alerts']})"))
    if "deterministic" in results:
        plain = results["deterministic"]
        out.print(safe_cell(f"without the model (deterministic, same stream): macro-F1 {plain['macro_f1']:.3f} · TPR "
                            f"{plain['tpr']:.3f} · FPR {plain['fpr']:.3f}; the model was asked "
                            f"{results.get('llm_calls_per_100_alerts', 0)} times per 100 alerts and not needed for "
                            f"{results.get('llm_not_needed', 0)} case runs"))
    out.print(safe_cell(f"LLM calls {results.get('llm_calls', 0)} · tokens {results.get('tokens', 0)} · "
                        f"results in {out_file}"))


def _eval_labelled(workdir: Path, out_file: Path, as_json: bool, reasoner: Optional[str], alerts: list[Path],
                   labels: list[Path], learn_alerts: list[Path], learn_labels: list[Path]) -> None:
    from evals.labelled import run_labelled  # deferred: the graph (langgraph)

    if not alerts or not labels or bool(learn_alerts) != bool(learn_labels):
        err.print("give --alerts with --labels, and --learn-alerts with --learn-labels")
        raise typer.Exit(2)
    for path in (*alerts, *labels, *learn_alerts, *learn_labels):
        if not path.is_file():
            err.print(safe_cell(f"not a file: {path}"))
            raise typer.Exit(2)
    results = run_labelled(_settings(workdir, reasoner=reasoner), alerts, labels, learn_alerts, learn_labels).results
    out_file.write_text(json.dumps(results, indent=2))
    if as_json:
        print(json.dumps(results))
        return
    if "learn" in results:
        learned = results["learn"]
        out.print(safe_cell(f"learned {learned['learned']} disposition(s); model v{learned['model_version']} "
                            f"(cross-validated macro-F1 {learned['model_cv_macro_f1']}, "
                            f"ECE {learned['model_cv_ece']})"))
    table = Table(title=f"verdicts on {results['alerts']} labelled alerts")
    # The last four columns are the confusion matrix's row: what the agent called the alerts of that label.
    for col in ("label", "prec", "recall", "F1", "n", "TP", "BP", "FP", "und"):
        table.add_column(col)
    for label, row in results["per_label"].items():
        called = results["confusion"][label]
        _row(table, label, f"{row['precision']:.3f}", f"{row['recall']:.3f}", f"{row['f1']:.3f}",
             row["support"], *(called[v] for v in ("true_positive", "benign_positive", "false_positive",
                                                   "undetermined")))
    out.print(table)
    show = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
    out.print(safe_cell(f"macro-F1 {show(results['macro_f1'])} · TPR {show(results['tpr'])} · "
                        f"FPR {show(results['fpr'])} · "
                        f"ECE {show(results['ece'])} · undetermined {show(results['undetermined'])}"))
    out.print(safe_cell(f"true positives closed without a person "
                        f"{results['true_positives_closed_without_a_person']} · true positives called benign or "
                        f"false positive {results['true_positives_called_non_malicious']}"))
    out.print(safe_cell(f"dead-lettered {results['dead_lettered']} · {results['autonomy']} · LLM calls "
                        f"{results['llm_calls']} · results in {out_file}"))


@app.command()
def shadow(
    alerts: Path = typer.Argument(..., help="alerts, one per line (native JSON or any known format)"),
    labels: Path = typer.Option(..., "--labels", help="JSON lines: alert_id, label, optional action"),
    out_dir: Path = typer.Option(Path("./shadow-results"), "--out", help="results JSON, HTML report, autonomy.yml"),
    workdir: Path = WorkdirOpt,
    as_json: bool = typer.Option(False, "--json", help="print the scores as one JSON object"),
    autonomy: Optional[Path] = typer.Option(None, "--autonomy",
                                            help="current autonomy per class (default playbooks/autonomy.yml)"),
    gate_file: Optional[Path] = typer.Option(None, "--gate", help="YAML with a gate: mapping of thresholds"),
    min_cases: Optional[int] = typer.Option(None, "--min-cases", help="promotion: at least this many cases"),
    min_agreement: Optional[float] = typer.Option(None, "--min-agreement", help="promotion: verdict agreement"),
    use_learning: bool = typer.Option(False, "--use-learning",
                                      help="run with the priors and calibration learned in --workdir"),
    learn: bool = typer.Option(False, "--learn", help="run with the learned priors (uncalibrated), then learn "
                                                      "these labels and save a calibrator fitted on this run"),
    learn_split: Optional[float] = typer.Option(None, "--learn-split", help="held-out experiment: learn from "
                                                "this fraction of the stream, report before/after on the rest"),
    rebase: bool = typer.Option(True, "--rebase/--no-rebase", help="shift timestamps so the newest is now"),
) -> None:
    """Replay labelled alerts in shadow mode and score the agent against the analysts."""
    from soc_agent.runners.shadow import GateConfig, ShadowOptions, run_shadow  # deferred: langgraph

    for path in (alerts, labels):
        if not path.is_file():
            err.print(safe_cell(f"not a file: {path}"))
            raise typer.Exit(2)
    settings = _settings(workdir)
    if learn_split is not None:
        _shadow_split(alerts, labels, settings, learn_split, out_dir, as_json)
        return
    gate = GateConfig.from_file(gate_file) if gate_file else GateConfig()  # ConfigError at its line: root group
    overrides = {k: v for k, v in (("min_cases", min_cases), ("min_agreement", min_agreement)) if v is not None}
    if overrides:
        gate = GateConfig(**{**{k: getattr(gate, k) for k in gate.__dataclass_fields__}, **overrides})
    learning = None
    if use_learning or learn:
        from soc_agent.learning import load_learning  # deferred: the store, see _store()

        sources, calibrator = load_learning(settings, _store(settings.db_url))
        learning = (sources, None if learn else calibrator)
    default_autonomy = settings.playbooks_dir / "autonomy.yml"
    options = ShadowOptions(out_dir=out_dir, gate=gate, autonomy_file=autonomy or default_autonomy,
                            rebase=rebase, learning=learning)
    progress = Progress(TextColumn("[bold]shadow"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=err, transient=False, disable=as_json and not err.is_terminal)
    with progress:
        def factory(total: int):
            task = progress.add_task("shadow", total=total)
            return lambda n: progress.advance(task, n)

        results, fitter = run_shadow(alerts, labels, settings, options, factory)
    if learn and fitter is not None:
        _learn_after_shadow(alerts, labels, settings, fitter, results)
    if as_json:
        print(json.dumps(results, default=str))
    else:
        _print_shadow(results)
    if results.get("error"):
        err.print(safe_cell(results["error"], style="red"))
        raise typer.Exit(1)


def _print_shadow(results: dict) -> None:
    out.print(safe_cell(f"verdict agreement {results['verdict_agreement']:.1%} · macro-F1 {results['macro_f1']:.3f} · "
                        f"risky recommendations {results['risky_recommendations']} · missed true positives "
                        f"{results['missed_true_positives']} ({results['missed_critical_true_positives']} critical) · "
                        f"ECE {results['calibration']['ece']} · scored {results['scored_alerts']}"))
    table = Table(title="autonomy per incident class")
    for col in ("class", "decision", "mode", "cases", "agreement", "why"):
        table.add_column(col)
    for name, c in results["per_class"].items():
        _row(table, name, c["decision"], c["mode"], c["evidence"]["cases"],
             f"{c['evidence']['verdict_agreement']:.1%}", "; ".join(c["reasons"]))
    out.print(table)
    for reason, item in results["skipped"].items():
        example = f" (e.g. {item['examples'][0]})" if item["examples"] else ""
        err.print(safe_cell(f"skipped {item['count']}: {reason}{example}"))
    if "files" in results:
        out.print(safe_cell(f"results {results['files']['results']} · report {results['files']['report']} · "
                            f"suggestion {results['files']['autonomy']}"))


def _learn_after_shadow(alerts: Path, labels: Path, settings: Settings, fitter, results: dict) -> None:
    from soc_agent.learning import LabelIndex, learn_from_file  # deferred: the store, see _store()

    store = _store(settings.db_url)
    index = LabelIndex(settings.workdir / ".learn-labels.sqlite")
    try:
        with labels.open("rb") as fh:
            index.load(fh, labels.name)
        with alerts.open("rb") as fh:
            report, _ = learn_from_file(store, fh, index, labels.name)
        calibrator = fitter.fit()
        if calibrator:
            calibrator.save(store.session, results["calibration"]["ece"])
            store.commit()
    finally:
        index.close()
        store.close()
    results["learned"] = report.as_dict()["learned"]
    results["calibrator_saved"] = bool(calibrator)


def _shadow_split(alerts: Path, labels: Path, settings: Settings, fraction: float, out_dir: Path,
                  as_json: bool) -> None:
    from evals.split import learn_split  # deferred: the graph (langgraph)

    try:
        result = learn_split(alerts, labels, settings, fraction, out_dir / "split",
                             log=None if as_json else lambda m: err.print(m))
    except ValueError as exc:
        err.print(str(exc))
        raise typer.Exit(2) from None
    data = result.as_dict()
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "learn-split.json").write_text(json.dumps(data, indent=2))
    if as_json:
        print(json.dumps(data))
        return
    table = Table(title=f"held-out split: learn from the first {fraction:.0%}, score the rest")
    for col in ("", "macro-F1", "agreement", "ECE", "decided", "risky", "missed TP"):
        table.add_column(col)
    for name in ("before", "priors_only", "after"):
        r = data[name]
        _row(table, name.replace("_", " "), f"{r['macro_f1']:.4f}", f"{r['verdict_agreement']:.4f}",
             r["ece"], f"{r['decided_share']:.1%}", r["risky_recommendations"], r["missed_true_positives"])
    out.print(table)
    out.print(safe_cell(f"train {data['train_lines']} lines ({data['learned_dispositions']} dispositions learned, "
                        f"{data['rules_with_prior']} rule and {data['entities_with_prior']} entity priors in force), "
                        f"test {data['test_lines']} lines · {out_dir / 'learn-split.json'}"))


@app.command()
def learn(
    alerts: Optional[Path] = typer.Argument(None, help="the alerts the labels refer to (omit: learn from the "
                                                       "dispositions recorded in the store)"),
    labels: Optional[Path] = typer.Option(None, "--labels", help="JSON lines: alert_id, label, optional action"),
    workdir: Path = WorkdirOpt,
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Import analysts' dispositions into the priors; write tuning suggestions for noisy rules."""
    # deferred: the store, see _store() (and lightgbm when a model is trained)
    from soc_agent.learning import (LabelIndex, default_suggestions_path, learn_from_file, learn_from_store,
                                    retrain_model, suggest_tuning, write_suggestions)

    if (alerts is None) != (labels is None):
        err.print("give both ALERTS and --labels, or neither (to learn from the store's recorded dispositions)")
        raise typer.Exit(2)
    for path in (alerts, labels):
        if path is not None and not path.is_file():
            err.print(safe_cell(f"not a file: {path}"))
            raise typer.Exit(2)
    settings = _settings(workdir)
    store = _store(settings.db_url)
    try:
        if alerts is None:
            report, priors = learn_from_store(store)
        else:
            index = LabelIndex(settings.workdir / ".learn-labels.sqlite")
            try:
                with labels.open("rb") as fh:
                    index.load(fh, labels.name)
                with alerts.open("rb") as fh:
                    report, priors = learn_from_file(store, fh, index, labels.name)
            finally:
                index.close()
        model_report, model_version = retrain_model(store)
    finally:
        store.close()
    suggestions = suggest_tuning(priors, settings.playbooks_dir / "detectors.yml")
    path = default_suggestions_path(settings.workdir)
    write_suggestions(path, suggestions)
    data = report.as_dict() | {"rule_priors": len(priors.rules), "entity_priors": len(priors.entities),
                               "tuning_suggestions": len(suggestions), "suggestions_file": str(path),
                               "model": {"trained": model_report.trained, "examples": model_report.examples,
                                         "cv_macro_f1": model_report.cv_macro_f1, "cv_ece": model_report.cv_ece,
                                         "active_version": model_version, "why_not": model_report.why_not}}
    if as_json:
        print(json.dumps(data))
        return
    out.print(safe_cell(f"learned {data['learned']} disposition(s) {data['by_label']}; "
                        f"{data['already_learned']} already known; "
                        f"{data['rule_priors']} rule and {data['entity_priors']} entity priors; "
                        f"{len(suggestions)} tuning suggestion(s) in {path}"))
    model = data["model"]
    if model["trained"]:
        kept = "" if model["active_version"] is not None else " (not served)"
        out.print(safe_cell(f"model trained on {model['examples']} disposition(s): cross-validated macro-F1 "
                            f"{model['cv_macro_f1']:.3f}, ECE {model['cv_ece']:.3f}; serving version "
                            f"{model['active_version']}{kept}"))
    else:
        serving = f"; still serving version {model['active_version']}" if model["active_version"] else ""
        out.print(safe_cell(f"no model trained: {model['why_not']}{serving}"))
    for reason, item in data["skipped"].items():
        err.print(safe_cell(f"skipped {item['count']}: {reason}"))


@app.command("llm-server")
def llm_server(port: int = typer.Option(8080, "--port"), threads: Optional[int] = typer.Option(None, "--threads")) -> None:
    """Serve the bundled Gemma 3 270M on 127.0.0.1 as an OpenAI-compatible endpoint (needs the llm extra)."""
    from soc_agent.llm.local_server import run_server, server_command  # deferred: soc_agent.llm loads openai

    err.print(safe_cell(f"serving on http://127.0.0.1:{port}/v1 — use it with: SOC_AGENT_LLM_BASE_URL="
                        f"http://127.0.0.1:{port}/v1 SOC_AGENT_LLM_MODEL=gemma-3-270m SOC_AGENT_LLM_FOLD_SYSTEM=true "
                        f"SOC_AGENT_LLM_SCHEMA_STYLE=llama_cpp SOC_AGENT_LLM_MAX_TOKENS=400 soc-agent demo "
                        f"--reasoner llm"))
    # SIGTERM and SIGINT go on to the server, which is waited for: stopping this command stops the model.
    raise typer.Exit(run_server(server_command(port, threads)))


@app.command("edge", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def edge(ctx: typer.Context,
         log: Optional[Path] = typer.Option(None, "--log", help="sshd syslog file to follow"),
         journal: Optional[str] = typer.Option(None, "--journal", help="journald JSON export, or - for stdin"),
         state_dir: Path = typer.Option(Path("./soc-agent-edge"), "--state-dir", help="queue, cursor, policy"),
         server: Optional[str] = typer.Option(None, "--server", help="soc-agent serve URL"),
         sensor_id: str = typer.Option("edge", "--sensor-id"),
         key_file: Optional[Path] = typer.Option(None, "--key-file", help="this sensor's signing key (hex)"),
         netns: Optional[str] = typer.Option(None, "--netns", help="block inside this network namespace"),
         mode: Optional[str] = typer.Option(None, "--mode", help="shadow | enforce (default: the policy's)"),
         dry_run: bool = typer.Option(False, "--dry-run", help="judge, never touch nftables")) -> None:
    """Run the edge sensor: local sshd brute-force blocking through nftables, signed reports, shared intel.

    Compiles the guard policy (playbooks/policy.yml, data/allowlists.yml), sets up the nftables
    responder's table, then replaces this process with the lean sensor (python -m
    soc_agent.edge.sensor; further options such as --base-ttl or --from-start pass through).
    """
    if (log is None) == (journal is None):
        err.print("give exactly one of --log or --journal")
        raise typer.Exit(2)
    settings = _settings(Path("./soc-agent-work"), mode)
    state_dir.mkdir(parents=True, exist_ok=True)
    compiled = state_dir / "policy.compiled.json"
    write_compiled(compile_policy(settings.playbooks_dir / "policy.yml", settings.data_dir / "allowlists.yml",
                                  mode=mode), compiled)
    if not dry_run:
        from connectors.nftables import NftablesResponder  # deferred: the connectors stay out of --help

        with NftablesResponder(netns=netns) as responder:
            responder.setup()
    argv = [sys.executable, "-m", "soc_agent.edge.sensor", "--compiled", str(compiled), "--state-dir", str(state_dir),
            "--sensor-id", sensor_id]
    argv += ["--log", str(log)] if log is not None else ["--journal", journal]
    for flag, value in (("--server", server), ("--key-file", key_file), ("--netns", netns)):
        if value is not None:
            argv += [flag, str(value)]
    argv += ["--dry-run"] if dry_run else []
    sys.stdout.flush()
    os.execv(sys.executable, argv + list(ctx.args))


@app.command("edge-key")
def edge_key(sensor_id: str = typer.Argument(..., help="the sensor to derive a signing key for")) -> None:
    """Print a sensor's signing key (hex), derived from the master key in $SOC_AGENT_EDGE_FILE."""
    from soc_agent.runners.edge_api import EDGE_FILE_ENV, EdgeConfig  # deferred: fastapi, SQLAlchemy

    config = EdgeConfig.from_file(os.environ.get(EDGE_FILE_ENV))
    if not config.master_key:
        err.print(safe_cell(f"set {EDGE_FILE_ENV} to the edge configuration (master_key_file, sensors)"))
        raise typer.Exit(2)
    print(config.sensor_key(sensor_id).hex())


def main() -> None:  # pragma: no cover
    """Entry point for ``python -m soc_agent.cli``."""
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
