"""The ``soc-agent`` command line."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlmodel import select

from soc_agent.config import Settings
from soc_agent.types import RunMode

app = typer.Typer(help="soc-agent: autonomous SOC triage with guarded actions and a verifiable audit trail.",
                  no_args_is_help=True, add_completion=False)
cases_app = typer.Typer(help="Inspect cases.", no_args_is_help=True)
blocks_app = typer.Typer(help="Inspect TTL'd blocks.", no_args_is_help=True)
actions_app = typer.Typer(help="Inspect and roll back actions.", no_args_is_help=True)
audit_app = typer.Typer(help="The hash-chained audit trail.", no_args_is_help=True)
approvals_app = typer.Typer(help="The analyst approval queue.", no_args_is_help=True)
app.add_typer(cases_app, name="cases")
app.add_typer(blocks_app, name="blocks")
app.add_typer(actions_app, name="actions")
app.add_typer(audit_app, name="audit")
app.add_typer(approvals_app, name="approvals")

err = Console(stderr=True)
out = Console()

WorkdirOpt = typer.Option(Path("./soc-agent-work"), "--workdir", help="store, checkpoints and notes")


def _settings(workdir: Path, mode: Optional[str] = None) -> Settings:
    return Settings.from_env(workdir=workdir, mode=RunMode(mode) if mode else None)


def _pipeline(settings: Settings):
    from soc_agent.pipeline import Pipeline  # heavy imports only for commands that triage

    return Pipeline(settings)


def _progress() -> Progress:
    return Progress(TextColumn("[bold]triage"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=err, transient=False)


@app.command()
def demo(workdir: Path = WorkdirOpt, as_json: bool = typer.Option(False, "--json", help="summary as JSON")) -> None:
    """Run the bundled labelled stream (12 incident classes, noise, duplicates) through the graph."""
    from evals.dataset import load_demo_stream

    settings = _settings(workdir)
    lines = load_demo_stream()
    pipeline = _pipeline(settings)
    reasons: Counter = Counter()
    actions: Counter = Counter()
    with _progress() as progress:
        task = progress.add_task("demo", total=len(lines))
        for result in pipeline.run_lines(lines, "demo"):
            progress.advance(task)
            if result.status in ("decided", "pending_approval") and result.decision:
                actions[(result.action, result.decision)] += 1
                for reason in result.reasons:
                    if ":" in reason and reason.split(":")[0] in ("deny", "needs_approval"):
                        reasons[reason] += 1
        progress.update(task, completed=len(lines))
    pipeline.store.commit()
    summary = pipeline.summary.as_dict(pipeline.store)
    summary["actions"] = {f"{a} ({d})": n for (a, d), n in actions.most_common()}
    summary["top_reasons"] = dict(reasons.most_common(8))
    summary["notes_dir"] = str(settings.notes_dir)
    summary["workdir"] = str(settings.workdir)
    pipeline.close()
    if as_json:
        print(json.dumps(summary))
        return
    _print_summary(summary)


def _print_summary(summary: dict) -> None:
    table = Table(title="soc-agent demo", show_header=True)
    table.add_column("what")
    table.add_column("count", justify="right")
    for key in ("alerts_in", "processed", "dead_lettered", "duplicates", "graph_runs", "cases"):
        table.add_row(key, str(summary[key]))
    for verdict, n in sorted(summary["cases_by_verdict"].items()):
        table.add_row(f"cases: {verdict}", str(n))
    for outcome, n in sorted(summary["decisions"].items()):
        table.add_row(f"decisions: {outcome}", str(n))
    out.print(table)
    if summary.get("actions"):
        actions = Table(title="actions (decision)")
        actions.add_column("action")
        actions.add_column("runs", justify="right")
        for name, n in summary["actions"].items():
            actions.add_row(name, str(n))
        out.print(actions)
    if summary.get("top_reasons"):
        reasons = Table(title="top reasons for approval or denial")
        reasons.add_column("reason")
        reasons.add_column("n", justify="right")
        for reason, n in summary["top_reasons"].items():
            reasons.add_row(reason, str(n))
        out.print(reasons)
    out.print(f"case notes: {summary['notes_dir']}   store: {summary['workdir']}")


@app.command()
def triage(
    source: str = typer.Argument(..., help="newline-delimited alerts: a file, or - for stdin"),
    workdir: Path = WorkdirOpt,
    mode: Optional[str] = typer.Option(None, "--mode", help="shadow | enforce (default: the policy's)"),
    fmt: str = typer.Option("auto", "--format", help="auto, or a format name"),
    out_file: Optional[Path] = typer.Option(None, "--out", help="write result lines here instead of stdout"),
    as_json: bool = typer.Option(False, "--json", help="print only the summary, as one JSON object"),
) -> None:
    """Triage alerts; one JSON line per processed alert, then a summary."""
    settings = _settings(workdir, mode)
    stream = sys.stdin.buffer if source == "-" else open(source, "rb")  # noqa: SIM115
    pipeline = _pipeline(settings)
    sink = open(out_file, "w") if out_file else None  # noqa: SIM115
    try:
        for result in pipeline.run_lines(stream, source, fmt):
            if sink is not None:
                sink.write(result.to_json() + "\n")
            elif not as_json:
                print(result.to_json())
        pipeline.store.commit()
        summary = pipeline.summary.as_dict(pipeline.store)
    finally:
        if sink is not None:
            sink.close()
        if stream is not sys.stdin.buffer:
            stream.close()
        pipeline.close()
    if as_json:
        print(json.dumps(summary))
    else:
        err.print(f"alerts in {summary['alerts_in']}, processed {summary['processed']}, "
                  f"dead-lettered {summary['dead_lettered']}, cases {summary['cases']}, "
                  f"decisions {summary['decisions']}")


@cases_app.command("list")
def cases_list(workdir: Path = WorkdirOpt, status: Optional[str] = typer.Option(None)) -> None:
    """List cases, newest first."""
    from soc_agent.store import CaseRow, Store

    store = Store(_settings(workdir).db_url)
    table = Table()
    for col in ("case", "class", "status", "verdict", "conf", "action", "decision", "alerts", "dups"):
        table.add_column(col)
    with store.reader() as session:
        query = select(CaseRow).order_by(CaseRow.updated_at.desc())
        if status:
            query = query.where(CaseRow.status == status)
        for c in session.exec(query):
            table.add_row(c.id, c.incident_class or "-", c.status, c.verdict or "-",
                          f"{c.confidence:.2f}" if c.confidence is not None else "-", c.action or "-",
                          c.decision or "-", str(c.alert_count), str(c.duplicate_count))
    out.print(table)


@cases_app.command("show")
def cases_show(case_id: str, workdir: Path = WorkdirOpt) -> None:
    """Print a case's notes (markdown)."""
    from soc_agent.store import NoteRow, Store

    store = Store(_settings(workdir).db_url)
    with store.reader() as session:
        note = session.get(NoteRow, case_id)
    if note is None:
        err.print(f"no notes for case {case_id!r}")
        raise typer.Exit(1)
    print(note.markdown)


@blocks_app.command("list")
def blocks_list(workdir: Path = WorkdirOpt, all_: bool = typer.Option(False, "--all", help="include lifted")) -> None:
    """Active blocks and other containments with their expiry (expired ones are lifted first)."""
    from soc_agent.audit import AuditLog
    from soc_agent.responders import ActionExecutor, LocalResponder
    from soc_agent.store import ContainmentRow, Store

    settings = _settings(workdir)
    store = Store(settings.db_url)
    key = settings.audit_hmac_key.encode() if settings.audit_hmac_key else None
    ActionExecutor(store, AuditLog(store.engine, key), [LocalResponder(store)]).expire()
    table = Table()
    for col in ("effect", "target", "active", "action", "expires_at"):
        table.add_column(col)
    with store.reader() as session:
        for row in session.exec(select(ContainmentRow)):
            if row.active or all_:
                table.add_row(row.effect, row.target, str(row.active), str(row.action_id),
                              row.expires_at.isoformat() if row.expires_at else "-")
    out.print(table)


@actions_app.command("list")
def actions_list(workdir: Path = WorkdirOpt) -> None:
    """Every action with its status."""
    from soc_agent.store import ActionRow, Store

    store = Store(_settings(workdir).db_url)
    table = Table()
    for col in ("id", "case", "action", "tier", "target", "status", "rollback"):
        table.add_column(col)
    with store.reader() as session:
        for row in session.exec(select(ActionRow).order_by(ActionRow.id)):
            table.add_row(str(row.id), row.case_id, row.name, row.tier, row.target_value or "-", row.status,
                          row.rollback or "-")
    out.print(table)


@actions_app.command("rollback")
def actions_rollback(action_id: int, workdir: Path = WorkdirOpt, by: str = typer.Option("cli", "--by")) -> None:
    """Undo an executed action through its responder (audited)."""
    from soc_agent.audit import AuditLog
    from soc_agent.responders import ActionExecutor, LocalResponder, ResponderError
    from soc_agent.store import Store

    settings = _settings(workdir)
    store = Store(settings.db_url)
    key = settings.audit_hmac_key.encode() if settings.audit_hmac_key else None
    executor = ActionExecutor(store, AuditLog(store.engine, key), [LocalResponder(store)])
    try:
        row = executor.rollback(action_id, by=by)
    except ResponderError as exc:
        err.print(f"cannot roll back: {exc}")
        raise typer.Exit(1) from None
    out.print(f"action {row.id} ({row.name} on {row.target_value}) rolled back")


@audit_app.command("verify")
def audit_verify(workdir: Path = WorkdirOpt) -> None:
    """Exit 0 when the audit chain is intact; 1 naming the first bad record otherwise."""
    from soc_agent.audit import verify
    from soc_agent.store.engine import make_engine

    settings = _settings(workdir)
    key = settings.audit_hmac_key.encode() if settings.audit_hmac_key else None
    result = verify(make_engine(settings.db_url), key)
    if result.ok:
        out.print(f"audit intact: {result.reason}")
        return
    err.print(f"audit BROKEN: {result.reason}")
    raise typer.Exit(1)


@approvals_app.command("list")
def approvals_list(workdir: Path = WorkdirOpt) -> None:
    """Pending approval items."""
    from soc_agent.store import ApprovalRow, Store

    store = Store(_settings(workdir).db_url)
    table = Table()
    for col in ("id", "case", "action", "tier", "reasons"):
        table.add_column(col)
    with store.reader() as session:
        for row in session.exec(select(ApprovalRow).where(ApprovalRow.status == "pending")):
            reasons = [r for r in json.loads(row.reasons) if r.startswith("needs_approval")]
            table.add_row(str(row.id), row.case_id, row.action, row.tier, "; ".join(reasons))
    out.print(table)


def _decide_approval(approval_id: int, approved: bool, by: str, comment: str, workdir: Path) -> None:
    from soc_agent.store import ApprovalRow

    settings = _settings(workdir)
    pipeline = _pipeline(settings)
    row = pipeline.store.session.get(ApprovalRow, approval_id)
    if row is None or row.status != "pending":
        err.print(f"approval {approval_id} is not pending")
        pipeline.close()
        raise typer.Exit(1)
    state = pipeline.resume(row.thread_id, approved, by, comment)
    pipeline.close()
    decision = state.get("decision")
    out.print(f"approval {approval_id}: {'approved' if approved else 'rejected'} by {by}; "
              f"action {state.get('action_status')} ({decision.outcome if decision else '-'})")


@approvals_app.command("approve")
def approvals_approve(approval_id: int, by: str = typer.Option(..., "--by"), comment: str = "",
                      workdir: Path = WorkdirOpt) -> None:
    """Approve a pending action; the guard is checked again before it runs."""
    _decide_approval(approval_id, True, by, comment, workdir)


@approvals_app.command("reject")
def approvals_reject(approval_id: int, by: str = typer.Option(..., "--by"), comment: str = "",
                     workdir: Path = WorkdirOpt) -> None:
    """Reject a pending action; it is recorded, not run."""
    _decide_approval(approval_id, False, by, comment, workdir)


@app.command("eval")
def eval_cmd(
    workdir: Path = typer.Option(Path("./soc-agent-eval"), "--workdir"),
    out_file: Path = typer.Option(Path("eval-results.json"), "--out", help="where the JSON results go"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Score the agent on the labelled demo stream: per-class precision/recall, macro-F1, actions, guardrails."""
    from evals.runner import run_eval

    results = run_eval(_settings(workdir))
    out_file.write_text(json.dumps(results, indent=2))
    if as_json:
        print(json.dumps(results))
        return
    table = Table(title="verdicts by class")
    for col in ("label", "precision", "recall", "f1", "support"):
        table.add_column(col)
    for label, row in results["per_label"].items():
        table.add_row(label, f"{row['precision']:.3f}", f"{row['recall']:.3f}", f"{row['f1']:.3f}",
                      str(row["support"]))
    out.print(table)
    out.print(f"macro-F1 {results['macro_f1']:.3f} · action agreement {results['action_agreement']:.3f} · "
              f"guardrail violations {results['guardrail_violations']} · results in {out_file}")


def main() -> None:  # pragma: no cover
    """Entry point for ``python -m soc_agent.cli``."""
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
