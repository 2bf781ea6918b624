"""Signed checkpoints of the audit chain, kept outside the database.

A hash chain alone cannot show that its newest records were deleted, nor that
someone with write access recomputed it after an edit. A checkpoint is the
chain's ``count`` (records) and ``head`` (hash of record ``count``), with a
timestamp and a sequence number, signed with an Ed25519 key the database does
not hold, one JSON object per line of an append-only file::

    {"v":1,"seq":7,"ts":"2025-...Z","count":1792,"head":"<sha256 hex>","key_id":"<16 hex>","sig":"<base64>"}

The signature is over ``"soc-agent audit checkpoint v1\\n" + canonical_json``
of every field but ``sig`` (see ``soc_agent/audit_bundle_verify.py``, which
defines the format and is the standalone verifier ``audit export`` ships).

Files (the checkpoint folder is the workdir: the SQLite database's folder):

* ``audit-checkpoints.jsonl`` - the checkpoints.
* ``audit-signing.pub``       - the public key (PEM), beside them.
* ``audit-signing.key``       - the private key (PEM, mode 0600), created on first
  use unless ``SOC_AGENT_AUDIT_SIGNING_KEY_FILE`` names another path. In
  production it belongs on another volume or in a secret store mounted
  read-only: whoever can read it can forge checkpoints, and whoever can write
  both the database and this folder can still cut the newest checkpoints,
  which is what a witness is for.

Witness: with ``SOC_AGENT_AUDIT_WITNESS_URL`` set, every signed checkpoint is
also POSTed as JSON to that URL (another host: a log collector, a ticketing
system's webhook) by a background thread (:class:`Witness`): a bounded queue,
a bounded timeout (``SOC_AGENT_AUDIT_WITNESS_TIMEOUT_S``, default 2 s), no
retries (the next checkpoint covers more), failures logged and counted, never
waited for on the hot path. ``audit verify --witness FILE`` holds the chain
and the local checkpoint file to the copy the witness kept (one checkpoint
per line, as received): a checkpoint the witness has and the local file does
not, or has differently, means the local checkpoints were cut or rewritten.

When: ``AuditLog`` hands every committed head to ``AuditCheckpoints.committed``,
which signs (about 50 µs) and appends one line at the first commit, then when
``every`` records or ``max_interval_s`` seconds have passed since the last
one, and at ``flush()`` (``AuditLog.checkpoint()``, the log's end, process
exit). No fsync on the hot path; ``flush()`` fsyncs.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import Engine, create_engine, inspect

from soc_agent import audit_bundle_verify as fmt
from soc_agent.audit import records, verify

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from soc_agent.config import Settings

__all__ = ["CHECKPOINTS_FILE", "KEY_ENV", "KEY_FILE", "PUBLIC_KEY_FILE", "WITNESS_ENV", "WITNESS_TIMEOUT_ENV",
           "AuditCheckpoints", "Witness", "WorkdirVerdict", "checkpoint_dir", "export_bundle", "verify_workdir"]

CHECKPOINTS_FILE = "audit-checkpoints.jsonl"
PUBLIC_KEY_FILE = "audit-signing.pub"
KEY_FILE = "audit-signing.key"
KEY_ENV = "SOC_AGENT_AUDIT_SIGNING_KEY_FILE"
WITNESS_ENV = "SOC_AGENT_AUDIT_WITNESS_URL"
"""An http(s) URL each signed checkpoint is POSTed to (unset: no witness)."""
WITNESS_TIMEOUT_ENV = "SOC_AGENT_AUDIT_WITNESS_TIMEOUT_S"
"""Seconds one POST to the witness may take (default 2)."""

log = logging.getLogger(__name__)


def _sqlite_file(url_database: str | None) -> Path | None:
    if not url_database or url_database == ":memory:" or url_database.startswith("file:"):
        return None
    return Path(url_database)


def checkpoint_dir(db_url: str, workdir: Path) -> Path:
    """Where a store's checkpoints live: the SQLite file's folder, else the workdir."""
    if db_url.startswith("sqlite:///"):
        db = _sqlite_file(db_url.removeprefix("sqlite:///"))
        if db is not None:
            return db.parent
    return workdir


def _utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


class AuditCheckpoints:
    """Signs committed chain heads into ``<folder>/audit-checkpoints.jsonl``; thread-safe.

    Several processes may share the file (a fleet on one host): a write takes
    an exclusive ``flock``, numbers its line after the last one, and is skipped
    when the last line already covers as many records.
    """

    def __init__(self, folder: Path, key_file: Path | None = None, every: int = 256,
                 max_interval_s: float = 5.0, witness: Witness | None | str = "env") -> None:
        """``witness``: where signed checkpoints are also sent; ``"env"``: ``Witness.from_env()``."""
        self.folder = Path(folder)
        self.path = self.folder / CHECKPOINTS_FILE
        self.public_key_path = self.folder / PUBLIC_KEY_FILE
        self.key_file = Path(key_file) if key_file else self.folder / KEY_FILE
        self.every = every
        self.max_interval_s = max_interval_s
        self._lock = threading.Lock()
        self._key: Ed25519PrivateKey | None = None
        self._key_id = ""
        self._pending: tuple[int, str] | None = None
        self._signed_count = 0
        self._signed_at = float("-inf")
        self._broken = False
        self.witness: Witness | None = Witness.from_env() if witness == "env" else witness  # type: ignore[assignment]

    @classmethod
    def for_engine(cls, engine: Engine) -> "AuditCheckpoints | None":
        """The default for a store: beside a SQLite file, else in ``$SOC_AGENT_WORKDIR`` if set, else none."""
        key_file = os.environ.get(KEY_ENV) or None
        if engine.dialect.name == "sqlite":
            db = _sqlite_file(engine.url.database)
            return cls(db.parent, key_file) if db is not None else None
        workdir = os.environ.get("SOC_AGENT_WORKDIR")
        return cls(Path(workdir), key_file) if workdir else None

    @classmethod
    def for_settings(cls, settings: "Settings") -> "AuditCheckpoints":
        """The checkpoints of ``settings``' store (for callers that build their own ``AuditLog``)."""
        return cls(checkpoint_dir(settings.db_url, settings.workdir), settings.audit_signing_key_file)

    # ---- writing -------------------------------------------------------------------------

    def committed(self, count: int, head: str) -> None:
        """A commit made the chain ``count`` records long ending in ``head``; sign it if one is due."""
        now = time.monotonic()
        with self._lock:
            if self._pending is None or count > self._pending[0]:
                self._pending = (count, head)
            if count - self._signed_count < self.every and now - self._signed_at < self.max_interval_s:
                return
            self._write_pending(fsync=False)

    def flush(self) -> dict[str, Any] | None:
        """Sign the newest committed head now if it is not signed yet (and fsync); the checkpoint written.

        With a witness, also waits (at most its timeout) for the checkpoints queued for it to be sent.
        """
        with self._lock:
            written = self._write_pending(fsync=True)
        if self.witness is not None:
            self.witness.drain()
        return written

    def _write_pending(self, fsync: bool) -> dict[str, Any] | None:
        if self._pending is None or self._pending[0] <= self._signed_count or self._broken:
            return None
        count, head = self._pending
        try:
            written = self._append(count, head, fsync)
        except Exception:  # noqa: BLE001 - the records are committed; a checkpoint failing must not undo that
            log.exception("audit checkpoint not written to %s; checkpoints disabled for this process", self.path)
            self._broken = True
            return None
        self._signed_count, self._signed_at = count, time.monotonic()
        if written is not None and self.witness is not None:
            self.witness.send(written)
        return written

    def _append(self, count: int, head: str, fsync: bool) -> dict[str, Any] | None:
        key = self._signing_key()
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            last, torn = _last_checkpoint(fd)
            if last is not None and last.get("count", -1) >= count:
                return None  # another writer already signed as much
            checkpoint = {"v": fmt.CHECKPOINT_VERSION, "seq": (last["seq"] + 1) if last else 1, "ts": _utc_now(),
                          "count": count, "head": head, "key_id": self._key_id}
            checkpoint["sig"] = base64.b64encode(key.sign(fmt.checkpoint_message(checkpoint))).decode()
            line = ("\n" if torn else "") + json.dumps(checkpoint, separators=(",", ":")) + "\n"
            os.write(fd, line.encode())
            if fsync:
                os.fsync(fd)
            return checkpoint
        finally:
            os.close(fd)  # releases the flock

    def _signing_key(self) -> Ed25519PrivateKey:
        if self._key is None:
            self._key = _load_or_create_key(self.key_file)
            public = self._key.public_key()
            self._key_id = fmt.key_id(public)
            pem = _public_pem(public)
            if not self.public_key_path.exists():
                self.folder.mkdir(parents=True, exist_ok=True)
                tmp = self.public_key_path.with_suffix(f".tmp{os.getpid()}")
                tmp.write_bytes(pem)
                tmp.replace(self.public_key_path)
            elif self.public_key_path.read_bytes() != pem:
                log.error("%s is not the public key of %s: `audit verify` will report it", self.public_key_path,
                          self.key_file)
        return self._key


class Witness:
    """Sends signed checkpoints to an HTTP endpoint off this host, from one background thread.

    ``send`` only queues (at most ``max_queue``; past that the oldest is
    dropped and counted), so signing never waits on the network. Each POST
    carries one checkpoint as JSON and has ``timeout_s``; an answer other than
    2xx, or no answer, is logged and counted in ``stats`` and not retried.
    """

    def __init__(self, url: str, timeout_s: float = 2.0, max_queue: int = 1000) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{WITNESS_ENV} must be an http(s) URL")
        self.url = url
        self.where = f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}"
        """The URL without credentials, path or query: what logs may show."""
        self.timeout_s = timeout_s
        self.max_queue = max_queue
        self.stats = {"sent": 0, "failed": 0, "dropped": 0}
        """Checkpoints the witness accepted, that failed (logged), and that were dropped from a full queue."""
        self._queue: deque[dict[str, Any]] = deque()
        self._busy = 0
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    @classmethod
    def from_env(cls) -> Witness | None:
        """The witness ``SOC_AGENT_AUDIT_WITNESS_URL`` names, or None; a bad URL is logged and ignored."""
        url = os.environ.get(WITNESS_ENV, "").strip()
        if not url:
            return None
        try:
            return cls(url, float(os.environ.get(WITNESS_TIMEOUT_ENV) or 2.0))
        except ValueError as exc:
            log.error("audit witness disabled: %s", exc)
            return None

    def send(self, checkpoint: dict[str, Any]) -> None:
        """Queue ``checkpoint`` for the witness; returns at once."""
        with self._cond:
            if len(self._queue) >= self.max_queue:
                self._queue.popleft()
                self.stats["dropped"] += 1
                log.warning("audit witness %s is behind: oldest queued checkpoint dropped", self.where)
            self._queue.append(checkpoint)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="audit-witness", daemon=True)
                self._thread.start()
            self._cond.notify()

    def drain(self, timeout_s: float | None = None) -> bool:
        """Wait until everything queued was sent or failed (at most ``timeout_s``, default one POST's timeout
        per queued checkpoint, capped at 10 s); True when nothing is left."""
        with self._cond:
            limit = timeout_s if timeout_s is not None else min(10.0, self.timeout_s * (len(self._queue) + 1))
            return self._cond.wait_for(lambda: not self._queue and not self._busy, limit)

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: bool(self._queue))
                checkpoint = self._queue.popleft()
                self._busy += 1
            try:
                ok = self._post(checkpoint)
            finally:
                with self._cond:
                    self._busy -= 1
                    self.stats["sent" if ok else "failed"] += 1
                    self._cond.notify_all()

    def _post(self, checkpoint: dict[str, Any]) -> bool:
        body = json.dumps(checkpoint, separators=(",", ":")).encode()
        request = urllib.request.Request(self.url, data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:  # http(s) only: checked in __init__
                if 200 <= response.status < 300:
                    return True
                status = response.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        except (OSError, ValueError) as exc:  # refused, unreachable, timed out, TLS
            log.warning("audit checkpoint %s not sent to witness %s: %s", checkpoint.get("seq"), self.where,
                        type(exc).__name__)
            return False
        log.warning("audit checkpoint %s not accepted by witness %s: HTTP %s", checkpoint.get("seq"), self.where,
                    status)
        return False


def _public_pem(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def _load_or_create_key(path: Path) -> Ed25519PrivateKey:
    """Load the PEM private key at ``path``, creating it (mode 0600) when there is none."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, pem)
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)  # fails if another process created the key first: theirs wins
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} is not an Ed25519 private key")
    if path.stat().st_mode & 0o077:
        log.warning("audit signing key %s is readable by group or others; chmod 600 it", path)
    return key


def _last_checkpoint(fd: int) -> tuple[dict[str, Any] | None, bool]:
    """The last parseable checkpoint in the file, and whether the file ends in a torn line."""
    size = os.fstat(fd).st_size
    if size == 0:
        return None, False
    start = max(0, size - 8192)
    tail = os.pread(fd, size - start, start).decode("utf-8", errors="replace")
    torn = not tail.endswith("\n")
    lines = tail.splitlines()
    if start > 0:
        lines = lines[1:]  # may start mid-line
    for text in reversed(lines):
        try:
            checkpoint = json.loads(text)
        except ValueError:
            continue
        if isinstance(checkpoint, dict) and isinstance(checkpoint.get("seq"), int):
            return checkpoint, torn
    return None, torn


# ---- verifying a workdir --------------------------------------------------------------------


@dataclass
class WorkdirVerdict:
    """``audit verify``'s outcome: ``status`` is intact, broken, nothing (nothing to verify) or unverifiable."""

    status: str
    message: str
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "intact"

    @property
    def exit_code(self) -> int:
        return {"intact": 0, "broken": 1, "nothing": 2, "unverifiable": 3}[self.status]


def open_store_readonly(settings: "Settings") -> Engine | str:
    """An engine on the existing store, or why there is none; creates nothing (no file, no tables)."""
    url = settings.db_url
    if url.startswith("sqlite:///"):
        db = _sqlite_file(url.removeprefix("sqlite:///"))
        if db is not None and not db.is_file():
            return (f"nothing to verify: no audit database at {db} "
                    f"(not a soc-agent workdir? check --workdir / SOC_AGENT_DATABASE_URL)")
    engine = create_engine(url)
    if not inspect(engine).has_table("audit"):
        engine.dispose()
        return f"nothing to verify: the store at {url} has no audit table (not a soc-agent store?)"
    return engine


def _public_key(folder: Path, key_file: Path, pinned: Path | None,
                problems: list[str], notes: list[str]) -> Ed25519PublicKey | None:
    """The key checkpoints must verify under: pinned, else derived from the private key, else the .pub file."""
    pub_path = folder / PUBLIC_KEY_FILE
    if pinned is not None:
        return fmt.load_public_key(pinned.read_bytes())
    from_pub = fmt.load_public_key(pub_path.read_bytes()) if pub_path.is_file() else None
    if key_file.is_file():
        key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"{key_file} is not an Ed25519 private key")
        public = key.public_key()
        if from_pub is not None and fmt.key_id(from_pub) != fmt.key_id(public):
            problems.append(f"{pub_path} (key {fmt.key_id(from_pub)}) is not the public key of {key_file} "
                            f"(key {fmt.key_id(public)}): replaced?")
        return public
    if from_pub is not None:
        notes.append(f"checkpoint signatures checked with {pub_path} (key {fmt.key_id(from_pub)}); compare it "
                     "with a copy kept elsewhere, or pass --public-key")
    return from_pub


def _witness_checkpoints(witness_file: Path, public: Ed25519PublicKey | None, local: list[dict[str, Any]],
                         cp_path: Path, problems: list[str], notes: list[str]) -> list[dict[str, Any]]:
    """The witness copy's valid checkpoints; what it shows about the local file goes into ``problems``.

    Each line is checked on its own: a witness may have missed some checkpoints (a failed POST), so gaps
    in its sequence are not a problem; a checkpoint it holds that the local file lacks or holds
    differently is.
    """
    valid: list[dict[str, Any]] = []
    with open(witness_file, encoding="utf-8", newline="") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            checkpoints, bad, _ = fmt.read_checkpoints([line], public)
            problems += [f"witness copy line {n}: {p}" for p in bad]
            valid += checkpoints
    by_seq = {cp["seq"]: cp for cp in local}
    for cp in valid:
        mine = by_seq.get(cp["seq"])
        if mine is None:
            problems.append(f"witness checkpoint {cp['seq']} ({cp['count']} records, {cp['ts']}) is missing from "
                            f"{cp_path}: the local checkpoints were cut")
        elif (mine["count"], mine["head"], mine["ts"]) != (cp["count"], cp["head"], cp["ts"]):
            problems.append(f"checkpoint {cp['seq']} in {cp_path} differs from the witness's copy: rewritten")
    if not valid and not problems:
        problems.append(f"the witness copy {witness_file} holds no checkpoint")
    notes.append(f"held to {len(valid)} checkpoint(s) the witness kept in {witness_file}")
    return valid


def verify_workdir(settings: "Settings", public_key_file: Path | None = None,
                   witness_file: Path | None = None) -> WorkdirVerdict:
    """Verify the store's chain, its MACs and its signed checkpoints; creates nothing.

    ``witness_file``: a witness's saved copy of the checkpoints it received; the chain is held to those too.
    """
    opened = open_store_readonly(settings)
    if isinstance(opened, str):
        return WorkdirVerdict("nothing", opened)
    engine = opened
    try:
        folder = checkpoint_dir(settings.db_url, settings.workdir)
        key_file = Path(settings.audit_signing_key_file) if settings.audit_signing_key_file else folder / KEY_FILE
        problems: list[str] = []
        notes: list[str] = []
        try:
            public = _public_key(folder, key_file, public_key_file, problems, notes)
        except (OSError, ValueError) as exc:
            return WorkdirVerdict("broken", f"cannot load the checkpoint key: {exc}")
        cp_path = folder / CHECKPOINTS_FILE
        checkpoints: list[dict[str, Any]] = []
        if cp_path.is_file():
            with open(cp_path, encoding="utf-8", newline="") as f:
                checkpoints, bad, cp_notes = fmt.read_checkpoints(f, public)
            problems += bad
            notes += cp_notes
        anchors: dict[int, tuple[str, str]] = {}
        for cp in checkpoints:
            if cp["count"] > 0 and cp["count"] not in anchors:
                anchors[cp["count"]] = (cp["head"], f"signed checkpoint {cp['seq']} of {cp['ts']}")
        if witness_file is not None:
            try:
                witnessed = _witness_checkpoints(witness_file, public, checkpoints, cp_path, problems, notes)
            except (OSError, UnicodeDecodeError) as exc:
                return WorkdirVerdict("broken", f"cannot read the witness copy {witness_file}: {exc}",
                                      problems, notes)
            for cp in witnessed:
                if cp["count"] > 0 and cp["count"] not in anchors:
                    anchors[cp["count"]] = (cp["head"], f"witness checkpoint {cp['seq']} of {cp['ts']}")

        key = settings.audit_key
        result = verify(engine, key, anchors=anchors)
    finally:
        engine.dispose()

    if not result.ok:
        return WorkdirVerdict("broken", result.reason, problems, notes)
    if problems:
        return WorkdirVerdict("broken", f"{len(problems)} bad checkpoint(s) in {cp_path}", problems, notes)
    if result.checked == 0:
        return WorkdirVerdict("nothing", "nothing to verify: 0 audit records", problems, notes)
    if result.unchecked_macs:
        return WorkdirVerdict("unverifiable", f"{result.unchecked_macs} records carry HMACs but no key is set "
                              "(SOC_AGENT_AUDIT_HMAC_KEY): they cannot be checked", problems, notes)
    if not checkpoints:
        return WorkdirVerdict("broken", f"no signed checkpoint in {cp_path}: truncation and a recomputed chain "
                              "cannot be ruled out", problems, notes)
    latest = max(checkpoints, key=lambda cp: cp["count"])
    tail = result.checked - latest["count"]
    message = (f"{result.reason}; latest signed checkpoint {latest['seq']} of {latest['ts']} covers "
               f"{latest['count']} records" + (f" ({tail} newer records are chained, not yet signed)" if tail else ""))
    return WorkdirVerdict("intact", message, problems, notes)


# ---- export ---------------------------------------------------------------------------------


def export_bundle(settings: "Settings", out: Path) -> str:
    """Write records, checkpoints, public key and ``verify_bundle.py`` into ``out``; a one-line summary.

    Raises ``LookupError`` when there is no store to export.
    """
    opened = open_store_readonly(settings)
    if isinstance(opened, str):
        raise LookupError(opened)
    folder = checkpoint_dir(settings.db_url, settings.workdir)
    out.mkdir(parents=True, exist_ok=True)
    n = 0
    try:
        with open(out / fmt.RECORDS_FILE, "w", encoding="utf-8") as f:
            for rec in records(opened):
                f.write(json.dumps({"seq": rec.seq, "ts": rec.ts, "kind": rec.kind, "case_id": rec.case_id,
                                    "payload": rec.payload, "prev_hash": rec.prev_hash, "hash": rec.hash,
                                    "mac": rec.mac}, ensure_ascii=False) + "\n")
                n += 1
    finally:
        opened.dispose()
    cp_path = folder / CHECKPOINTS_FILE
    cp_bytes = cp_path.read_bytes() if cp_path.is_file() else b""
    (out / fmt.CHECKPOINTS_FILE).write_bytes(cp_bytes)
    key_file = Path(settings.audit_signing_key_file) if settings.audit_signing_key_file else folder / KEY_FILE
    if (folder / PUBLIC_KEY_FILE).is_file():
        pem = (folder / PUBLIC_KEY_FILE).read_bytes()
    elif key_file.is_file():
        pem = _public_pem(_load_or_create_key(key_file).public_key())
    else:
        pem = b""
    (out / fmt.PUBLIC_KEY_FILE).write_bytes(pem)
    script = Path(fmt.__file__).read_text(encoding="utf-8")
    (out / "verify_bundle.py").write_text(script, encoding="utf-8")
    kid = fmt.key_id(fmt.load_public_key(pem)) if pem else "none"
    return (f"{n} records, {sum(1 for line in cp_bytes.splitlines() if line.strip())} checkpoints, key {kid} "
            f"written to {out}; verify with: cd {out} && python verify_bundle.py")
