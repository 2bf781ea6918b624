"""Ingress refusals: one exception, one handler.

Every endpoint that turns a request away before it is processed (a body too
large or too slow, a bad signature, a replay, a full broker partition, HEC's
own refusals) raises :class:`Rejected`; :func:`install` registers the one
handler that answers it. The answer is the status, the body (``{"detail":
reason}``, or a protocol's own shape such as HEC's ``{"text", "code"}``) and,
for a refusal the sender should retry (429 / 503), ``Retry-After``.

:class:`Rejected` is a FastAPI ``HTTPException``, so a router included in an
app without :func:`install` (the edge endpoints on their own) still answers
with the status, ``{"detail": reason}`` and the ``Retry-After`` header.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse

__all__ = ["Rejected", "install", "rejected_response"]


class Rejected(HTTPException):
    """A request refused with ``status``; ``retry_after`` (seconds) when trying again later may work."""

    def __init__(self, status: int, reason: str, retry_after: int | None = None,
                 body: dict[str, Any] | None = None) -> None:
        super().__init__(status, reason, {"Retry-After": str(retry_after)} if retry_after is not None else None)
        self.status = status
        """The HTTP status to answer (also ``status_code``, as every ``HTTPException``)."""
        self.retry_after = retry_after
        """Seconds the sender should wait before resending; None: resending will not help."""
        self.body = body if body is not None else {"detail": reason}
        """The JSON answer: ``{"detail": reason}`` unless the protocol has its own shape."""

    def __str__(self) -> str:
        return self.detail


async def rejected_response(_request: Request, exc: Rejected) -> JSONResponse:
    """The answer to a :class:`Rejected`: its status, its body, ``Retry-After`` when it has one."""
    return JSONResponse(exc.body, status_code=exc.status, headers=exc.headers)


def install(app: FastAPI) -> None:
    """Answer every :class:`Rejected` raised under ``app`` with :func:`rejected_response`."""
    app.add_exception_handler(Rejected, rejected_response)
