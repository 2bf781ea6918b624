"""Hash-chained, tamper-evident audit trail stored in SQL.

Every record carries the SHA-256 of its predecessor's hash plus its own
content, so editing, deleting, inserting or reordering any record breaks the
chain at (or right after) the record that was touched::

    hash = sha256(prev_hash + "\\n" + canonical({seq, ts, kind, case_id, payload}))

The first record chains from ``GENESIS_HASH`` (64 zeros). Two things a bare
hash chain cannot catch, and what covers them:

* Truncation (deleting the newest records) leaves a valid, shorter chain.
  Store ``AuditLog.head()`` somewhere the writer of the database cannot
  rewrite (a ticket, a WORM bucket, another system's log) and pass it to
  ``verify(..., expected_head=...)``.
* A forger with write access can recompute every hash after a change. With
  an HMAC key each record also stores ``mac = HMAC-SHA256(key, hash)``; a
  forger without the key cannot produce matching MACs.

The table is registered on ``SQLModel.metadata`` and is created by whoever
calls ``SQLModel.metadata.create_all(engine)``.

Several writers (a fleet of workers on Postgres): every transaction that
appends takes ``pg_advisory_xact_lock(AUDIT_LOCK_KEY)`` before its first
record and re-reads the head inside that transaction, so appends from
different processes are serialised into one chain; the lock is released by
the transaction's commit or rollback. On SQLite the database itself allows
one writer, and the in-memory head is kept.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import Engine, Text, event, select, text
from sqlalchemy.orm import Session as SASession
from sqlmodel import Field, Session, SQLModel

__all__ = [
    "GENESIS_HASH",
    "AuditLog",
    "AuditRecord",
    "VerifyResult",
    "canonical_json",
    "compute_hash",
    "compute_mac",
    "records",
    "verify",
]

GENESIS_HASH = "0" * 64
"""``prev_hash`` of record 1."""

AUDIT_LOCK_KEY = 0x50C_A0D1
"""Postgres advisory lock that serialises appends to the chain across processes."""

# Bounded memory for verify()/records() on million-record logs.
_BATCH = 1000


class AuditRecord(SQLModel, table=True):
    """One audit entry; ``seq`` runs 1, 2, 3, ... with no gaps."""

    __tablename__ = "audit"

    # Explicit, gap-free numbering is part of what verify() checks, so the
    # database must never pick the value itself.
    seq: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    ts: str = Field(description="ISO-8601 UTC time of the append")
    kind: str = Field(description='what happened, e.g. "node.assess", "action.intent", "decision"')
    case_id: str | None = Field(default=None, index=True)
    payload: str = Field(sa_type=Text, description="canonical JSON text (see canonical_json)")
    prev_hash: str = Field(description="hash of record seq-1, or GENESIS_HASH for seq 1")
    hash: str = Field(description="sha256 hex over prev_hash and this record's content")
    mac: str | None = Field(default=None, description="HMAC-SHA256(key, hash) hex when a key is configured")


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of ``verify``.

    ``checked`` counts the records that passed before the first bad one (all of
    them when ``ok``). ``first_bad_seq`` is the seq of the first record that is
    wrong or missing; ``reason`` says what is wrong in words.
    """

    ok: bool
    checked: int
    first_bad_seq: int | None
    reason: str


def canonical_json(obj: Any) -> str:
    """The one JSON encoding that is hashed: sorted keys, no spaces, UTF-8 kept."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def compute_hash(prev_hash: str, seq: int, ts: str, kind: str, case_id: str | None, payload: str) -> str:
    """The chain hash of a record; ``payload`` is the stored canonical JSON text."""
    body = canonical_json({"seq": seq, "ts": ts, "kind": kind, "case_id": case_id, "payload": payload})
    return hashlib.sha256(f"{prev_hash}\n{body}".encode()).hexdigest()


def compute_mac(key: bytes, record_hash: str) -> str:
    """HMAC-SHA256 of a record's hash under ``key``, hex."""
    return hmac.new(key, record_hash.encode("ascii"), hashlib.sha256).hexdigest()


def _read_head(engine: Engine) -> tuple[int, str]:
    with engine.connect() as conn:
        return _read_head_on(conn)


def _read_head_on(conn: Any) -> tuple[int, str]:
    row = conn.execute(
        select(AuditRecord.seq, AuditRecord.hash).order_by(AuditRecord.seq.desc()).limit(1)
    ).first()
    return (row.seq, row.hash) if row else (0, GENESIS_HASH)


class AuditLog:
    """Appends records to the chain.

    The chain head (last seq, last hash) is read from the database once, at
    construction, and then kept in memory so ``append`` costs one hash and one
    INSERT. That is only correct while this instance is the sole writer: in
    embedded mode run exactly one ``AuditLog`` per database. A second writer
    makes appends fail with a primary-key ``IntegrityError`` on ``seq``, after
    which this instance re-reads the head before its next append.

    Appends are serialised by a lock, so one instance may be shared by threads.

    On Postgres there may be many writers (one per worker): each appending
    transaction first takes the advisory lock ``AUDIT_LOCK_KEY`` and re-reads
    the head under it, and keeps the lock (and trusts its in-memory head)
    until that transaction ends. The cost is that appending transactions of
    different processes run one after another.
    """

    def __init__(self, engine: Engine, hmac_key: bytes | None = None) -> None:
        """Bind to ``engine`` (whose ``audit`` table must exist) and load the head."""
        self._engine = engine
        self._key = hmac_key
        self._lock = threading.Lock()
        self._head: tuple[int, str] | None = _read_head(engine)
        self._multi_writer = engine.dialect.name == "postgresql"
        # The session whose open transaction holds the advisory lock (Postgres only).
        self._lock_holder: SASession | None = None

    def head(self) -> tuple[int, str]:
        """``(seq, hash)`` of the newest record, ``(0, GENESIS_HASH)`` when empty.

        Includes records added to a caller's session that is not committed
        yet; take an anchor for ``verify(expected_head=...)`` after commit.
        """
        with self._lock:
            return self._current_head()

    def append(
        self,
        kind: str,
        payload: dict[str, Any],
        case_id: str | None = None,
        session: Session | None = None,
    ) -> AuditRecord:
        """Append one record and return it.

        With ``session`` the record is added to the caller's transaction and
        not committed, so it lands (or vanishes) together with the caller's own
        writes. Without one, the record is committed in a session of its own.
        """
        return self.append_many([(kind, payload, case_id)], session)[0]

    def append_many(
        self,
        records: Iterable[tuple[str, dict[str, Any], str | None]],
        session: Session | None = None,
    ) -> list[AuditRecord]:
        """Append ``(kind, payload, case_id)`` tuples in order, in one transaction.

        ``session`` behaves as in ``append``.
        """
        if session is not None:
            with self._lock:
                self._watch_rollback(session)
                if self._multi_writer and self._lock_holder is not session:
                    self._lock_chain(session)
                built = self._build(records)
                session.add_all(built)
            return built

        with self._lock:
            try:
                # expire_on_commit=False: the returned records stay readable
                # after their session has closed.
                with Session(self._engine, expire_on_commit=False) as own:
                    if self._multi_writer:
                        self._lock_chain(own, hold=False)
                    built = self._build(records)
                    own.add_all(built)
                    own.commit()
            except BaseException:
                # The head already advanced past rows that never landed.
                self._head = None
                raise
        return built

    def _current_head(self) -> tuple[int, str]:
        if self._head is None:
            self._head = _read_head(self._engine)
        return self._head

    def _build(self, records: Iterable[tuple[str, dict[str, Any], str | None]]) -> list[AuditRecord]:
        seq, prev = self._current_head()
        built: list[AuditRecord] = []
        for kind, payload, case_id in records:
            seq += 1
            ts = datetime.now(timezone.utc).isoformat(timespec="microseconds")
            text = canonical_json(payload)
            digest = compute_hash(prev, seq, ts, kind, case_id, text)
            built.append(
                AuditRecord(
                    seq=seq,
                    ts=ts,
                    kind=kind,
                    case_id=case_id,
                    payload=text,
                    prev_hash=prev,
                    hash=digest,
                    mac=compute_mac(self._key, digest) if self._key is not None else None,
                )
            )
            prev = digest
        self._head = (seq, prev)
        return built

    def _lock_chain(self, session: SASession, hold: bool = True) -> None:
        # Another process may have appended since our head was read: wait for the
        # chain, then read its head in this transaction (READ COMMITTED sees their commit).
        conn = session.connection()
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": AUDIT_LOCK_KEY})
        self._head = _read_head_on(conn)
        if hold:
            self._lock_holder = session
            if not event.contains(session, "after_commit", self._on_commit):
                event.listen(session, "after_commit", self._on_commit)

    def _watch_rollback(self, session: SASession) -> None:
        # If the caller's transaction rolls back, our in-memory head points at
        # records that never landed; forget it so the next append re-reads.
        if not event.contains(session, "after_rollback", self._on_rollback):
            event.listen(session, "after_rollback", self._on_rollback)

    def _on_commit(self, session: SASession) -> None:
        # The commit released the advisory lock: the next transaction must take it again.
        if self._lock_holder is session:
            self._lock_holder = None

    def _on_rollback(self, session: SASession) -> None:
        self._head = None
        if self._lock_holder is session:
            self._lock_holder = None


def verify(
    engine: Engine,
    hmac_key: bytes | None = None,
    expected_head: tuple[int, str] | None = None,
) -> VerifyResult:
    """Check the whole chain in seq order and report the first bad record.

    Detects edited content or hashes, deleted, inserted and reordered records,
    and — when ``hmac_key`` is given — missing or forged MACs. Deleting the
    newest records is only detectable with ``expected_head``, a ``(seq, hash)``
    from ``AuditLog.head()`` kept outside the database: the record at that seq
    must exist and have that hash (later records are fine; the log grows).
    Records are streamed in batches, so memory does not grow with the log.
    """
    expected_seq, prev = 1, GENESIS_HASH
    checked = 0
    anchor_seen = expected_head is None or expected_head[0] == 0
    if expected_head is not None and expected_head[0] == 0 and expected_head[1] != GENESIS_HASH:
        return VerifyResult(False, 0, None, "anchor (0, ...) must carry GENESIS_HASH")

    def bad(seq: int, reason: str) -> VerifyResult:
        return VerifyResult(False, checked, seq, f"record {seq}: {reason}")

    stmt = select(AuditRecord.__table__).order_by(AuditRecord.seq)
    with engine.connect() as conn:
        rows = conn.execution_options(yield_per=_BATCH).execute(stmt)
        for row in rows:
            if row.seq != expected_seq:
                if row.seq > expected_seq:
                    return bad(expected_seq, f"expected seq {expected_seq}, found {row.seq} (record {expected_seq} missing)")
                return bad(row.seq, f"expected seq {expected_seq}, found {row.seq} (seq out of range)")
            if row.prev_hash != prev:
                if row.seq == 1:
                    return bad(1, "prev_hash is not the genesis hash (a record was inserted or reordered)")
                return bad(
                    row.seq,
                    f"prev_hash does not match record {row.seq - 1} (a record was deleted, inserted or reordered)",
                )
            digest = compute_hash(row.prev_hash, row.seq, row.ts, row.kind, row.case_id, row.payload)
            if not hmac.compare_digest(digest, row.hash):
                return bad(row.seq, "hash mismatch (content edited)")
            if hmac_key is not None:
                if row.mac is None:
                    return bad(row.seq, "MAC missing")
                if not hmac.compare_digest(compute_mac(hmac_key, row.hash), row.mac):
                    return bad(row.seq, "MAC mismatch (forged record or wrong key)")
            if expected_head is not None and row.seq == expected_head[0]:
                if not hmac.compare_digest(row.hash, expected_head[1]):
                    return bad(row.seq, "hash does not match the anchored head (log rewritten)")
                anchor_seen = True
            prev = row.hash
            expected_seq += 1
            checked += 1

    if not anchor_seen:
        assert expected_head is not None
        return VerifyResult(
            False,
            checked,
            expected_seq,
            f"record {expected_seq}: missing; log ends at record {expected_seq - 1} "
            f"but the anchored head is record {expected_head[0]} (log truncated)",
        )
    return VerifyResult(True, checked, None, f"{checked} records verified")


def records(engine: Engine, case_id: str | None = None) -> Iterator[AuditRecord]:
    """Yield records in seq order, all of them or only ``case_id``'s.

    Streams in batches; the yielded objects are detached copies safe to keep.
    """
    stmt = select(AuditRecord).order_by(AuditRecord.seq).execution_options(yield_per=_BATCH)
    if case_id is not None:
        stmt = stmt.where(AuditRecord.case_id == case_id)
    with Session(engine) as session:
        for rec in session.scalars(stmt):
            # Detach so the identity map does not keep every record alive.
            session.expunge(rec)
            yield rec
