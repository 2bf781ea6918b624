"""Incremental, signed pull of the federated watchlist; each change applied through the local guard.

The server numbers every watchlist change; the sensor asks for changes
``since`` the last number it applied (kept in a small file, so a restart
resumes where it stopped) and applies them in order: ``block`` (pre-emptive,
still judged by the local guard: never-block ranges, allowlist, rate limit,
TTL cap), ``remove`` (a retraction or expiry: lifts a block the watchlist
caused, or drops a shared allowlist entry), ``allow`` / ``unallow`` (shared
allowlist entries). ``apply`` returns what it did; a result starting with
``error`` is counted as a failure (``failed``, ``last_failure``), never as applied.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from soc_agent.edge.reporter import SignedClient

WATCHLIST_PATH = "/edge/v1/watchlist"


class IntelPuller:
    """Pull ``/edge/v1/watchlist?since=N`` every ``interval_s`` and hand entries to ``apply``."""

    def __init__(self, server: str, sensor_id: str, key: bytes, cursor_file: Path,
                 apply: Callable[[dict[str, Any]], str], interval_s: float = 10.0) -> None:
        self.cursor_file = Path(cursor_file)
        self.apply, self.interval_s = apply, interval_s
        self.cursor = int(self.cursor_file.read_text()) if self.cursor_file.exists() else 0
        self._client = SignedClient(server, sensor_id, key)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.applied = 0
        """Changes applied successfully."""
        self.failed = 0
        """Changes the sensor could not apply (each reported upstream by the sensor)."""
        self.last_failure: str | None = None
        self.last_error: str | None = None
        """The last pull that failed (server unreachable, refused); None after a good pull."""

    def pull_once(self) -> int:
        """Fetch and apply every change since the cursor; returns how many were applied successfully."""
        done = 0
        while True:
            status, body = self._client.request("GET", f"{WATCHLIST_PATH}?since={self.cursor}")
            if status != 200:
                raise OSError(f"watchlist pull answered {status}: {body[:200]!r}")
            page = json.loads(body)
            for entry in page["entries"]:
                result = str(self.apply(entry))
                self.cursor = max(self.cursor, int(entry["version"]))
                if result.startswith("error"):
                    self.failed += 1
                    self.last_failure = (f"version {entry.get('version')} {entry.get('action')} "
                                         f"{entry.get('value')}: {result}")[:300]
                else:
                    done += 1
            self.cursor = max(self.cursor, int(page.get("cursor", self.cursor)))
            tmp = self.cursor_file.with_suffix(".tmp")
            tmp.write_text(str(self.cursor))
            tmp.replace(self.cursor_file)
            if not page.get("more"):
                break
        self.applied += done
        return done

    def stats(self) -> dict[str, Any]:
        """Counters for the sensor's summary."""
        return {"cursor": self.cursor, "applied": self.applied, "failed": self.failed,
                "last_failure": self.last_failure, "last_error": self.last_error}

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.pull_once()
                self.last_error = None
            except Exception as exc:  # noqa: BLE001  (offline: keep the last list, try again)
                self.last_error = str(exc)[:200]
            self._stop.wait(self.interval_s)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="edge-intel", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
