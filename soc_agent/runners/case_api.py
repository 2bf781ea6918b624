"""Case work over HTTP: close, reopen, comment, assign, and the case's history.

Endpoints (``Authorization: Bearer <token>``, the tokens file of ``soc-agent serve``)::

    POST /api/cases/{id}/close     {"disposition": "false_positive", "reason": "..."}
    POST /api/cases/{id}/reopen    {"reason": "..."}
    POST /api/cases/{id}/comments  {"text": "..."}
    POST /api/cases/{id}/assign    {"assignee": "..."}
    GET  /api/cases/{id}/history

Any known token reaches the changing endpoints so that a viewer's attempt is
refused (403) and audited inside :class:`~soc_agent.runners.case_actions.CaseActions`,
as the approval API does; a missing or unknown token is 401. Bodies are read
through :func:`~soc_agent.runners.limits.read_limited`; refusals carry the
status the case actions give (404 unknown case, 409 conflict, 422 invalid).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request

from soc_agent.runners.approvals import ApprovalError
from soc_agent.runners.auth import Identity, Role, bearer_identity
from soc_agent.runners.case_actions import CaseActions
from soc_agent.runners.limits import body_timeout_s, read_json_object

__all__ = ["case_router"]

MAX_BODY = 64 * 1024
"""Largest request body: a 4 KiB reason or comment, even when JSON-escaped character by character."""


def case_router(state) -> APIRouter:
    """The case-work routes on the server's one pipeline and lock (``state``: the server's ``App``)."""
    router = APIRouter()
    actions = CaseActions(state.pipeline, state.lock, state.queue)
    timeout_s = body_timeout_s()

    def caller(request: Request, role: Role = Role.VIEWER) -> Identity:
        return bearer_identity(state.tokens, request.headers.get("authorization"), role)

    async def body_of(request: Request) -> dict[str, Any]:
        return await read_json_object(request, MAX_BODY, timeout_s)

    def call(fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ApprovalError as exc:
            raise HTTPException(exc.status_code, str(exc)) from None

    async def run(fn, *args) -> Any:
        from starlette.concurrency import run_in_threadpool

        return await run_in_threadpool(call, fn, *args)

    @router.post("/api/cases/{case_id}/close")
    async def close(case_id: str, request: Request) -> Any:
        who = caller(request)
        body = await body_of(request)
        return await run(actions.close, case_id, who, body.get("disposition"), body.get("reason"))

    @router.post("/api/cases/{case_id}/reopen")
    async def reopen(case_id: str, request: Request) -> Any:
        who = caller(request)
        body = await body_of(request)
        return await run(actions.reopen, case_id, who, body.get("reason", ""))

    @router.post("/api/cases/{case_id}/comments")
    async def comment(case_id: str, request: Request) -> Any:
        who = caller(request)
        body = await body_of(request)
        return await run(actions.comment, case_id, who, body.get("text"))

    @router.post("/api/cases/{case_id}/assign")
    async def assign(case_id: str, request: Request) -> Any:
        who = caller(request)
        body = await body_of(request)
        return await run(actions.assign, case_id, who, body.get("assignee"))

    @router.get("/api/cases/{case_id}/history")
    async def history(case_id: str, request: Request) -> Any:
        caller(request, Role.VIEWER)
        return await run(actions.history, case_id)

    return router
