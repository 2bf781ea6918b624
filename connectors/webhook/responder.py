"""Generic webhook responder: ``notify_analyst`` as a signed JSON POST.

Request: ``POST <base_url><path>`` with a JSON body ``{"event":
"soc_agent.notification", "case_id", "action", "target", "params",
"action_id", "sent_at"}`` and two headers:

* ``X-SOC-Agent-Timestamp``: Unix seconds when it was signed;
* ``X-SOC-Agent-Signature``: ``sha256=`` + hex HMAC-SHA256, keyed with the
  shared secret, over ``<timestamp>.`` followed by the exact body bytes.

A receiver recomputes the HMAC over the bytes it received, compares in
constant time (``verify_signature``) and rejects timestamps older than a
few minutes, which stops replays. ``options.signing_secret`` names the
shared secret (resolved like every other secret); it is never sent.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import datetime
from typing import Any

from connectors.http import ConnectorClient
from connectors.secrets import Secret
from connectors.base import ResponderError
from soc_agent.types import ProposedAction

TIMESTAMP_HEADER = "X-SOC-Agent-Timestamp"
SIGNATURE_HEADER = "X-SOC-Agent-Signature"


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """The signature header value for ``body`` sent at ``timestamp``."""
    return "sha256=" + hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def verify_signature(secret: bytes, timestamp: str, body: bytes, signature: str, *, max_age_s: float = 300.0,
                     now: float | None = None) -> bool:
    """Receiver side: a valid, fresh signature (constant-time comparison)."""
    try:
        age = (time.time() if now is None else now) - float(timestamp)
    except ValueError:
        return False
    if abs(age) > max_age_s:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


class WebhookResponder:
    """Carries out ``notify.send`` by posting a signed notification."""

    capabilities = frozenset({"notify.send"})

    def __init__(self, client: ConnectorClient, *, signing_secret: Secret, name: str = "webhook",
                 path: str = "") -> None:
        self.name = name
        self.client = client
        self.path = path
        self._secret = signing_secret

    def execute(self, action: ProposedAction, case_id: str, action_id: int, now: datetime) -> dict[str, Any]:
        """Post the notification; a 2xx answer means delivered."""
        if action.name != "notify_analyst":
            raise ResponderError(f"{self.name} cannot run {action.name}")
        body = json.dumps({
            "event": "soc_agent.notification", "case_id": case_id, "action": action.name,
            "target": action.target.key if action.target else None, "params": action.params,
            "action_id": action_id, "sent_at": now.isoformat(),
        }, sort_keys=True, default=str).encode()
        timestamp = str(int(time.time()))
        self.client.call_raw("POST", self.path, content=body, permission="webhook receiver", headers={
            "Content-Type": "application/json", TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(self._secret.reveal().encode(), timestamp, body)})
        return {"notified": self.name}

    def verify(self, action: ProposedAction) -> bool:
        """Delivery cannot be observed afterwards; a repeat notification beats a lost one."""
        return False

    def rollback(self, action: ProposedAction, case_id: str, now: datetime) -> dict[str, Any]:
        """A notification cannot be unsent."""
        raise ResponderError(f"{self.name}: a notification cannot be rolled back")

    def expire(self, now: datetime) -> list[tuple[str, str, int | None]]:
        """Nothing expires."""
        return []
