"""Bounded request bodies: the one way every endpoint reads a body.

:func:`read_limited` enforces a size limit *before* reading (a declared
``Content-Length`` over the limit is refused with 413 at once, nothing read),
counts bytes while streaming otherwise (a chunked body is refused with 413 as
soon as the bytes received pass the limit), and gives the whole body a
deadline (a client that trickles, or never sends what it declared, gets 408).
Nothing past the limit is kept: memory per request is at most the limit plus
the one network chunk that crossed it, whatever the client sends. Refusals
are :class:`~soc_agent.runners.errors.Rejected`.

``SOC_AGENT_BODY_TIMEOUT_S`` sets the default deadline (seconds, default 30).
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

from fastapi import Request

from soc_agent.runners.errors import Rejected

__all__ = ["BODY_TIMEOUT_ENV", "body_timeout_s", "read_json_object", "read_limited"]

BODY_TIMEOUT_ENV = "SOC_AGENT_BODY_TIMEOUT_S"
_DEFAULT_TIMEOUT_S = 30.0


def body_timeout_s() -> float:
    """The deadline for reading one request body, from ``SOC_AGENT_BODY_TIMEOUT_S``."""
    try:
        value = float(os.environ.get(BODY_TIMEOUT_ENV) or _DEFAULT_TIMEOUT_S)
    except ValueError:
        return _DEFAULT_TIMEOUT_S
    return value if value > 0 else _DEFAULT_TIMEOUT_S


async def read_limited(request: Request, limit: int, timeout_s: float | None = None) -> bytes:
    """The request body, at most ``limit`` bytes, read within ``timeout_s`` seconds (default: the setting).

    Raises :class:`~soc_agent.runners.errors.Rejected`: 400 for a malformed
    ``Content-Length``, 413 for a body over ``limit``, 408 for one too slow.
    """
    timeout = body_timeout_s() if timeout_s is None else timeout_s
    declared = request.headers.get("content-length")
    if declared is not None:
        declared = declared.strip()
        if not (declared.isascii() and declared.isdigit()):
            raise Rejected(400, "malformed Content-Length")
        if int(declared) > limit:
            raise Rejected(413, f"body over {limit} bytes")
    body = bytearray()

    async def pump() -> None:
        async for chunk in request.stream():
            if len(body) + len(chunk) > limit:  # counted before keeping it: a chunked body has no length up front
                raise Rejected(413, f"body over {limit} bytes")
            body.extend(chunk)

    try:
        await asyncio.wait_for(pump(), timeout)
    except TimeoutError:  # asyncio.TimeoutError is TimeoutError from Python 3.11
        raise Rejected(408, f"body not received within {timeout:g} s") from None
    return bytes(body)


async def read_json_object(request: Request, limit: int, timeout_s: float | None = None) -> dict[str, Any]:
    """A bounded body (:func:`read_limited`) as a JSON object; an empty body is ``{}``; else 400."""
    raw = await read_limited(request, limit, timeout_s)
    if not raw:
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise Rejected(400, "body is not JSON") from None
    if not isinstance(body, dict):
        raise Rejected(400, "body is not a JSON object")
    return body
