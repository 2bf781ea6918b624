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
status the case actions give (404 unknown case, 409 conflict, 422 invalid),
through the server's one translation (:func:`~soc_agent.runners.api.approval_refused`).

A module-level :data:`router`: handlers use the server's ``App`` at
``request.app.state.soc`` (its ``case_actions``).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from soc_agent.runners.api import app_state, caller
from soc_agent.runners.auth import Identity, Role
from soc_agent.runners.limits import read_json_object

__all__ = ["MAX_BODY", "router"]

MAX_BODY = 64 * 1024
"""Largest request body: a 4 KiB reason or comment, even when JSON-escaped character by character."""

router = APIRouter()


@router.post("/api/cases/{case_id}/close")
async def close(case_id: str, request: Request, who: Identity = Depends(caller(Role.VIEWER))) -> Any:
    """Close the case with a disposition and a reason (the case and its alerts are labelled)."""
    body = await read_json_object(request, MAX_BODY)
    return await run_in_threadpool(app_state(request).case_actions.close, case_id, who, body.get("disposition"),
                                   body.get("reason"))


@router.post("/api/cases/{case_id}/reopen")
async def reopen(case_id: str, request: Request, who: Identity = Depends(caller(Role.VIEWER))) -> Any:
    """Reopen a closed case, with a reason."""
    body = await read_json_object(request, MAX_BODY)
    return await run_in_threadpool(app_state(request).case_actions.reopen, case_id, who, body.get("reason", ""))


@router.post("/api/cases/{case_id}/comments")
async def comment(case_id: str, request: Request, who: Identity = Depends(caller(Role.VIEWER))) -> Any:
    """Add a comment to the case."""
    body = await read_json_object(request, MAX_BODY)
    return await run_in_threadpool(app_state(request).case_actions.comment, case_id, who, body.get("text"))


@router.post("/api/cases/{case_id}/assign")
async def assign(case_id: str, request: Request, who: Identity = Depends(caller(Role.VIEWER))) -> Any:
    """Assign the case to someone."""
    body = await read_json_object(request, MAX_BODY)
    return await run_in_threadpool(app_state(request).case_actions.assign, case_id, who, body.get("assignee"))


@router.get("/api/cases/{case_id}/history")
async def history(case_id: str, request: Request, _who: Identity = Depends(caller(Role.VIEWER))) -> Any:
    """The case's history of case work (closes, reopens, comments, assignments)."""
    return await run_in_threadpool(app_state(request).case_actions.history, case_id)
