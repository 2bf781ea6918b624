"""The decision point over HTTP.

``POST /v1/decide``                     one request (the wire contract) -> one decision
``GET  /v1/approvals``                  pending approvals (the call shown as data)
``GET  /v1/approvals/{id}``             one approval's status (pending, approved, rejected, used, expired, unknown)
``POST /v1/approvals/{id}/approve``     a person lets the one identical retry through
``POST /v1/approvals/{id}/reject``
``POST /v1/lift/{agent_or_session}``    a lead lifts an isolation
``GET  /healthz``

Authentication: ``Authorization: Bearer <token>`` against a tokens file
(``soc_agent.runners.auth.TokenStore``). With no token store, ``/v1/decide``
is open (bind it to loopback, the default of ``pdp serve``) and the
endpoints that change anything refuse: nobody can approve anonymously.
Approvals need an analyst or lead, lifting an isolation a lead; the audit
names the token's identity. Bodies are read through ``read_limited``
(64 KiB); a body that is not the contract is a 422 naming the field.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, Response

from soc_agent.pdp.approvals import ApprovalError, pending_rows
from soc_agent.pdp.engine import PDP, RequestError
from soc_agent.runners.auth import Identity, Role, TokenStore, bearer_identity
from soc_agent.runners.limits import read_limited

MAX_BODY = 64 * 1024
"""Largest request body accepted (bytes)."""

_JSON_HEADERS = {"content-type": "application/json"}


def create_app(pdp: PDP, tokens: TokenStore | None = None) -> FastAPI:
    """The FastAPI app serving ``pdp``; ``tokens`` authenticates callers (None: decide only, loopback)."""
    app = FastAPI(title="soc-agent decision point", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.pdp = pdp

    def identity(request: Request, needed: Role | None) -> Identity | None:
        if tokens is None:
            if needed is None:
                return None
            raise HTTPException(403, "this server has no tokens file: approvals and lifts are refused")
        return bearer_identity(tokens, request.headers.get("authorization"), needed)

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        audit = pdp.audit
        return {"ok": audit is None or audit.error is None, "sessions": len(pdp.sessions),
                "policy": pdp.policy.source}

    @app.post("/v1/decide")
    async def decide(request: Request) -> Response:
        identity(request, None)
        raw = await read_limited(request, MAX_BODY)
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            return JSONResponse({"detail": "bad request: the body is not JSON"}, status_code=422)
        if not isinstance(body, dict):
            return JSONResponse({"detail": "bad request: the body is a JSON object (agent, tool, session, ...)"},
                                status_code=422)
        try:
            decision = pdp.decide(body)
        except RequestError as exc:
            return JSONResponse({"detail": str(exc)}, status_code=422)
        return Response(decision.model_dump_json(), headers=_JSON_HEADERS)

    @app.get("/v1/approvals")
    async def approvals(request: Request) -> list[dict[str, Any]]:
        identity(request, Role.VIEWER)
        return await asyncio.to_thread(pending_approvals, pdp)

    @app.get("/v1/approvals/{approval_id}")
    async def approval_status(request: Request, approval_id: str) -> dict[str, Any]:
        # Whoever may ask for decisions may poll the approval a decision named (a status, never the call).
        identity(request, None)
        return {"id": approval_id, "status": await asyncio.to_thread(pdp.approval_status, approval_id)}

    async def _decide(request: Request, approval_id: str, approved: bool) -> dict[str, Any]:
        who = identity(request, Role.ANALYST)
        try:
            return await asyncio.to_thread(pdp.approve, approval_id, who.name, approved=approved)
        except ApprovalError as exc:
            raise HTTPException(409, str(exc)) from None

    @app.post("/v1/approvals/{approval_id}/approve")
    async def approve(request: Request, approval_id: str) -> dict[str, Any]:
        return await _decide(request, approval_id, True)

    @app.post("/v1/approvals/{approval_id}/reject")
    async def reject(request: Request, approval_id: str) -> dict[str, Any]:
        return await _decide(request, approval_id, False)

    @app.post("/v1/lift/{key}")
    async def lift(request: Request, key: str) -> dict[str, Any]:
        who = identity(request, Role.LEAD)
        lifted = await asyncio.to_thread(pdp.lift, key, who.name)
        if not lifted:
            raise HTTPException(404, f"{key!r} is not isolated")
        return {"lifted": key, "by": who.name}

    return app


def pending_approvals(pdp: PDP) -> list[dict[str, Any]]:
    """Pending approvals: from the store when there is one, else from memory (ids only)."""
    if pdp.store is None:
        now = pdp.clock()
        return [{"id": a.id, "call_hash": a.call_hash, "status": a.status, "expires_at": a.expires_at}
                for a in list(pdp.approvals._by_id.values()) if a.status == "pending" and not a.expired(now)]
    return pending_rows(pdp.store.engine, pdp.clock())


