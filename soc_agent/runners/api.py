"""The JSON API: approvals, cases and alerts in; liveness and metrics.

Module-level routers that :func:`soc_agent.runners.server.create_app`
includes; handlers find the application's shared state (the server's
``App``: pipeline, queue, tokens, lock, broker intake) at
``request.app.state.soc``. The endpoints are listed in
:mod:`soc_agent.runners.server`.

This module stays light (no pipeline, no fleet): the edge API imports it
for :func:`caller`, also when it is served on its own.

Callers are identified by :func:`caller`, a FastAPI dependency shared with
the edge API: ``Authorization: Bearer <token>``, 401 without a known token,
403 below the role. Decisions take any known token and check the role inside
the queue, so a refused attempt is audited there (a viewer still gets 403).
A refused queue operation (:class:`~soc_agent.runners.approvals.ApprovalError`)
becomes its HTTP status in one place, :func:`approval_refused`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from soc_agent.runners import metrics
from soc_agent.runners.auth import Identity, Role, TokenStore, bearer_identity
from soc_agent.runners.limits import read_json_object, read_limited

if TYPE_CHECKING:  # annotations only: approvals pulls in the graph, and the server imports this module
    from soc_agent.runners.approvals import ApprovalError
    from soc_agent.runners.server import App

__all__ = ["DEAD_LETTERED", "MAX_API_BODY", "app_state", "approval_refused", "caller", "health_router", "router"]

MAX_API_BODY = 256 * 1024
"""Largest JSON body of an approval decision."""
DEAD_LETTERED = "the alert was dead-lettered (see the dead_letters table)"
"""The 422 detail for a submitted alert that did not parse or whose clock is off."""

router = APIRouter()
"""Approvals, cases, alerts and metrics: everything that needs the server's state."""
health_router = APIRouter()
"""Liveness alone, for any app (the edge endpoints served on their own include it too)."""


def app_state(request: Request) -> App:
    """The server's shared state for this request."""
    return request.app.state.soc


def caller(role: Role, tokens: TokenStore | None = None) -> Callable[[Request], Any]:
    """A FastAPI dependency: the identity of the request's bearer token, at least ``role`` (else 401 / 403).

    ``tokens``: the server's (``app.state.soc.tokens``) unless given, as the edge router does.
    """

    async def identity(request: Request) -> Identity:
        store = tokens if tokens is not None else app_state(request).tokens
        return bearer_identity(store, request.headers.get("authorization"), role)

    return identity


async def approval_refused(_request: Request, exc: ApprovalError) -> JSONResponse:
    """The answer to a refused queue or case operation: its ``status_code`` and ``{"detail": why}``."""
    return JSONResponse({"detail": str(exc)}, status_code=exc.status_code)


async def _settled(request: Request, fn: Callable[..., Any], *args: Any) -> Any:
    """Settle what queued alerts owe (a decision may be about one of them), then run ``fn`` off the loop."""
    await run_in_threadpool(app_state(request).settle)
    return await run_in_threadpool(fn, *args)


# ---- liveness and metrics ------------------------------------------------------------------------


@health_router.get("/healthz")
def healthz() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


@router.get("/metrics")
def metrics_endpoint(request: Request) -> Response:
    """The store's counters in the Prometheus text format (OpenMetrics when the scraper asks for it)."""
    state = app_state(request)
    with state.lock:
        state.pipeline.store.commit()  # the numbers include this process's last writes
    body, content_type = metrics.exposition(state.pipeline.store.engine, request.headers.get("accept"),
                                            webhook_rejected=state.webhooks.rejected_counts())
    return Response(body, headers={"Content-Type": content_type})


# ---- approvals ---------------------------------------------------------------------------------


@router.get("/api/approvals")
def list_approvals(request: Request, status: str | None = "pending",
                   _who: Identity = Depends(caller(Role.VIEWER))) -> list[dict[str, Any]]:
    """Queue items with ``status`` (default pending; empty for all)."""
    return app_state(request).queue.list(status or None)


@router.post("/api/approvals/expire")
def expire_now(request: Request, _who: Identity = Depends(caller(Role.LEAD))) -> list[dict[str, Any]]:
    """Run expiry now (it also runs on every sweep); the expired items."""
    return app_state(request).queue.expire()


@router.get("/api/approvals/{approval_id}")
def show_approval(approval_id: int, request: Request,
                  _who: Identity = Depends(caller(Role.VIEWER))) -> dict[str, Any]:
    """One item: its case, action, blast radius and evidence."""
    return app_state(request).queue.show(approval_id)


@router.post("/api/approvals/{approval_id}/approve")
async def approve(approval_id: int, request: Request, who: Identity = Depends(caller(Role.VIEWER))) -> Any:
    """Approve the item (``{"comment": ...}``); the queue checks the role and the two-person rule."""
    body = await read_json_object(request, MAX_API_BODY)
    return await _settled(request, app_state(request).queue.approve, approval_id, who, str(body.get("comment", "")))


@router.post("/api/approvals/{approval_id}/reject")
async def reject(approval_id: int, request: Request, who: Identity = Depends(caller(Role.VIEWER))) -> Any:
    """Reject the item (``{"comment": ...}``)."""
    body = await read_json_object(request, MAX_API_BODY)
    return await _settled(request, app_state(request).queue.reject, approval_id, who, str(body.get("comment", "")))


@router.post("/api/approvals/{approval_id}/edit")
async def edit(approval_id: int, request: Request, who: Identity = Depends(caller(Role.VIEWER))) -> Any:
    """Approve with changes: ``{"comment", "action"?, "params"?}`` (``params`` an object)."""
    body = await read_json_object(request, MAX_API_BODY)
    params = body.get("params") or {}
    if not isinstance(params, dict):
        raise HTTPException(422, "params must be an object")
    return await _settled(request, app_state(request).queue.edit, approval_id, who, str(body.get("comment", "")),
                          body.get("action"), params)


# ---- cases and alerts ----------------------------------------------------------------------------


@router.get("/api/cases/{case_id}")
def show_case(case_id: str, request: Request, _who: Identity = Depends(caller(Role.VIEWER))) -> dict[str, Any]:
    """One case: its notes, evidence and comments."""
    return app_state(request).queue.case(case_id)


@router.post("/api/alerts")
async def submit_alert(request: Request, who: Identity = Depends(caller(Role.ANALYST))) -> Any:
    """One alert (JSON) to triage now, its results; in broker mode queued for the fleet (202)."""
    state = app_state(request)
    raw = await read_limited(request, state.settings.max_alert_bytes)
    if state.intake is not None:
        return await run_in_threadpool(state.intake.queue_alert, raw, who)
    results = await run_in_threadpool(_triage, state, raw, who)
    if not results:
        raise HTTPException(422, DEAD_LETTERED)
    return results


def _triage(state: App, raw: bytes, who: Identity) -> list[dict[str, Any]]:
    """Triage one alert in this process; the submitter is who raised any approval it leaves pending."""
    with state.lock:
        results = state.pipeline.process_line(raw, source=f"api:{who.name}")
        state.pipeline.store.commit()
        for result in results:
            if result.status == "pending_approval" and result.case_id:
                state.queue.raised_by(result.case_id, who.name)
        return [json.loads(r.to_json()) for r in results]
