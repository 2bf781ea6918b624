"""The FastAPI application: approval queue (JSON API and web page), ticketing webhook, metrics.

One :class:`~soc_agent.pipeline.Pipeline` per process, behind one lock (it
is single-writer); request handlers are plain functions run in the thread
pool, so they queue on the lock. Endpoints:

==========================================  =========  ==========================================
``GET  /healthz``                           none       liveness
``GET  /metrics``                           none       Prometheus text format
``GET  /api/approvals[?status=pending]``    viewer     queue items (``status=`` empty for all)
``GET  /api/approvals/{id}``                viewer     one item: case, action, blast radius, evidence
``POST /api/approvals/{id}/approve``        analyst    ``{"comment": ...}``
``POST /api/approvals/{id}/edit``           analyst    ``{"comment", "action"?, "params"?}``
``POST /api/approvals/{id}/reject``         analyst    ``{"comment": ...}``
``POST /api/approvals/expire``              lead       run expiry now (it also runs every sweep)
``GET  /api/cases/{id}``                    viewer     case, notes, evidence, comments
``POST /api/alerts``                        analyst    one alert (JSON) to triage; caller = requester
``POST /webhooks/{provider}``               HMAC       jira | servicenow | thehive (see webhooks)
``POST /services/collector[/event]``        HEC token  Splunk HEC envelopes to triage (see hec)
``GET  /ui``, ``/ui/approvals/{id}``,       cookie     the web page (sign in at ``/ui/login``)
``/ui/cases/{id}``
==========================================  =========  ==========================================

API calls carry ``Authorization: Bearer <token>``; the page keeps the token
in an HttpOnly, SameSite=Strict cookie and refuses cross-origin posts.
"""

from __future__ import annotations

import html
import json
import os
import threading
from contextlib import asynccontextmanager
from pathlib import Path
from string import Template
from typing import Any
from urllib.parse import parse_qs, urlsplit

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response

from soc_agent.config import Settings
from soc_agent.runners import metrics
from soc_agent.runners.approvals import ApprovalError, ApprovalQueue, QueuePolicy
from soc_agent.runners.auth import Identity, Role, TokenStore
from soc_agent.runners.edge_api import edge_router
from soc_agent.runners.webhooks import (
    LocalTicketSink,
    TicketPoster,
    TicketSink,
    WebhookConfig,
    WebhookHandler,
    WebhookRejected,
)

COOKIE = "soc_agent_token"
_TEMPLATES = Path(__file__).parent / "templates"
_MAX_API_BODY = 256 * 1024


def _template(name: str) -> Template:
    return Template((_TEMPLATES / name).read_text())


def _e(value: Any) -> str:
    """Escape for HTML text and attribute values; alert-derived text goes through here."""
    return html.escape("-" if value is None else str(value), quote=True)


class App:
    """What the handlers share: the one pipeline, the queue, the webhook handler, the tokens."""

    def __init__(self, settings: Settings, tokens: TokenStore, queue_policy: QueuePolicy,
                 webhook_config: WebhookConfig, sink: TicketSink) -> None:
        from soc_agent.pipeline import Pipeline  # heavy: only when a server is really built

        self.settings = settings
        self.tokens = tokens
        self.lock = threading.RLock()
        self.pipeline = Pipeline(settings)
        self.queue = ApprovalQueue(self.pipeline, queue_policy, self.lock)
        self.sink = sink
        self.poster = TicketPoster(sink, self.pipeline.store)
        self.webhooks = WebhookHandler(self.queue, webhook_config, self.poster)

    def close(self) -> None:
        """Commit and release the store and checkpointer."""
        with self.lock:
            self.pipeline.close()


def create_app(settings: Settings, *, tokens: TokenStore | None = None, queue_policy: QueuePolicy | None = None,
               webhook_config: WebhookConfig | None = None, sink: TicketSink | None = None,
               sweep_s: float | None = None) -> FastAPI:
    """The application on ``settings``' store and checkpointer.

    Unset arguments come from the environment: ``SOC_AGENT_TOKENS_FILE``,
    ``SOC_AGENT_APPROVAL_*``, ``SOC_AGENT_WEBHOOK_*``, ``SOC_AGENT_APPROVAL_SWEEP_S``
    (how often expiry runs, default 30 s).
    """
    state = App(settings, tokens or TokenStore.from_file(os.environ.get("SOC_AGENT_TOKENS_FILE")),
                queue_policy or QueuePolicy.from_env(), webhook_config or WebhookConfig.from_env(),
                sink or LocalTicketSink())
    sweep = sweep_s if sweep_s is not None else float(os.environ.get("SOC_AGENT_APPROVAL_SWEEP_S", 30))

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        stop = threading.Event()

        def sweeper() -> None:
            while not stop.wait(sweep):
                try:
                    state.queue.expire()
                except Exception:  # noqa: BLE001  (the next sweep tries again; errors are audited by resume)
                    pass

        thread = threading.Thread(target=sweeper, name="approval-expiry", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=5)
            state.close()

    app = FastAPI(title="soc-agent", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.soc = state
    from soc_agent.runners.hec import hec_router

    app.include_router(hec_router(state))
    app.include_router(edge_router(state.pipeline.store.engine, state.tokens))

    # ---- auth -------------------------------------------------------------

    def api_identity(request: Request, role: Role) -> Identity:
        header = request.headers.get("authorization", "")
        token = header[7:].strip() if header[:7].lower() == "bearer " else None
        who = state.tokens.authenticate(token)
        if who is None:
            raise HTTPException(401, "missing or unknown token", headers={"WWW-Authenticate": "Bearer"})
        if not who.at_least(role):
            raise HTTPException(403, f"{who.name} is a {who.role}; this needs {role} or higher")
        return who

    def ui_identity(request: Request) -> Identity | None:
        return state.tokens.authenticate(request.cookies.get(COOKIE))

    def same_origin(request: Request) -> bool:
        origin = request.headers.get("origin") or request.headers.get("referer")
        if not origin or origin == "null":
            return origin is None
        return urlsplit(origin).netloc == request.headers.get("host")

    async def json_body(request: Request) -> dict[str, Any]:
        raw = await request.body()
        if len(raw) > _MAX_API_BODY:
            raise HTTPException(413, "body too large")
        if not raw:
            return {}
        try:
            body = json.loads(raw)
        except ValueError:
            raise HTTPException(400, "body is not JSON") from None
        if not isinstance(body, dict):
            raise HTTPException(400, "body is not a JSON object")
        return body

    def queue_call(fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ApprovalError as exc:
            raise HTTPException(exc.status_code, str(exc)) from None

    # ---- plain endpoints ----------------------------------------------------

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/metrics")
    def metrics_endpoint() -> Response:
        with state.lock:
            state.pipeline.store.commit()
        return PlainTextResponse(metrics.render(state.pipeline.store.engine), media_type=metrics.CONTENT_TYPE)

    # ---- JSON API ---------------------------------------------------------

    @app.get("/api/approvals")
    def list_approvals(request: Request, status: str | None = "pending") -> list[dict[str, Any]]:
        api_identity(request, Role.VIEWER)
        return queue_call(state.queue.list, status or None)

    @app.post("/api/approvals/expire")
    def expire_now(request: Request) -> list[dict[str, Any]]:
        api_identity(request, Role.LEAD)
        return queue_call(state.queue.expire)

    @app.get("/api/approvals/{approval_id}")
    def show_approval(approval_id: int, request: Request) -> dict[str, Any]:
        api_identity(request, Role.VIEWER)
        return queue_call(state.queue.show, approval_id)

    # Decisions check the role inside the queue so the refused attempt is audited there;
    # a viewer is still turned away with 403.
    @app.post("/api/approvals/{approval_id}/approve")
    async def approve(approval_id: int, request: Request) -> Any:
        who = api_identity(request, Role.VIEWER)
        body = await json_body(request)
        return await _in_thread(queue_call, state.queue.approve, approval_id, who, str(body.get("comment", "")))

    @app.post("/api/approvals/{approval_id}/reject")
    async def reject(approval_id: int, request: Request) -> Any:
        who = api_identity(request, Role.VIEWER)
        body = await json_body(request)
        return await _in_thread(queue_call, state.queue.reject, approval_id, who, str(body.get("comment", "")))

    @app.post("/api/approvals/{approval_id}/edit")
    async def edit(approval_id: int, request: Request) -> Any:
        who = api_identity(request, Role.VIEWER)
        body = await json_body(request)
        params = body.get("params") or {}
        if not isinstance(params, dict):
            raise HTTPException(422, "params must be an object")
        return await _in_thread(queue_call, state.queue.edit, approval_id, who, str(body.get("comment", "")),
                                body.get("action"), params)

    @app.get("/api/cases/{case_id}")
    def show_case(case_id: str, request: Request) -> dict[str, Any]:
        api_identity(request, Role.VIEWER)
        return queue_call(state.queue.case, case_id)

    @app.post("/api/alerts")
    async def submit_alert(request: Request) -> Any:
        who = api_identity(request, Role.ANALYST)
        raw = await request.body()
        if len(raw) > state.settings.max_alert_bytes:
            raise HTTPException(413, "alert too large")

        def triage() -> list[dict[str, Any]]:
            with state.lock:
                results = state.pipeline.process_line(raw, source=f"api:{who.name}")
                state.pipeline.store.commit()
                for result in results:
                    if result.status == "pending_approval" and result.case_id:
                        state.queue.raised_by(result.case_id, who.name)
                return [json.loads(r.to_json()) for r in results]

        results = await _in_thread(triage)
        if not results:
            raise HTTPException(422, "the alert was dead-lettered (see the dead_letters table)")
        return results

    # ---- webhook ------------------------------------------------------------

    @app.post("/webhooks/{provider}")
    async def webhook(provider: str, request: Request) -> Any:
        limit = state.webhooks.config.max_bytes
        declared = request.headers.get("content-length")
        oversize = declared is not None and declared.isdigit() and int(declared) > limit
        body = bytearray()
        if not oversize:
            async for chunk in request.stream():
                body += chunk
                if len(body) > limit:
                    oversize = True
                    break
        try:
            result = await _in_thread(state.webhooks.handle, provider, dict(request.headers), bytes(body[:limit + 1]),
                                      oversize)
        except WebhookRejected as exc:
            return JSONResponse({"detail": str(exc)}, status_code=exc.status)
        return result

    # ---- web page ---------------------------------------------------------

    def page(title: str, body: str, who: Identity | None, flash: str = "", error: bool = False,
             status_code: int = 200) -> HTMLResponse:
        flash_html = f'<div class="box {"error" if error else "flash"}" id="flash">{_e(flash)}</div>' if flash else ""
        whotext = f"{_e(who.name)} ({_e(who.role)})" if who else ""
        return HTMLResponse(_template("base.html").substitute(title=_e(title), who=whotext, flash=flash_html,
                                                              body=body), status_code=status_code)

    def login_redirect() -> RedirectResponse:
        return RedirectResponse("/ui/login", status_code=303)

    @app.get("/")
    def root() -> RedirectResponse:
        return RedirectResponse("/ui", status_code=303)

    @app.get("/ui/login")
    def login_form() -> HTMLResponse:
        return page("sign in", _template("login.html").substitute(), None)

    @app.post("/ui/login")
    async def login(request: Request) -> Response:
        form = parse_qs((await request.body())[:4096].decode("utf-8", "replace"))
        token = (form.get("token") or [""])[0]
        if not same_origin(request) or state.tokens.authenticate(token) is None:
            return page("sign in", _template("login.html").substitute(), None, "unknown token", True, 401)
        response = RedirectResponse("/ui", status_code=303)
        response.set_cookie(COOKIE, token, httponly=True, samesite="strict", path="/ui")
        return response

    @app.get("/ui")
    def ui_queue(request: Request, flash: str = "") -> Response:
        who = ui_identity(request)
        if who is None:
            return login_redirect()
        rows = []
        for item in state.queue.list():
            rows.append(
                f'<tr data-id="{item["id"]}"><td><a href="/ui/approvals/{item["id"]}">{item["id"]}</a></td>'
                f'<td><a href="/ui/cases/{_e(item["case_id"])}">{_e(item["case_id"])}</a></td>'
                f'<td>{_e(item["action"])}</td><td class="tier-{_e(item["tier"])}">{_e(item["tier"])}</td>'
                f'<td>{"<br>".join(_e(r) for r in item["approval_reasons"])}</td>'
                f'<td>{_e(item["required_role"])}</td><td>{_e(item["requested_by"])}</td>'
                f'<td>{int(item["age_s"])} s</td></tr>')
        body = _template("queue.html").substitute(
            rows="\n".join(rows) or '<tr><td colspan="8">nothing is waiting</td></tr>')
        return page("approval queue", body, who, flash)

    @app.get("/ui/approvals/{approval_id}")
    def ui_item(approval_id: int, request: Request) -> Response:
        who = ui_identity(request)
        if who is None:
            return login_redirect()
        try:
            item = state.queue.show(approval_id)
        except ApprovalError as exc:
            return page("approval", "", who, str(exc), True, exc.status_code)
        form = ""
        if item["status"] == "pending" and who.at_least(Role.ANALYST):
            ttl = ""
            if "ttl_seconds" in item["params"]:
                ttl = (f'<label for="ttl">TTL in seconds (shorter is an edit)</label> '
                       f'<input id="ttl" name="ttl_seconds" type="number" min="1" '
                       f'value="{_e(item["params"]["ttl_seconds"])}">')
            form = _template("form.html").substitute(id=item["id"], ttl=ttl)
        blast = item["blast_radius"]
        body = _template("item.html").substitute(
            id=item["id"], case_id=_e(item["case_id"]), status=_e(item["status"]), action=_e(item["action"]),
            tier=_e(item["tier"]), target=_e(item["target"]), params=_e(json.dumps(item["params"])),
            blast=_e(blast.get("summary")), rollback=_e(item["rollback"] or "none (not reversible)"),
            required_role=_e(item["required_role"]), escalated=" (escalated)" if item["escalated"] else "",
            requested_by=_e(item["requested_by"]), expires_at=_e(item["expires_at"]),
            menu=_e(", ".join(m["name"] for m in item["menu"]) or "-"),
            reasons="".join(f"<li>{_e(r)}</li>" for r in item["guard_reasons"]), form=form,
            case=_case_html(item["case"]),
        )
        return page(f"approval {approval_id}", body, who)

    @app.post("/ui/approvals/{approval_id}/decide")
    async def ui_decide(approval_id: int, request: Request) -> Response:
        who = ui_identity(request)
        if who is None:
            return login_redirect()
        if not same_origin(request):
            return page("refused", "", who, "cross-origin form posts are refused", True, 403)
        form = parse_qs((await request.body())[:_MAX_API_BODY].decode("utf-8", "replace"))
        decision = (form.get("decision") or [""])[0]
        comment = (form.get("comment") or [""])[0]
        ttl_text = (form.get("ttl_seconds") or [""])[0].strip()

        def run() -> dict[str, Any]:
            if decision == "reject":
                return state.queue.reject(approval_id, who, comment)
            if decision != "approve":
                raise ApprovalError("unknown decision")
            current = state.queue.show(approval_id)["params"].get("ttl_seconds")
            if ttl_text and ttl_text.isdigit() and int(ttl_text) != current:
                return state.queue.edit(approval_id, who, comment, params={"ttl_seconds": int(ttl_text)})
            return state.queue.approve(approval_id, who, comment)

        try:
            result = await _in_thread(run)
        except ApprovalError as exc:
            return page("refused", "", who, str(exc), True, exc.status_code)
        case = state.queue.case(result["case_id"])
        flash = (f"approval {approval_id} {result['status']} by {who.name}: "
                 f"action {result['action_status'] or '-'}")
        return page(f"case {case['id']}", _case_html(case), who, flash)

    @app.get("/ui/cases/{case_id}")
    def ui_case(case_id: str, request: Request) -> Response:
        who = ui_identity(request)
        if who is None:
            return login_redirect()
        try:
            case = state.queue.case(case_id)
        except ApprovalError as exc:
            return page("case", "", who, str(exc), True, exc.status_code)
        return page(f"case {case_id}", _case_html(case), who)

    return app


def _case_html(case: dict[str, Any]) -> str:
    actions = "".join(
        f"<tr><td>{_e(a.get('name'))}</td><td>{_e(a.get('tier'))}</td><td>{_e(a.get('target'))}</td>"
        f"<td class=\"action-status\">{_e(a.get('status'))}</td><td>{_e(a.get('rollback'))}</td></tr>"
        for a in case["actions"]) or '<tr><td colspan="5">none</td></tr>'
    evidence = "".join(
        f"<tr><td>{_e(x.get('id'))}</td><td>{_e(x.get('kind'))}</td><td>{_e(x.get('weight'))}</td>"
        f"<td>{_e(x.get('source'))}</td><td>{_e(x.get('summary'))}</td></tr>"
        for x in case["evidence"]) or '<tr><td colspan="5">none</td></tr>'
    comments = "".join(
        f"<tr><td>{_e(c['created_at'])}</td><td>{_e(c['source'])}</td><td>{_e(c['author'])}</td>"
        f"<td>{_e(c['body'])}</td></tr>" for c in case["comments"]) or '<tr><td colspan="4">none</td></tr>'
    conf = f" at {case['confidence']:.2f}" if case.get("confidence") is not None else ""
    return _template("case.html").substitute(
        id=_e(case["id"]), title=_e(case["title"]), status=_e(case["status"]),
        verdict=_e(f"{case['verdict'] or '-'}{conf}"), label=_e(case["label"]), severity=_e(case["severity"]),
        summary=_e(case["summary"]), actions=actions, evidence=evidence, comments=comments,
        notes=_e(case["notes_markdown"] or "no notes yet"),
    )


async def _in_thread(fn, *args):
    """Run a blocking, lock-taking call off the event loop."""
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(fn, *args)


def serve(settings: Settings, host: str = "127.0.0.1", port: int = 8080) -> None:
    """Run the application with uvicorn until interrupted."""
    import uvicorn

    uvicorn.run(create_app(settings), host=host, port=port, log_level="info")
