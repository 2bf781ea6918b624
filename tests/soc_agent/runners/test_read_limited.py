"""``read_limited`` and ``read_json_object`` on their own: the limit is checked before and while reading."""

from __future__ import annotations

import asyncio

import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient
from starlette.requests import Request as StarletteRequest

from soc_agent.runners.errors import Rejected, install
from soc_agent.runners.limits import read_json_object, read_limited

LIMIT = 10


def _request(chunks: list[bytes], headers: dict[str, str] | None = None) -> tuple[StarletteRequest, list[int]]:
    """A request whose body arrives in ``chunks``; the list counts the chunks the reader asked for."""
    asked = [0]

    async def receive() -> dict:
        asked[0] += 1
        if asked[0] > len(chunks):
            raise AssertionError("read past the end of the body")
        return {"type": "http.request", "body": chunks[asked[0] - 1], "more_body": asked[0] < len(chunks)}

    raw_headers = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    scope = {"type": "http", "method": "POST", "path": "/", "headers": raw_headers, "query_string": b""}
    return StarletteRequest(scope, receive), asked


def _read(chunks: list[bytes], headers: dict[str, str] | None = None, timeout_s: float = 5) -> bytes:
    request, _ = _request(chunks, headers)
    return asyncio.run(read_limited(request, LIMIT, timeout_s))


def test_a_body_up_to_the_limit_is_returned_whole():
    assert _read([b"12345", b"67890"]) == b"1234567890"
    assert _read([b""]) == b""


def test_a_declared_length_over_the_limit_is_413_without_reading_a_byte():
    request, asked = _request([b"x" * 11], {"Content-Length": "11"})
    with pytest.raises(Rejected) as err:
        asyncio.run(read_limited(request, LIMIT, 5))
    assert err.value.status == 413 and asked[0] == 0


def test_a_malformed_declared_length_is_400():
    for value in ("ten", "-1", "1e3", " "):
        with pytest.raises(Rejected) as err:
            _read([b"x"], {"Content-Length": value})
        assert err.value.status == 400, value


def test_an_undeclared_body_stops_being_read_at_the_chunk_that_passes_the_limit():
    request, asked = _request([b"abcd"] * 100)  # 400 bytes offered, no Content-Length
    with pytest.raises(Rejected) as err:
        asyncio.run(read_limited(request, LIMIT, 5))
    assert err.value.status == 413
    assert asked[0] == 3  # 4 + 4 kept, the third chunk passes 10: nothing after it is asked for


def test_a_body_that_does_not_arrive_in_time_is_408():
    async def never(_self=None) -> dict:
        await asyncio.sleep(60)
        return {}

    scope = {"type": "http", "method": "POST", "path": "/", "headers": [], "query_string": b""}
    with pytest.raises(Rejected) as err:
        asyncio.run(read_limited(StarletteRequest(scope, never), LIMIT, 0.05))
    assert err.value.status == 408


def test_a_json_object_body_is_read_and_anything_else_is_400():
    def json_of(raw: bytes) -> dict:
        request, _ = _request([raw])
        return asyncio.run(read_json_object(request, 100, 5))

    assert json_of(b"") == {}
    assert json_of(b'{"comment": "ok"}') == {"comment": "ok"}
    for bad, why in ((b"{nope", "body is not JSON"), (b"[1]", "body is not a JSON object"),
                     (b"null", "body is not a JSON object")):
        with pytest.raises(Rejected) as err:
            json_of(bad)
        assert (err.value.status, str(err.value)) == (400, why)


def test_an_endpoint_answers_its_refusals_with_their_status():
    app = FastAPI()
    install(app)

    @app.post("/echo")
    async def echo(request: Request) -> dict:
        return {"got": (await read_limited(request, LIMIT)).decode()}

    with TestClient(app) as client:
        assert client.post("/echo", content=b"0123456789").json() == {"got": "0123456789"}
        over = client.post("/echo", content=b"01234567890")
        assert over.status_code == 413 and over.json() == {"detail": "body over 10 bytes"}
        streamed = client.post("/echo", content=iter([b"0123", b"4567", b"89ab"]))  # chunked: no length
        assert streamed.status_code == 413
