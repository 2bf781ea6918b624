"""Signed upstream reports with an on-disk, bounded, in-order queue.

Every judged event goes through ``submit`` (never blocks the caller) into a
SQLite file (embedded, no server): rows are numbered in arrival order and sent
oldest first, in batches, signed (``soc_agent.edge.signing``); a batch is
deleted only after the server acknowledged it, so a server that is down, or a
response lost on the way back, loses nothing (the server deduplicates by
event id). Past ``max_events`` the oldest rows are shed and counted; the
count travels with the next batch so the server knows what it missed.
"""

from __future__ import annotations

import json
import os
import queue
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

EVENTS_PATH = "/edge/v1/events"


class SignedClient:
    """Signed requests to the server over one kept-alive connection (http.client: no ssl unless https)."""

    def __init__(self, server: str, sensor_id: str, key: bytes, timeout_s: float = 5.0) -> None:
        self.server, self.sensor_id, self.key, self.timeout_s = server, sensor_id, key, timeout_s
        self._conn = None

    def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        """(status, body) of one signed request; transport errors raise OSError / HTTPException."""
        # deferred: the edge sensor's memory: http.client, and hmac in signing (OpenSSL, ~4 MiB), only once
        # reports flow
        import http.client

        from soc_agent.edge.signing import sign

        if self._conn is None:
            url = urlsplit(self.server)
            cls = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
            self._conn = cls(url.hostname, url.port, timeout=self.timeout_s)
        headers = sign(self.key, self.sensor_id, method, path, body)
        headers["Content-Type"] = "application/json"
        try:
            self._conn.request(method, path, body=body or None, headers=headers)
            resp = self._conn.getresponse()
            return resp.status, resp.read()
        except (OSError, http.client.HTTPException):
            self._conn.close()
            self._conn = None
            raise


class Reporter:
    """Queue and ship events; ``start()`` the thread, ``stop()`` it."""

    def __init__(self, path: Path, server: str | None, sensor_id: str, key: bytes, *,
                 max_events: int = 100_000, batch: int = 500, timeout_s: float = 5.0) -> None:
        self.path, self.server, self.sensor_id, self.key = Path(path), server, sensor_id, key
        self.max_events, self.batch, self.timeout_s = max_events, batch, timeout_s
        self._inbox: queue.SimpleQueue = queue.SimpleQueue()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT)")
        self._db.execute("CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT)")
        self.epoch = self._meta("epoch") or self._set_meta("epoch", os.urandom(4).hex())
        self.shed = int(self._meta("shed") or 0)
        self.sent = 0
        self.failures = 0
        self.last_error: str | None = None
        self._backoff = 0.0
        self._next_try = 0.0
        self._closed: int | None = None
        self.client = SignedClient(server, sensor_id, key, timeout_s) if server else None

    # ---- producer side ------------------------------------------------------------------------

    def submit(self, event: dict[str, Any]) -> None:
        """Queue one event (thread-safe, O(1), no I/O on the caller's thread)."""
        self._inbox.put(event)
        self._wake.set()

    # ---- queue --------------------------------------------------------------------------------

    def _meta(self, k: str) -> str | None:
        row = self._db.execute("SELECT v FROM meta WHERE k = ?", (k,)).fetchone()
        return row[0] if row else None

    def _set_meta(self, k: str, v: str) -> str:
        self._db.execute("INSERT OR REPLACE INTO meta (k, v) VALUES (?, ?)", (k, v))
        return v

    def _persist(self) -> None:
        rows = []
        while True:
            try:
                rows.append((json.dumps(self._inbox.get_nowait(), separators=(",", ":")),))
            except queue.Empty:
                break
        if not rows:
            return
        with self._db:
            self._db.execute("BEGIN")
            self._db.executemany("INSERT INTO events (body) VALUES (?)", rows)
            excess = self.pending() - self.max_events
            if excess > 0:
                self._db.execute("DELETE FROM events WHERE seq IN (SELECT seq FROM events ORDER BY seq LIMIT ?)",
                                 (excess,))
                self.shed += excess
                self._set_meta("shed", str(self.shed))

    def pending(self) -> int:
        """Events on disk not yet acknowledged by the server."""
        if self._closed is not None:
            return self._closed
        return self._db.execute("SELECT count(*) FROM events").fetchone()[0]

    def stats(self) -> dict[str, Any]:
        """Queue counters."""
        return {"pending": self.pending(), "sent": self.sent, "shed": self.shed, "send_failures": self.failures,
                "last_error": self.last_error}

    # ---- sending ------------------------------------------------------------------------------

    def _send_batch(self) -> bool:
        """Send the oldest batch; True when something was acknowledged."""
        rows = self._db.execute("SELECT seq, body FROM events ORDER BY seq LIMIT ?", (self.batch,)).fetchall()
        if not rows:
            return False
        events = []
        for seq, body in rows:
            event = json.loads(body)
            event["id"] = f"{self.sensor_id}:{self.epoch}:{seq}"
            event["seq"] = seq
            events.append(event)
        body = json.dumps({"sensor": self.sensor_id, "shed_total": self.shed, "events": events},
                          separators=(",", ":")).encode()
        status, _ = self.request("POST", EVENTS_PATH, body)
        if status != 200:
            raise OSError(f"server answered {status}")
        self._db.execute("DELETE FROM events WHERE seq <= ?", (rows[-1][0],))
        self.sent += len(rows)
        return True

    def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        """One signed request to the server."""
        return self.client.request(method, path, body)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(0.5)
            self._wake.clear()
            self._cycle()

    def _cycle(self) -> None:
        self._persist()
        if not self.server or time.monotonic() < self._next_try:
            return
        try:
            while self._send_batch():
                self._persist()
            self._backoff = 0.0
        except Exception as exc:  # noqa: BLE001  (any failure: keep the queue, retry later)
            self.failures += 1
            self.last_error = str(exc)[:200]
            self._backoff = min(max(self._backoff * 2, 0.5), 5.0)
            self._next_try = time.monotonic() + self._backoff

    def start(self) -> None:
        """Start the sender thread."""
        self._thread = threading.Thread(target=self._loop, name="edge-reporter", daemon=True)
        self._thread.start()

    def stop(self, drain_s: float = 0.0) -> None:
        """Persist what is queued, try to send for up to ``drain_s``, and stop."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._persist()
        deadline = time.monotonic() + drain_s
        while self.server and drain_s and self.pending() and time.monotonic() < deadline:
            self._next_try = 0.0
            self._cycle()
            if self.pending():
                time.sleep(0.1)
        self._closed = self.pending()
        self._db.close()
