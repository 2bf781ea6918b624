"""``soc-agent pdp``: the decision point's command line.

``serve``    the HTTP decision point (uvicorn)
``decide``   one request JSON (file or -) -> the decision JSON
``test``     table-driven policy tests, like ``opa test`` (exit 1 on a failure)
``replay``   re-decide the audited calls under a candidate policy: what would change
``approvals``/``approve``/``reject``   the pending approvals of a workdir
``lift``     lift an isolation (audited, with who)

``mcp-proxy`` is registered on ``pdp_app`` by ``soc_agent.pdp.mcp_proxy`` (imported at the end).
Bad input is one line on stderr, exit 2, nothing created.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.table import Table

from soc_agent.config import Settings
from soc_agent.config_file import ConfigError, read_yaml
from soc_agent.terminal import make_console, safe_cell, safe_text

pdp_app = typer.Typer(help="The decision point for other AI agents' tool calls (the guard as a service).",
                      no_args_is_help=True, add_completion=False)

err = make_console(stderr=True)
out = make_console()

PolicyOpt = typer.Option(None, "--policy", help="policy file (default: playbooks/pdp-policy.yml)")
WorkdirOpt = typer.Option(None, "--workdir", help="store, approvals and audit (default: memory only)")


def _fail(message: str, code: int = 2) -> NoReturn:
    err.print(safe_cell(message), soft_wrap=True)
    raise typer.Exit(code)


def _policy(path: Path | None):
    """The policy at ``path`` (default: the shipped one). A ``PolicyError`` reaches the CLI's root group, which
    prints its ``file:line`` lines and exits 2."""
    from soc_agent.pdp.policy import SHIPPED_POLICY, load_policy  # deferred: CEL, not for --help

    return load_policy(path or SHIPPED_POLICY)


def _existing_workdir(workdir: Path) -> Path:
    settings = Settings.from_env(workdir=workdir)
    if settings.database_url is None and not (settings.workdir / "soc-agent.db").is_file():
        _fail(f"no soc-agent workdir at {settings.workdir} (no soc-agent.db there)")
    return workdir


def _engine(policy_path: Path | None, workdir: Path | None):
    # deferred: the engine loads SQLAlchemy, CEL and the injection detector's package (openai): not for --help
    from soc_agent.pdp.audit import open_workdir, restore_isolations
    from soc_agent.pdp.engine import PDP

    policy = _policy(policy_path)
    if workdir is None:
        return PDP(policy)
    store, audit = open_workdir(workdir)
    engine = PDP(policy, store=store, audit=audit)
    restore_isolations(engine)
    return engine


@pdp_app.command("serve")
def serve(policy: Path | None = PolicyOpt, workdir: Path | None = WorkdirOpt,
          host: str = typer.Option("127.0.0.1", "--host"), port: int = typer.Option(8181, "--port"),
          tokens_file: Path | None = typer.Option(None, "--tokens", envvar="SOC_AGENT_TOKENS_FILE",
                                                     help="tokens file: who may decide, approve and lift")) -> None:
    """Serve POST /v1/decide (and approvals, lifts, /healthz)."""
    # deferred: uvicorn and fastapi only to serve
    import uvicorn

    from soc_agent.pdp.http import create_app
    from soc_agent.runners.auth import TokenStore

    # A bad tokens file is a TokenFileError (a ConfigError): the CLI's root group prints it at its line.
    tokens = TokenStore.from_file(tokens_file) if tokens_file is not None else None
    engine = _engine(policy, workdir)
    try:
        uvicorn.run(create_app(engine, tokens), host=host, port=port, log_level="warning", access_log=False)
    finally:
        engine.close()


@pdp_app.command("decide")
def decide(source: str = typer.Argument(..., help="request JSON file, or - for stdin"),
           policy: Path | None = PolicyOpt, workdir: Path | None = WorkdirOpt) -> None:
    """Decide one request and print the decision JSON."""
    from soc_agent.pdp.engine import RequestError  # deferred: the engine (see _engine), not for --help

    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text()
        body = json.loads(text)
    except (OSError, UnicodeDecodeError) as exc:
        _fail(f"{source}: cannot read: {exc}")
    except ValueError as exc:
        _fail(f"{source}: not JSON: {exc}")
    if not isinstance(body, dict):
        _fail(f"{source}: a request is a JSON object (agent, tool, session, ...)")
    engine = _engine(policy, workdir)
    try:
        decision = engine.decide(body)
    except RequestError as exc:
        _fail(f"{source}: {exc}")
    finally:
        engine.close()
    print(json.dumps(decision.to_dict(), indent=2))


# ---- policy tests --------------------------------------------------------------------------


class CaseError(ConfigError):
    """A case file that cannot be read or run; a file problem names ``file:line``."""


def _merge(defaults: dict[str, Any], request: dict[str, Any]) -> dict[str, Any]:
    merged = {k: v for k, v in defaults.items()}
    for key, value in request.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


def _check(decision, expect: Any) -> list[str]:
    """What differs between a decision and a step's ``expect`` (a decision name or a mapping)."""
    if isinstance(expect, str):
        expect = {"decision": expect}
    if not isinstance(expect, dict):
        raise CaseError("expect is a decision name or a mapping (decision, level, remove_permissions, reason)")
    wrong = []
    if "decision" in expect and decision.decision != expect["decision"]:
        wrong.append(f"decision {decision.decision}, expected {expect['decision']}")
    if "level" in expect and decision.risk.level != expect["level"]:
        wrong.append(f"level {decision.risk.level}, expected {expect['level']}")
    if "remove_permissions" in expect and \
            sorted(decision.obligations.remove_permissions) != sorted(expect["remove_permissions"]):
        wrong.append(f"remove_permissions {decision.obligations.remove_permissions}, "
                     f"expected {expect['remove_permissions']}")
    if "rule" in expect and not any(f"rule {expect['rule']}:" in r or r.endswith(f"rule {expect['rule']}")
                                    for r in decision.reasons):
        wrong.append(f"rule {expect['rule']} did not decide (reasons: {decision.reasons})")
    if "signal" in expect and expect["signal"] not in {c.signal for c in decision.risk.contributions}:
        wrong.append(f"signal {expect['signal']} did not fire")
    return wrong


def run_case(policy, case: dict[str, Any]) -> list[str]:
    """Run one case (its steps in one fresh engine and session); the failures, [] when it passes."""
    from soc_agent.pdp.engine import PDP, RequestError  # deferred: the engine (see _engine), not for --help

    if not isinstance(case, dict) or not isinstance(case.get("steps"), list) or not case["steps"]:
        raise CaseError("a case is a mapping with a non-empty steps: list")
    clock = [1_800_000_000.0]
    engine = PDP(policy, clock=lambda: clock[0], intel=_case_intel(case.get("watchlist", [])))
    defaults = case.get("defaults") or {}
    last = None
    failures = []
    for index, step in enumerate(case["steps"], start=1):
        if not isinstance(step, dict):
            raise CaseError(f"step {index} is not a mapping")
        clock[0] += float(step.get("advance_s", 0))
        if "approve" in step or "reject" in step:
            approved = "approve" in step
            target = step.get("approve", step.get("reject"))
            approval_id = last.approval_id if target in (True, "last") and last is not None else target
            if not approval_id:
                failures.append(f"step {index}: no approval to decide (the previous decision asked for none)")
                continue
            try:
                engine.approve(str(approval_id), str(step.get("by", "policy-test")), approved=approved)
            except Exception as exc:  # noqa: BLE001 - reported as the case's failure
                failures.append(f"step {index}: {exc}")
            continue
        if set(step) == {"advance_s"}:
            continue
        if "lift" in step:
            engine.lift(str(step["lift"]), str(step.get("by", "policy-test")))
            continue
        if "request" not in step or "expect" not in step:
            raise CaseError(f"step {index} needs request and expect (or approve, reject, lift, advance_s)")
        try:
            last = engine.decide(_merge(defaults, step["request"]))
        except RequestError as exc:
            raise CaseError(f"step {index}: {exc}") from None
        failures += [f"step {index}: {w}" for w in _check(last, step["expect"])]
    return failures


def _case_intel(values: list[str]):
    listed = frozenset(values or [])
    return lambda tenant, host: host in listed


def load_cases(folder: Path) -> list[tuple[Path, dict[str, Any]]]:
    """Every case file (``*.yml``, ``*.yaml``, ``*.json``) under ``folder``, sorted by path."""
    if not folder.is_dir():
        raise CaseError(f"{folder}: not a folder")
    files = sorted(p for p in folder.rglob("*") if p.suffix in (".yml", ".yaml", ".json") and p.is_file())
    if not files:
        raise CaseError(f"{folder}: no case files (*.yml, *.yaml, *.json)")
    cases = []
    for path in files:
        data = read_yaml(path, CaseError).data
        if isinstance(data, dict) and "cases" in data:
            shared = data.get("defaults") or {}
            for case in data["cases"] or []:
                if isinstance(case, dict):
                    # The file's defaults, then the case's own, then each request.
                    case = {**case, "defaults": _merge(shared, case.get("defaults") or {}),
                            "watchlist": case.get("watchlist", data.get("watchlist", []))}
                cases.append((path, case))
        else:
            cases.append((path, data))
    return cases


@pdp_app.command("test")
def test(policy_path: Path = typer.Argument(..., help="the policy under test"),
         cases_dir: Path = typer.Option(..., "--cases", help="folder of case files"),
         verbose: bool = typer.Option(False, "-v", "--verbose", help="print passing cases too")) -> None:
    """Run table-driven policy tests: PASS/FAIL per case, exit 1 when any fails."""
    policy = _policy(policy_path)
    try:
        cases = load_cases(cases_dir)
    except CaseError as exc:
        _fail(str(exc))
    passed = failed = 0
    for path, case in cases:
        name = f"{path.name}: {case.get('name', '?') if isinstance(case, dict) else '?'}"
        try:
            failures = run_case(policy, case)
        except CaseError as exc:
            _fail(f"{path}: {exc}")
        if failures:
            failed += 1
            out.print(safe_cell(f"FAIL: {name}"), style="red")
            for line in failures:
                out.print(safe_cell(f"  {line}"))
        else:
            passed += 1
            if verbose:
                out.print(safe_cell(f"PASS: {name}"))
    total = passed + failed
    out.print(safe_cell(("PASS" if not failed else "FAIL") + f": {passed}/{total}"))
    if failed:
        raise typer.Exit(1)


# ---- replay, approvals, lift ----------------------------------------------------------------


@pdp_app.command("replay")
def replay(policy: Path = typer.Option(..., "--policy", help="the candidate policy"),
           since: str | None = typer.Option(None, "--since", help="only count calls since (7d, 12h, ISO time)"),
           workdir: Path = typer.Option(Path("./soc-agent-work"), "--workdir"),
           as_json: bool = typer.Option(False, "--json", help="the report as JSON"),
           limit: int = typer.Option(50, "--limit", help="flips printed (all with --json)")) -> None:
    """Re-decide the audited calls under a candidate policy: counts before/after and the calls that flip."""
    # deferred: the audit and the store (SQLAlchemy, cryptography), not for --help
    from soc_agent.pdp.audit import logged_records, parse_since
    from soc_agent.pdp.audit import replay as run_replay
    from soc_agent.store.engine import make_engine

    candidate = _policy(policy)
    cutoff = None
    if since is not None:
        try:
            cutoff = parse_since(since, time.time())
        except ValueError as exc:
            _fail(str(exc))
    settings = Settings.from_env(workdir=_existing_workdir(workdir))
    engine = make_engine(settings.db_url)
    report = run_replay(logged_records(engine), candidate, since=cutoff)
    if as_json:
        print(json.dumps(report.to_dict(), indent=2))
        return
    summary = report.to_dict()
    table = Table(title=safe_text(f"{report.decisions} decisions replayed under {policy}"))
    for col in ("decision", "logged", "candidate"):
        table.add_column(col)
    for name in summary["before"]:
        table.add_row(safe_cell(name), safe_cell(summary["before"][name]), safe_cell(summary["after"][name]))
    out.print(table)
    out.print(safe_cell(f"{len(report.flips)} decisions flip"))
    for flip in report.flips[:limit]:
        out.print(safe_cell(f"  seq {flip.seq} agent {flip.agent} session {flip.session} {flip.tool}: "
                            f"{flip.before} -> {flip.after} ({'; '.join(flip.reasons)})"))


def _workdir_engine(workdir: Path, policy: Path | None):
    return _engine(policy, _existing_workdir(workdir))


def print_pending_calls(engine) -> None:
    """The decision point's pending approvals as a table (nothing when there are none): each call as escaped data."""
    from soc_agent.pdp.approvals import pending_rows  # deferred: SQLAlchemy, not for --help

    rows = pending_rows(engine)
    if not rows:
        return
    table = Table(title="tool calls awaiting approval (soc-agent pdp approve ID --by NAME)")
    for col in ("id", "agent", "session", "tool", "arguments", "why", "expires"):
        table.add_column(col)
    for row in rows:
        args = json.dumps(row["call"].get("tool", {}).get("args", {}), ensure_ascii=False)
        table.add_row(*(safe_cell(v) for v in (row["id"], row["agent_id"], row["session_id"], row["tool"],
                                              args[:300], "; ".join(row["reasons"])[:300], row["expires_at"])))
    out.print(table)


@pdp_app.command("approvals")
def approvals(workdir: Path = typer.Option(Path("./soc-agent-work"), "--workdir")) -> None:
    """Pending approvals of the decision point (the call shown as escaped data)."""
    from soc_agent.store.engine import make_engine  # deferred: SQLAlchemy, not for --help

    settings = Settings.from_env(workdir=_existing_workdir(workdir))
    engine = make_engine(settings.db_url)
    print_pending_calls(engine)
    engine.dispose()


def _decide_approval(approval_id: str, by: str, workdir: Path, approved: bool) -> None:
    from soc_agent.pdp.approvals import ApprovalError  # deferred: SQLAlchemy, not for --help

    if not by.strip():
        _fail("--by names the person deciding")
    engine = _workdir_engine(workdir, None)
    try:
        engine.approve(approval_id, by, approved=approved)
    except ApprovalError as exc:
        _fail(str(exc), 1)
    finally:
        engine.close()
    out.print(safe_cell(f"approval {approval_id} {'approved' if approved else 'rejected'} by {by}"))


@pdp_app.command("approve")
def approve(approval_id: str, by: str = typer.Option(..., "--by", help="who approves (audited)"),
            workdir: Path = typer.Option(Path("./soc-agent-work"), "--workdir")) -> None:
    """Approve one pending call: its identical retry runs once."""
    _decide_approval(approval_id, by, workdir, True)


@pdp_app.command("reject")
def reject(approval_id: str, by: str = typer.Option(..., "--by", help="who rejects (audited)"),
           workdir: Path = typer.Option(Path("./soc-agent-work"), "--workdir")) -> None:
    """Reject one pending call."""
    _decide_approval(approval_id, by, workdir, False)


@pdp_app.command("lift")
def lift(agent_or_session: str, by: str = typer.Option(..., "--by", help="who lifts it (audited)"),
         policy: Path | None = PolicyOpt,
         workdir: Path = typer.Option(Path("./soc-agent-work"), "--workdir")) -> None:
    """Lift an isolation recorded in a workdir's audit (for a running server: POST /v1/lift/ID)."""
    if not by.strip():
        _fail("--by names the person lifting the isolation")
    # Isolations live in the serving process's memory, rebuilt from the audit at start: the audited lift
    # here is what replay and a restarted server honour.
    engine = _workdir_engine(workdir, policy)
    lifted = engine.lift(agent_or_session, by)
    engine.close()
    if not lifted:
        _fail(f"{agent_or_session!r} is not isolated", 1)
    out.print(safe_cell(f"{agent_or_session} lifted by {by}"))


try:  # the MCP proxy registers its own command on pdp_app
    import soc_agent.pdp.mcp_proxy  # noqa: F401
except ModuleNotFoundError as exc:  # pragma: no cover - only while that module does not exist
    if exc.name != "soc_agent.pdp.mcp_proxy":
        raise
