"""The signed webhook: HMAC-SHA256 over timestamp + body, verified by a receiver."""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone

import httpx
import pytest

from connectors.http import HttpConfig, make_client
from connectors.secrets import Secret
from connectors.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, WebhookResponder, sign, verify_signature
from connectors.base import ResponderError
from soc_agent.types import Entity, EntityKind, ProposedAction, Tier

NOW = datetime(2026, 11, 21, tzinfo=timezone.utc)
KEY = "whsec-shared-secret"


def _notify() -> ProposedAction:
    return ProposedAction(name="notify_analyst", tier=Tier.OBSERVE, capability="notify.send",
                          target=Entity(kind=EntityKind.IP, value="203.0.113.5"), params={"reason": "x"})


def test_notification_is_signed_over_timestamp_and_exact_body():
    received = []

    def receiver(request: httpx.Request) -> httpx.Response:
        received.append(request)
        return httpx.Response(204)
    client = make_client(HttpConfig(connector="webhook", base_url="https://hooks.example"),
                         httpx.MockTransport(receiver))
    responder = WebhookResponder(client, signing_secret=Secret(KEY), path="/soc")
    assert responder.execute(_notify(), "c1", 7, NOW) == {"notified": "webhook"}
    request = received[0]
    assert request.url.path == "/soc"
    body, ts, sig = request.content, request.headers[TIMESTAMP_HEADER], request.headers[SIGNATURE_HEADER]
    assert sig.startswith("sha256=") and verify_signature(KEY.encode(), ts, body, sig)
    assert not verify_signature(b"wrong", ts, body, sig)
    assert not verify_signature(KEY.encode(), ts, body + b" ", sig)
    payload = json.loads(body)
    assert payload["case_id"] == "c1" and payload["target"] == "ip:203.0.113.5" and payload["action_id"] == 7
    assert KEY not in body.decode() and KEY not in str(dict(request.headers))


def test_stale_timestamps_are_rejected_by_the_receiver():
    old = str(int(time.time()) - 3600)
    assert not verify_signature(b"k", old, b"{}", sign(b"k", old, b"{}"))
    assert not verify_signature(b"k", "not-a-time", b"{}", "sha256=00")


def test_a_notification_has_no_rollback():
    client = make_client(HttpConfig(connector="webhook", base_url="https://hooks.example"),
                         httpx.MockTransport(lambda r: httpx.Response(200)))
    with pytest.raises(ResponderError):
        WebhookResponder(client, signing_secret=Secret(KEY)).rollback(_notify(), "c1", NOW)
