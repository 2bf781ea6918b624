"""Hash-chained, tamper-evident audit trail stored in SQL.

Every record carries the SHA-256 of its predecessor's hash plus its own
content, so editing, deleting, inserting or reordering any record breaks the
chain at (or right after) the record that was touched::

    hash = sha256(prev_hash + "\\n" + canonical({seq, ts, kind, case_id, payload}))

The first record chains from ``GENESIS_HASH`` (64 zeros). Two things a bare
hash chain cannot catch, and what covers them:

* Truncation (deleting the newest records) leaves a valid, shorter chain.
* A forger with write access can recompute every hash after a change.

Both are caught by signed checkpoints (``soc_agent.audit_checkpoints``): after
commits, ``AuditLog`` signs ``(record count, head hash)`` with an Ed25519 key
the database does not hold and appends it to a checkpoint file outside the
database; ``verify(..., anchors=...)`` holds the chain to them. A head kept
elsewhere by hand works the same way (``verify(..., expected_head=...)``).
With an HMAC key each record also stores ``mac = HMAC-SHA256(key, hash)``; a
forger without the key cannot produce matching MACs.

The table is registered on ``SQLModel.metadata`` and is created by whoever
calls ``SQLModel.metadata.create_all(engine)``.

Several writers (a fleet of workers on Postgres): a transaction's records
are chained at its commit, which first takes
``pg_advisory_xact_lock(AUDIT_LOCK_KEY)`` and re-reads the head inside that
transaction, so appends from different processes are serialised into one
chain; the commit releases the lock. On SQLite the database itself allows
one writer, and the in-memory head is kept.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import weakref
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, Text, event, insert, select, text
from sqlalchemy.orm import Session as SASession
from sqlmodel import Field, Session, SQLModel

if TYPE_CHECKING:
    from soc_agent.audit_checkpoints import AuditCheckpoints

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
    ``unchecked_macs`` counts records carrying a MAC that was not checked
    because no key was given (a caller must not call that intact).
    """

    ok: bool
    checked: int
    first_bad_seq: int | None
    reason: str
    unchecked_macs: int = 0


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
    construction, and then kept in memory so an append costs one hash and one
    INSERT. That is only correct while this instance is the sole writer: in
    embedded mode run exactly one ``AuditLog`` per database. A second writer
    makes appends fail with a primary-key ``IntegrityError`` on ``seq``, after
    which this instance re-reads the head before its next append.

    Appends into a caller's session are staged and chained when that session
    commits, in one multi-row INSERT: a graph run's eight records cost one
    statement, and on Postgres (many writers, one per worker) the advisory
    lock ``AUDIT_LOCK_KEY`` is held only for that commit, not for the whole
    transaction, so workers' runs overlap and only their commits queue.

    Appends are serialised by a lock, so one instance may be shared by threads.

    After each commit the committed head is handed to ``checkpoints``, which
    signs one at most every N records or few seconds (and at ``checkpoint()``
    or exit). ``"auto"``: beside a SQLite database file (the workdir), or in
    ``$SOC_AGENT_WORKDIR`` for other databases; none for in-memory ones.
    """

    def __init__(self, engine: Engine, hmac_key: bytes | None = None,
                 checkpoints: "AuditCheckpoints | None | str" = "auto") -> None:
        """Bind to ``engine`` (whose ``audit`` table must exist) and load the head."""
        self._engine = engine
        self._key = hmac_key
        self._lock = threading.Lock()
        self._head: tuple[int, str] | None = _read_head(engine)
        self._multi_writer = engine.dialect.name == "postgresql"
        if checkpoints == "auto":
            # deferred: import cycle (soc_agent.audit_checkpoints imports this module); it also loads cryptography
            from soc_agent.audit_checkpoints import AuditCheckpoints

            checkpoints = AuditCheckpoints.for_engine(engine)
        self._checkpoints: AuditCheckpoints | None = checkpoints  # type: ignore[assignment]
        if self._checkpoints is not None:
            # The newest committed head is signed when this log goes away or the process exits.
            weakref.finalize(self, self._checkpoints.flush)

    def checkpoint(self) -> dict[str, Any] | None:
        """Sign the newest head this log committed now (end of a run); the checkpoint written, if any."""
        return self._checkpoints.flush() if self._checkpoints is not None else None

    def _committed(self, head: tuple[int, str]) -> None:
        if self._checkpoints is not None:
            self._checkpoints.committed(*head)

    def head(self) -> tuple[int, str]:
        """``(seq, hash)`` of the newest committed record, ``(0, GENESIS_HASH)`` when empty.

        Take an anchor for ``verify(expected_head=...)`` after commit.
        """
        with self._lock:
            return self._current_head()

    def append(
        self,
        kind: str,
        payload: dict[str, Any],
        case_id: str | None = None,
        session: Session | None = None,
    ) -> AuditRecord | None:
        """Append one record.

        With ``session`` the record is staged in the caller's transaction and
        chained when it commits, so it lands (or vanishes) together with the
        caller's own writes; nothing is returned because its seq is not known
        yet. Without one, the record is committed in a session of its own and
        returned.
        """
        built = self.append_many([(kind, payload, case_id)], session)
        return built[0] if built else None

    def append_many(
        self,
        records: Iterable[tuple[str, dict[str, Any], str | None]],
        session: SASession | None = None,
    ) -> list[AuditRecord]:
        """Append ``(kind, payload, case_id)`` tuples in order.

        ``session`` behaves as in ``append`` (and ``[]`` is returned for it).
        """
        # The payload is frozen to its canonical text now: a caller mutating the
        # dict before its commit must not change what was audited.
        staged = [(_now(), kind, case_id, canonical_json(payload)) for kind, payload, case_id in records]
        if session is not None:
            pending = session.info.get(_PENDING_KEY)
            if pending is None:
                pending = session.info[_PENDING_KEY] = []
                self._watch(session)
            pending.extend(staged)
            # Begin the caller's transaction, so closing the session without a commit
            # rolls back (and the rollback drops what was staged).
            session.connection()
            return []

        with self._lock:
            try:
                with Session(self._engine, expire_on_commit=False) as own:
                    built = self._chain(own.connection(), staged)
                    own.commit()
            except BaseException:
                # The head already advanced past rows that never landed.
                self._head = None
                raise
        if built:
            self._committed((built[-1]["seq"], built[-1]["hash"]))
        return [AuditRecord(**row) for row in built]

    def _watch(self, session: SASession) -> None:
        if not event.contains(session, "before_commit", self._before_commit):
            event.listen(session, "before_commit", self._before_commit)
            event.listen(session, "after_commit", self._after_commit)
            event.listen(session, "after_rollback", self._after_rollback)
            event.listen(session, "after_transaction_end", self._after_transaction_end)

    def _before_commit(self, session: SASession) -> None:
        pending = session.info.pop(_PENDING_KEY, None)
        if not pending:
            return
        with self._lock:
            rows = self._chain(session.connection(), pending)
        session.info[_CHAINED_KEY] = (rows[-1]["seq"], rows[-1]["hash"])

    def _after_commit(self, session: SASession) -> None:
        head = session.info.pop(_CHAINED_KEY, None)
        if head is not None:
            self._committed(head)

    def _after_rollback(self, session: SASession) -> None:
        # A head advanced by a commit that then failed points at rows that never landed.
        self._head = None

    @staticmethod
    def _after_transaction_end(session: SASession, transaction: Any) -> None:
        # Staged records belong to the transaction: a rollback or a close without
        # commit drops them (a commit has already chained them).
        if transaction.parent is None:
            session.info.pop(_PENDING_KEY, None)
            session.info.pop(_CHAINED_KEY, None)

    def _chain(self, conn: Any, staged: list[tuple[str, str, str | None, str]]) -> list[dict[str, Any]]:
        """Chain ``staged`` records after the head and INSERT them on ``conn`` (lock held)."""
        if self._multi_writer:
            # Another process may have appended since our head was read: wait for the
            # chain, then read its head in this transaction. The commit releases the lock.
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": AUDIT_LOCK_KEY})
            self._head = _read_head_on(conn)
        seq, prev = self._current_head()
        rows = []
        for ts, kind, case_id, payload in staged:
            seq += 1
            digest = compute_hash(prev, seq, ts, kind, case_id, payload)
            rows.append({"seq": seq, "ts": ts, "kind": kind, "case_id": case_id, "payload": payload,
                         "prev_hash": prev, "hash": digest,
                         "mac": compute_mac(self._key, digest) if self._key is not None else None})
            prev = digest
        conn.execute(insert(AuditRecord.__table__), rows)
        self._head = (seq, prev)
        return rows

    def _current_head(self) -> tuple[int, str]:
        if self._head is None:
            self._head = _read_head(self._engine)
        return self._head


_PENDING_KEY = "soc_agent.audit.pending"
"""Where a session keeps its staged records until it commits."""
_CHAINED_KEY = "soc_agent.audit.chained"
"""The head a session's commit chained, handed to the checkpoints once the commit succeeded."""


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def verify(
    engine: Engine,
    hmac_key: bytes | None = None,
    expected_head: tuple[int, str] | None = None,
    anchors: Mapping[int, tuple[str, str]] | None = None,
) -> VerifyResult:
    """Check the whole chain in seq order and report the first bad record.

    Detects edited content or hashes, deleted, inserted and reordered records,
    and — when ``hmac_key`` is given — missing or forged MACs. Deleting the
    newest records or recomputing the chain is only detectable against a head
    kept outside the database: ``expected_head``, a ``(seq, hash)`` from
    ``AuditLog.head()``, or ``anchors``, ``{seq: (hash, what)}`` (e.g. signed
    checkpoints; ``what`` names it in the reason). The record at each anchored
    seq must exist and have that hash (later records are fine; the log grows).
    Records are streamed in batches, so memory does not grow with the log.
    """
    expected_seq, prev = 1, GENESIS_HASH
    checked = 0
    unchecked_macs = 0
    if expected_head is not None and expected_head[0] == 0 and expected_head[1] != GENESIS_HASH:
        return VerifyResult(False, 0, None, "anchor (0, ...) must carry GENESIS_HASH")
    wanted: dict[int, tuple[str, str]] = {seq: a for seq, a in (anchors or {}).items() if seq > 0}
    if expected_head is not None and expected_head[0] > 0:
        wanted[expected_head[0]] = (expected_head[1], "the anchored head")
    last_anchor = max(wanted, default=0)

    def bad(seq: int, reason: str) -> VerifyResult:
        return VerifyResult(False, checked, seq, f"record {seq}: {reason}", unchecked_macs)

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
            if hmac_key is None:
                unchecked_macs += row.mac is not None
            else:
                if row.mac is None:
                    return bad(row.seq, "MAC missing")
                if not hmac.compare_digest(compute_mac(hmac_key, row.hash), row.mac):
                    return bad(row.seq, "MAC mismatch (forged record or wrong key)")
            anchor = wanted.get(row.seq)
            if anchor is not None and not hmac.compare_digest(row.hash, anchor[0]):
                return bad(row.seq, f"hash does not match {anchor[1]} (log rewritten)")
            prev = row.hash
            expected_seq += 1
            checked += 1

    if last_anchor > checked:
        what = wanted[last_anchor][1]
        claim = f"the anchored head is record {last_anchor}" if what == "the anchored head" \
            else f"{what} covers {last_anchor} records"
        return VerifyResult(
            False,
            checked,
            expected_seq,
            f"record {expected_seq}: missing; log ends at record {expected_seq - 1} but {claim} (log truncated)",
            unchecked_macs,
        )
    return VerifyResult(True, checked, None, f"{checked} records verified", unchecked_macs)


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
