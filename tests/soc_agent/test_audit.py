"""The audit chain verifies when intact and names the first bad record otherwise."""

import json
import tempfile

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, SQLModel, create_engine

from soc_agent.audit import (
    GENESIS_HASH,
    AuditLog,
    VerifyResult,
    canonical_json,
    compute_hash,
    compute_mac,
    records,
    verify,
)


def make_engine(directory):
    engine = create_engine(f"sqlite:///{directory}/a.db")
    SQLModel.metadata.create_all(engine)
    return engine


@pytest.fixture
def engine(tmp_path):
    engine = make_engine(tmp_path)
    yield engine
    engine.dispose()


def fill(engine, n, key=None):
    log = AuditLog(engine, hmac_key=key)
    for i in range(1, n + 1):
        log.append("node.assess", {"i": i, "note": f"step {i}"}, case_id=f"case-{i % 2}")
    return log


def sql(engine, statement, **params):
    with engine.begin() as conn:
        conn.execute(text(statement), params)


def hash_of(engine, seq):
    with engine.connect() as conn:
        return conn.execute(text("SELECT hash FROM audit WHERE seq = :s"), {"s": seq}).scalar_one()


def test_empty_log_verifies(engine):
    assert verify(engine) == VerifyResult(True, 0, None, "0 records verified")
    assert AuditLog(engine).head() == (0, GENESIS_HASH)
    assert verify(engine, expected_head=(0, GENESIS_HASH)).ok


def test_intact_chain_verifies(engine):
    log = fill(engine, 20)
    result = verify(engine, expected_head=log.head())
    assert result.ok and result.checked == 20 and result.first_bad_seq is None


def test_records_chain_from_genesis_with_contiguous_seqs(engine):
    fill(engine, 3)
    recs = list(records(engine))
    assert [r.seq for r in recs] == [1, 2, 3]
    assert recs[0].prev_hash == GENESIS_HASH
    assert recs[1].prev_hash == recs[0].hash
    assert recs[2].payload == canonical_json({"i": 3, "note": "step 3"}) == '{"i":3,"note":"step 3"}'
    assert recs[0].ts.endswith("+00:00")


def test_records_filters_by_case(engine):
    fill(engine, 5)
    assert [r.seq for r in records(engine, case_id="case-0")] == [2, 4]


def test_edited_payload_is_caught_naming_its_seq(engine):
    fill(engine, 20)
    sql(engine, "UPDATE audit SET payload = :p WHERE seq = 17", p='{"i":999}')
    result = verify(engine)
    assert not result.ok
    assert result.first_bad_seq == 17 and result.checked == 16
    assert result.reason == "record 17: hash mismatch (content edited)"


@pytest.mark.parametrize("column, value", [("kind", "'decision'"), ("ts", "'2000-01-01T00:00:00+00:00'"), ("case_id", "NULL")])
def test_edited_metadata_is_caught(engine, column, value):
    fill(engine, 5)
    sql(engine, f"UPDATE audit SET {column} = {value} WHERE seq = 3")
    assert verify(engine).first_bad_seq == 3


def test_edited_hash_is_caught(engine):
    fill(engine, 5)
    sql(engine, "UPDATE audit SET hash = :h WHERE seq = 5", h="f" * 64)
    result = verify(engine)
    assert result.first_bad_seq == 5 and "hash mismatch" in result.reason


def test_deleted_middle_record_is_caught(engine):
    fill(engine, 10)
    sql(engine, "DELETE FROM audit WHERE seq = 5")
    result = verify(engine)
    assert result.first_bad_seq == 5
    assert result.reason == "record 5: expected seq 5, found 6 (record 5 missing)"


def test_deleted_middle_record_with_renumbering_is_caught(engine):
    fill(engine, 10)
    sql(engine, "DELETE FROM audit WHERE seq = 5")
    sql(engine, "UPDATE audit SET seq = seq - 1 WHERE seq > 5")
    result = verify(engine)
    assert result.first_bad_seq == 5
    assert result.reason == (
        "record 5: prev_hash does not match record 4 (a record was deleted, inserted or reordered)"
    )


def test_deleted_last_record_needs_an_anchor(engine):
    log = fill(engine, 10)
    anchor = log.head()
    sql(engine, "DELETE FROM audit WHERE seq = 10")
    # A truncated chain is still a valid chain: nothing inside it is wrong.
    assert verify(engine).ok
    result = verify(engine, expected_head=anchor)
    assert not result.ok and result.first_bad_seq == 10 and "truncated" in result.reason


def test_anchor_accepts_later_appends(engine):
    log = fill(engine, 3)
    anchor = log.head()
    log.append("decision", {"verdict": "benign"})
    assert verify(engine, expected_head=anchor).ok


def test_swapped_payloads_are_caught(engine):
    fill(engine, 10)
    with engine.begin() as conn:
        p3, p7 = (conn.execute(text("SELECT payload FROM audit WHERE seq = :s"), {"s": s}).scalar_one() for s in (3, 7))
        conn.execute(text("UPDATE audit SET payload = :p WHERE seq = 3"), {"p": p7})
        conn.execute(text("UPDATE audit SET payload = :p WHERE seq = 7"), {"p": p3})
    result = verify(engine)
    assert result.first_bad_seq == 3 and "hash mismatch" in result.reason


def test_swapped_records_are_caught(engine):
    fill(engine, 10)
    sql(engine, "UPDATE audit SET seq = 100 WHERE seq = 4")
    sql(engine, "UPDATE audit SET seq = 4 WHERE seq = 6")
    sql(engine, "UPDATE audit SET seq = 6 WHERE seq = 100")
    result = verify(engine)
    assert result.first_bad_seq == 4 and "prev_hash does not match record 3" in result.reason


def forge_insert_at(engine, seq, prev_hash):
    """Insert a well-formed record at ``seq``, shifting later records up by one."""
    ts, kind, payload = "2024-01-01T00:00:00.000000+00:00", "decision", canonical_json({"forged": True})
    digest = compute_hash(prev_hash, seq, ts, kind, None, payload)
    # Two steps so the primary key never collides mid-UPDATE.
    sql(engine, "UPDATE audit SET seq = seq + 1000 WHERE seq >= :s", s=seq)
    sql(engine, "UPDATE audit SET seq = seq - 999 WHERE seq >= 1000")
    sql(
        engine,
        "INSERT INTO audit (seq, ts, kind, case_id, payload, prev_hash, hash, mac) "
        "VALUES (:seq, :ts, :kind, NULL, :payload, :prev, :hash, NULL)",
        seq=seq, ts=ts, kind=kind, payload=payload, prev=prev_hash, hash=digest,
    )


def test_inserted_forged_record_is_caught(engine):
    fill(engine, 8)
    forge_insert_at(engine, 4, hash_of(engine, 3))
    result = verify(engine)
    # The forgery itself is well-formed; its successor no longer chains to it.
    assert result.first_bad_seq == 5 and result.checked == 4
    assert result.reason.startswith("record 5: prev_hash does not match record 4")


def rechain(engine, key=None):
    """What a forger with DB write access does: recompute every hash (and MAC if they had the key)."""
    prev = GENESIS_HASH
    with engine.begin() as conn:
        rows = conn.execute(text("SELECT seq, ts, kind, case_id, payload FROM audit ORDER BY seq")).all()
        for r in rows:
            digest = compute_hash(prev, r.seq, r.ts, r.kind, r.case_id, r.payload)
            # Without the key the forger can only leave the old MAC in place.
            conn.execute(
                text("UPDATE audit SET prev_hash = :p, hash = :h, mac = COALESCE(:m, mac) WHERE seq = :s"),
                {"p": prev, "h": digest, "m": compute_mac(key, digest) if key else None, "s": r.seq},
            )
            prev = digest


def test_rechained_forgery_passes_without_key_but_fails_the_anchor(engine):
    log = fill(engine, 6)
    anchor = log.head()
    sql(engine, "UPDATE audit SET payload = :p WHERE seq = 2", p='{"i":0}')
    rechain(engine)
    assert verify(engine).ok  # why the HMAC key and the anchor exist
    result = verify(engine, expected_head=anchor)
    assert result.first_bad_seq == 6 and "anchored head" in result.reason


def test_hmac_catches_forger_without_the_key(engine):
    key = b"k" * 32
    fill(engine, 6, key=key)
    assert verify(engine, hmac_key=key).ok
    sql(engine, "UPDATE audit SET payload = :p WHERE seq = 2", p='{"i":0}')
    rechain(engine)
    result = verify(engine, hmac_key=key)
    assert result.first_bad_seq == 2 and result.reason == "record 2: MAC mismatch (forged record or wrong key)"


def test_hmac_wrong_key_and_missing_mac_are_caught(engine):
    fill(engine, 3, key=b"right")
    assert verify(engine, hmac_key=b"wrong").first_bad_seq == 1
    sql(engine, "UPDATE audit SET mac = NULL WHERE seq = 2")
    assert verify(engine, hmac_key=b"right").reason == "record 2: MAC missing"


def test_fresh_auditlog_continues_existing_chain(engine):
    fill(engine, 4)
    log = AuditLog(engine)
    assert log.head() == (4, hash_of(engine, 4))
    rec = log.append("decision", {"verdict": "malicious"}, case_id="c1")
    assert rec.seq == 5 and rec.prev_hash == hash_of(engine, 4)
    assert verify(engine).ok


def test_append_in_caller_session_commits_with_the_caller(engine):
    log = AuditLog(engine)
    with Session(engine) as session:
        log.append("action.intent", {"action": "isolate_host"}, "c1", session=session)
        log.append_many([("decision", {"v": 1}, "c1"), ("decision", {"v": 2}, None)], session=session)
        assert list(records(engine)) == []  # not committed yet
        session.commit()
    assert [r.seq for r in records(engine)] == [1, 2, 3]
    assert log.head() == (3, hash_of(engine, 3))
    assert verify(engine).ok


def test_rolled_back_caller_session_does_not_leave_a_gap(engine):
    log = fill(engine, 2)
    with Session(engine) as session:
        log.append("action.intent", {"action": "block_ip"}, session=session)
        session.rollback()
    rec = log.append("decision", {"v": 1})
    assert rec.seq == 3
    assert verify(engine).ok


def test_second_writer_is_rejected_and_first_recovers(engine):
    a, b = AuditLog(engine), AuditLog(engine)
    a.append("decision", {"by": "a"})
    with pytest.raises(IntegrityError):
        b.append("decision", {"by": "b"})
    assert b.append("decision", {"by": "b"}).seq == 2
    assert verify(engine).ok


def test_append_many_in_own_session(engine):
    log = AuditLog(engine)
    out = log.append_many([("k", {"i": i}, None) for i in range(50)])
    assert [r.seq for r in out] == list(range(1, 51))
    assert out[-1].hash == hash_of(engine, 50)  # readable after its session closed
    assert verify(engine, expected_head=log.head()).checked == 50


payloads = st.dictionaries(
    st.text(max_size=5),
    st.one_of(st.integers(), st.text(max_size=10), st.booleans(), st.none()),
    max_size=3,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), items=st.lists(payloads, min_size=2, max_size=12))
def test_any_single_mutation_is_caught_at_or_before_the_next_record(data, items):
    with tempfile.TemporaryDirectory() as directory:
        engine = make_engine(directory)
        try:
            log = AuditLog(engine)
            for p in items:
                log.append("node.assess", p)
            anchor = log.head()
            n = len(items)
            mutation = data.draw(st.sampled_from(["edit", "delete", "swap"]))
            pos = data.draw(st.integers(1, n))
            if mutation == "edit":
                new = canonical_json(data.draw(payloads))
                assume(new != canonical_json(items[pos - 1]))
                sql(engine, "UPDATE audit SET payload = :p WHERE seq = :s", p=new, s=pos)
            elif mutation == "delete":
                sql(engine, "DELETE FROM audit WHERE seq = :s", s=pos)
            else:
                other = data.draw(st.integers(1, n).filter(lambda o: o != pos))
                assume(canonical_json(items[pos - 1]) != canonical_json(items[other - 1]))
                with engine.begin() as conn:
                    conn.execute(text("UPDATE audit SET seq = -1 WHERE seq = :s"), {"s": pos})
                    conn.execute(text("UPDATE audit SET seq = :a WHERE seq = :b"), {"a": pos, "b": other})
                    conn.execute(text("UPDATE audit SET seq = :a WHERE seq = -1"), {"a": other})
                pos = min(pos, other)
            result = verify(engine, expected_head=anchor)
            assert not result.ok
            assert result.first_bad_seq is not None and result.first_bad_seq <= pos + 1
            assert result.reason.startswith(f"record {result.first_bad_seq}: ")
        finally:
            engine.dispose()


def test_forger_with_the_key_is_only_caught_by_the_anchor(engine):
    key = b"k" * 32
    log = fill(engine, 4, key=key)
    anchor = log.head()
    sql(engine, "UPDATE audit SET payload = :p WHERE seq = 2", p='{"i":0}')
    rechain(engine, key=key)
    assert verify(engine, hmac_key=key).ok
    assert verify(engine, hmac_key=key, expected_head=anchor).first_bad_seq == 4


def test_records_staged_in_a_session_closed_without_commit_are_dropped(engine):
    log = fill(engine, 1)
    session = Session(engine)
    log.append("action.intent", {"action": "block_ip"}, session=session)
    session.close()
    session.commit()  # the same session object used again must not carry the dropped record
    assert [r.seq for r in records(engine)] == [1]
    assert verify(engine).ok


def test_staged_payload_is_frozen_when_appended(engine):
    log = AuditLog(engine)
    payload = {"status": "intent"}
    with Session(engine) as session:
        log.append("action.intent", payload, session=session)
        payload["status"] = "rewritten"
        session.commit()
    assert json.loads(next(records(engine)).payload) == {"status": "intent"}
