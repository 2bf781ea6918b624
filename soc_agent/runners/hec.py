"""Splunk HTTP Event Collector style push: ``POST /services/collector[/event]``.

Anything that can forward to Splunk HEC (a Splunk heavy forwarder, Vector,
Fluent Bit, Cribl, an ES alert action) can send alerts here unchanged. The
body is one or more concatenated HEC envelopes::

    {"event": {...notable...}, "time": 1714557600, "sourcetype": "stash"}
    {"event": "Jan  1 00:00:01 web1 sshd[1]: Failed password for root from 192.0.2.7 port 22 ssh2"}

Each ``event`` (an object, or a string line) is triaged like one input line
with format auto-detection; an event no format recognises is dead-lettered,
as ``soc-agent triage`` would. Envelopes are all checked before any is
triaged, so a malformed batch is refused whole and the sender can resend it.

Auth is ``Authorization: Splunk <token>`` compared in constant time with
``SOC_AGENT_HEC_TOKEN``; with no token configured the endpoints answer
``403 Token disabled``. Responses use HEC's JSON body and codes:

====  ====================================  ======
code  text                                  HTTP
====  ====================================  ======
0     Success                               200
1     Token disabled                        403
2     Token is required                     401
3     Invalid authorization                 401
4     Invalid token                         403
5     No data                               400
6     Invalid data format                   400
12    Event field is required               400
13    Event field cannot be blank           400
27    Request entity too large              413
28    Request timeout                       408
====  ====================================  ======

Codes 0-13 are Splunk's; HEC documents no code for an oversize body (Splunk
itself answers a bare HTTP 413), so 27 is ours, chosen outside its range, as
is 28 (the body did not arrive within ``SOC_AGENT_BODY_TIMEOUT_S``). A body is
read through :func:`soc_agent.runners.limits.read_limited`: a declared length
over the limit is refused before reading, a chunked one at the limit.

:func:`hec_router` is the protocol alone (token, body, envelopes, answers);
what happens to the events is its ``ingest`` argument: :func:`pipeline_ingest`
triages them in this process, the broker mode queues them
(``soc_agent.runners.broker_intake``). Every refusal is a
:class:`~soc_agent.runners.errors.Rejected` carrying HEC's JSON body.
"""

from __future__ import annotations

import hmac
import json
import os
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from soc_agent.runners.errors import Rejected
from soc_agent.runners.limits import read_limited

__all__ = ["DEFAULT_MAX_BYTES", "HEC_MAX_BYTES_ENV", "HEC_TOKEN_ENV", "Ingest", "check_token", "hec_router",
           "parse_envelopes", "pipeline_ingest", "read_body", "refusal"]

HEC_TOKEN_ENV = "SOC_AGENT_HEC_TOKEN"
"""Environment variable holding the one accepted HEC token."""
HEC_MAX_BYTES_ENV = "SOC_AGENT_HEC_MAX_BYTES"
"""Environment variable capping a request body (default :data:`DEFAULT_MAX_BYTES`)."""
DEFAULT_MAX_BYTES = 1024 * 1024
"""1 MiB, the scale of Splunk's own ``max_content_length``."""

Ingest = Callable[[list[tuple[bytes, str]]], dict[str, Any]]
"""What :func:`hec_router` does with a request's (event line, sourcetype) pairs, run off the event loop.

It returns fields added to the ``Success`` answer, or raises :class:`~soc_agent.runners.errors.Rejected`."""


def refusal(http: int, code: int, text: str, retry_after: int | None = None, **extra: Any) -> Rejected:
    """A refusal in HEC's terms: HTTP status ``http``, body ``{"text": text, "code": code, **extra}``."""
    return Rejected(http, text, retry_after, body={"text": text, "code": code, **extra})


def check_token(header: str | None, expected: str | None) -> None:
    """Accept ``Authorization: Splunk <expected>`` (constant time); else a :func:`refusal` (codes 1-4)."""
    if not expected:
        raise refusal(403, 1, "Token disabled")
    if not header:
        raise refusal(401, 2, "Token is required")
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "splunk" or not token.strip():
        raise refusal(401, 3, "Invalid authorization")
    # compare_digest on bytes: constant time whatever the (attacker-chosen) length and characters.
    if not hmac.compare_digest(token.strip().encode(), expected.encode()):
        raise refusal(403, 4, "Invalid token")


async def read_body(request: Request, limit: int) -> bytes:
    """The body within ``limit`` bytes and the body deadline, else a :func:`refusal` (codes 27, 28, 6)."""
    try:
        return await read_limited(request, limit)
    except Rejected as exc:
        if exc.status == 413:
            raise refusal(413, 27, "Request entity too large") from None
        if exc.status == 408:
            raise refusal(408, 28, "Request timeout") from None
        raise refusal(400, 6, "Invalid data format") from None


def parse_envelopes(body: bytes) -> list[tuple[bytes, str]]:
    """(event line, sourcetype) per concatenated HEC envelope, or a :func:`refusal` naming the bad one.

    HEC numbers events from 0 in ``invalid-event-number``, so a sender can find the bad one.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise refusal(400, 6, "Invalid data format", **{"invalid-event-number": 0}) from None
    decoder, events, at = json.JSONDecoder(), [], 0
    while True:
        while at < len(text) and text[at] in " \t\r\n":
            at += 1
        if at >= len(text):
            break
        number = len(events)
        try:
            envelope, at = decoder.raw_decode(text, at)
        except (ValueError, RecursionError):
            raise refusal(400, 6, "Invalid data format", **{"invalid-event-number": number}) from None
        if not isinstance(envelope, dict):
            raise refusal(400, 6, "Invalid data format", **{"invalid-event-number": number})
        if "event" not in envelope:
            raise refusal(400, 12, "Event field is required", **{"invalid-event-number": number})
        event = envelope["event"]
        if event is None or event == "" or event == {} or (isinstance(event, str) and not event.strip()):
            raise refusal(400, 13, "Event field cannot be blank", **{"invalid-event-number": number})
        if isinstance(event, dict):
            line = json.dumps(event, separators=(",", ":")).encode()
        elif isinstance(event, str):
            line = event.encode()  # a raw line: a syslog record, or JSON text the forwarder left as a string
        else:
            raise refusal(400, 6, "Invalid data format", **{"invalid-event-number": number})
        sourcetype = envelope.get("sourcetype")
        events.append((line, sourcetype if isinstance(sourcetype, str) and sourcetype else "hec"))
    if not events:
        raise refusal(400, 5, "No data")
    return events


def hec_router(ingest: Ingest, token: str | None = None, max_bytes: int | None = None) -> APIRouter:
    """The HEC endpoints, handing each accepted request's events to ``ingest``.

    ``token`` and ``max_bytes`` default to ``SOC_AGENT_HEC_TOKEN`` and
    ``SOC_AGENT_HEC_MAX_BYTES``, read once when the router is built.
    """
    expected = token if token is not None else os.environ.get(HEC_TOKEN_ENV) or None
    limit = max_bytes if max_bytes is not None else int(os.environ.get(HEC_MAX_BYTES_ENV) or DEFAULT_MAX_BYTES)
    router = APIRouter()

    async def collect(request: Request) -> JSONResponse:
        """Check the token (before reading a byte of the body), parse every envelope, then ingest them all."""
        check_token(request.headers.get("authorization"), expected)
        events = parse_envelopes(await read_body(request, limit))
        extra = await run_in_threadpool(ingest, events)
        return JSONResponse({"text": "Success", "code": 0, **extra})

    for path in ("/services/collector/event", "/services/collector", "/services/collector/event/1.0"):
        router.add_api_route(path, collect, methods=["POST"])

    @router.get("/services/collector/health")
    def health() -> JSONResponse:
        """HEC's health check: always healthy while the server answers."""
        return JSONResponse({"text": "HEC is healthy", "code": 17})

    return router


def pipeline_ingest(state: Any) -> Ingest:
    """Triage in this process, on ``state`` (the server's ``App``: its ``lock`` and ``pipeline``)."""

    def triage(events: list[tuple[bytes, str]]) -> dict[str, Any]:
        with state.lock:
            # A request's case runs go through the graph together; HEC answers with no per-event results.
            for line, sourcetype in events:
                state.pipeline.take_line(line, source=f"hec:{sourcetype}"[:200])
            state.pipeline.flush_runs()
            state.pipeline.store.commit()
        return {}

    return triage
