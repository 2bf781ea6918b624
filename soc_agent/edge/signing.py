"""Request signing between edge sensors and the server: HMAC-SHA256, per-sensor key.

The signed string is ``METHOD\\nPATH?QUERY\\nTIMESTAMP\\nNONCE\\nSHA256(BODY)``;
headers ``X-Edge-Sensor``, ``X-Edge-Timestamp`` (Unix seconds),
``X-Edge-Nonce`` (128 random bits, hex) and ``X-Edge-Signature`` (hex) carry
it. The server rejects a missing or wrong signature, a timestamp outside
``max_skew_s`` and any nonce it has already accepted from that sensor.

Per-sensor keys are derived from the server's master key
(``HMAC(master, "edge-sensor:" + sensor_id)``), so the server stores no
per-sensor secret and a leaked sensor key exposes only that sensor.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time

SENSOR, TIMESTAMP, NONCE, SIGNATURE = "x-edge-sensor", "x-edge-timestamp", "x-edge-nonce", "x-edge-signature"


def derive_key(master: bytes, sensor_id: str) -> bytes:
    """The sensor's signing key."""
    return hmac.new(master, f"edge-sensor:{sensor_id}".encode(), hashlib.sha256).digest()


def signature(key: bytes, method: str, path: str, timestamp: str, nonce: str, body: bytes) -> str:
    """Hex HMAC-SHA256 over the canonical request."""
    msg = "\n".join((method.upper(), path, timestamp, nonce, hashlib.sha256(body).hexdigest())).encode()
    return hmac.new(key, msg, hashlib.sha256).hexdigest()


def sign(key: bytes, sensor_id: str, method: str, path: str, body: bytes = b"",
         now: float | None = None) -> dict[str, str]:
    """Headers for one request (``path`` includes the query string)."""
    ts = str(int(now if now is not None else time.time()))
    nonce = os.urandom(16).hex()
    return {"X-Edge-Sensor": sensor_id, "X-Edge-Timestamp": ts, "X-Edge-Nonce": nonce,
            "X-Edge-Signature": signature(key, method, path, ts, nonce, body)}
