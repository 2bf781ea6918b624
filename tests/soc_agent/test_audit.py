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


# ---- signed checkpoints outside the database (truncation, recomputed chains) ------------------

import base64  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402

from soc_agent import audit_bundle_verify as bundle_fmt  # noqa: E402
from soc_agent.audit_checkpoints import (  # noqa: E402
    CHECKPOINTS_FILE,
    KEY_FILE,
    PUBLIC_KEY_FILE,
    AuditCheckpoints,
    export_bundle,
    verify_workdir,
)
from soc_agent.config import Settings  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def workdir(tmp_path):
    """A workdir whose store holds 120 records and whose checkpoints cover all of them."""
    work = tmp_path / "work"
    work.mkdir()
    engine = create_engine(f"sqlite:///{work}/soc-agent.db")
    SQLModel.metadata.create_all(engine)
    log = fill(engine, 120)
    assert log.checkpoint()["count"] == 120
    engine.dispose()
    return work


def db(work):
    return create_engine(f"sqlite:///{work}/soc-agent.db")


def checkpoint_lines(work):
    return [json.loads(line) for line in (work / CHECKPOINTS_FILE).read_text().splitlines()]


def soc_cli(*args, cwd=REPO, env=None):
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SOC_AGENT_")}
    return subprocess.run([sys.executable, "-m", "soc_agent.cli", *args], capture_output=True, text=True,
                          cwd=cwd, env={**clean, "PYTHONPATH": str(REPO), "COLUMNS": "300", **(env or {})},
                          timeout=120)


def test_checkpoints_are_signed_outside_the_database_with_a_private_key_file(workdir):
    lines = checkpoint_lines(workdir)
    # The first commit is signed at once, the rest at checkpoint() (every 256 records / 5 s otherwise).
    assert [(c["seq"], c["count"]) for c in lines] == [(1, 1), (2, 120)]
    assert lines[-1]["head"] == hash_of(db(workdir), 120)
    assert set(lines[0]) == {"v", "seq", "ts", "count", "head", "key_id", "sig"}
    assert (workdir / KEY_FILE).stat().st_mode & 0o777 == 0o600
    assert (workdir / PUBLIC_KEY_FILE).read_text().startswith("-----BEGIN PUBLIC KEY-----")
    verdict = verify_workdir(Settings(workdir=workdir))
    assert verdict.ok and verdict.exit_code == 0, verdict
    assert "120 records verified" in verdict.message and "checkpoint 2" in verdict.message


def test_checkpoints_are_written_every_n_records_not_per_record(tmp_path):
    engine = make_engine(tmp_path)
    log = AuditLog(engine, checkpoints=AuditCheckpoints(tmp_path, every=10, max_interval_s=3600))
    for i in range(25):
        log.append("node.assess", {"i": i})
    assert [c["count"] for c in checkpoint_lines(tmp_path)] == [1, 11, 21]
    log.checkpoint()
    assert [c["count"] for c in checkpoint_lines(tmp_path)] == [1, 11, 21, 25]
    assert log.checkpoint() is None, "nothing new to sign"


def test_session_commits_are_checkpointed_after_the_commit(tmp_path):
    engine = make_engine(tmp_path)
    log = AuditLog(engine)
    with Session(engine) as session:
        log.append_many([("a", {}, None), ("b", {}, None)], session=session)
        assert not (tmp_path / CHECKPOINTS_FILE).exists(), "nothing is signed before the commit"
        session.commit()
    assert [(c["count"], c["head"]) for c in checkpoint_lines(tmp_path)] == [(2, hash_of(engine, 2))]


def test_deleting_the_newest_50_records_is_caught_as_truncation(workdir):
    sql(db(workdir), "DELETE FROM audit WHERE seq > 70")
    assert verify(db(workdir)).ok, "the shorter chain is valid on its own"
    verdict = verify_workdir(Settings(workdir=workdir))
    assert verdict.status == "broken" and verdict.exit_code == 1
    assert "record 71: missing" in verdict.message and "covers 120 records (log truncated)" in verdict.message
    proc = soc_cli("audit", "verify", "--workdir", str(workdir))
    assert proc.returncode == 1 and "log truncated" in proc.stderr and "intact" not in proc.stdout, proc


def test_recomputed_chain_without_the_signing_key_is_caught(workdir):
    # The attacker has the database (and no HMAC key is configured, the default): edit, recompute every hash.
    engine = db(workdir)
    sql(engine, "UPDATE audit SET payload = :p WHERE seq = 5", p='{"i":0}')
    rechain(engine)
    assert verify(engine).ok, "the recomputed chain is valid on its own"
    verdict = verify_workdir(Settings(workdir=workdir))
    assert verdict.status == "broken"
    assert verdict.message.startswith("record 120: hash does not match signed checkpoint 2") \
        and "(log rewritten)" in verdict.message
    # Removing the checkpoints does not help them either.
    (workdir / CHECKPOINTS_FILE).unlink()
    verdict = verify_workdir(Settings(workdir=workdir))
    assert verdict.status == "broken" and "no signed checkpoint" in verdict.message


def forge_checkpoint(work, key, count, head):
    last = checkpoint_lines(work)[-1]
    cp = {"v": 1, "seq": last["seq"] + 1, "ts": last["ts"], "count": count, "head": head,
          "key_id": last["key_id"]}
    cp["sig"] = base64.b64encode(key.sign(bundle_fmt.checkpoint_message(cp))).decode()
    with open(work / CHECKPOINTS_FILE, "a") as f:
        f.write(json.dumps(cp) + "\n")


def test_forged_checkpoint_signed_with_another_key_is_caught(workdir):
    # Truncate, then sign a checkpoint for the shorter chain with a key of the attacker's own.
    sql(db(workdir), "DELETE FROM audit WHERE seq > 70")
    forge_checkpoint(workdir, Ed25519PrivateKey.generate(), 70, hash_of(db(workdir), 70))
    verdict = verify_workdir(Settings(workdir=workdir))
    assert verdict.status == "broken"
    assert any("checkpoint 3" in p and "bad signature" in p for p in verdict.problems), verdict
    proc = soc_cli("audit", "verify", "--workdir", str(workdir))
    assert proc.returncode == 1 and "bad signature" in proc.stderr, proc


def test_replaced_public_key_is_caught_when_the_private_key_is_at_hand(workdir):
    from cryptography.hazmat.primitives import serialization

    other = Ed25519PrivateKey.generate()
    (workdir / PUBLIC_KEY_FILE).write_bytes(other.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    verdict = verify_workdir(Settings(workdir=workdir))
    assert verdict.status == "broken" and any("replaced?" in p for p in verdict.problems)


@pytest.mark.parametrize("make", ["missing", "empty dir"])
def test_verify_on_an_empty_or_mistyped_workdir_fails_and_creates_nothing(tmp_path, make):
    target = tmp_path / "typo-work"
    if make == "empty dir":
        target.mkdir()
    proc = soc_cli("audit", "verify", "--workdir", str(target))
    assert proc.returncode == 2, proc
    assert "nothing to verify: no audit database" in proc.stderr and "intact" not in proc.stdout
    if make == "missing":
        assert not target.exists(), "verify created the workdir"
    else:
        assert list(target.iterdir()) == [], "verify created files"


def test_store_with_no_records_is_nothing_to_verify(tmp_path):
    make_engine(tmp_path).dispose()  # the tables, no records
    verdict = verify_workdir(Settings(workdir=tmp_path, database_url=f"sqlite:///{tmp_path}/a.db"))
    assert verdict.status == "nothing" and verdict.exit_code == 2 and "0 audit records" in verdict.message


def test_macs_present_but_no_key_is_its_own_failure(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    engine = create_engine(f"sqlite:///{work}/soc-agent.db")
    SQLModel.metadata.create_all(engine)
    fill(engine, 5, key=b"k" * 32).checkpoint()
    assert verify(engine).unchecked_macs == 5
    verdict = verify_workdir(Settings(workdir=work))
    assert verdict.status == "unverifiable" and "carry HMACs but no key" in verdict.message
    proc = soc_cli("audit", "verify", "--workdir", str(work))
    assert proc.returncode == 3 and "HMACs but no key" in proc.stderr and "intact" not in proc.stdout, proc
    assert verify_workdir(Settings(workdir=work, audit_hmac_key="k" * 32)).ok


def run_bundle(bundle):
    # cwd is the bundle and no PYTHONPATH: the script cannot import soc_agent.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([sys.executable, "verify_bundle.py"], cwd=bundle, capture_output=True, text=True,
                          env=env, timeout=60)


def test_export_bundle_verifies_standalone_and_rejects_tampering(workdir, tmp_path):
    bundle = tmp_path / "bundle"
    proc = soc_cli("audit", "export", "--out", str(bundle), "--workdir", str(workdir))
    assert proc.returncode == 0 and "120 records, 2 checkpoints" in proc.stdout, proc
    assert sorted(p.name for p in bundle.iterdir()) == \
        ["audit-signing.pub", "checkpoints.jsonl", "records.jsonl", "verify_bundle.py"]
    assert "soc_agent" not in "".join(line for line in (bundle / "verify_bundle.py").read_text().splitlines()
                                      if line.startswith(("import", "from")))
    good = run_bundle(bundle)
    assert good.returncode == 0 and "audit bundle intact: 120 records verified" in good.stdout, good

    records_file = bundle / "records.jsonl"
    original = records_file.read_text()
    rows = [json.loads(line) for line in original.splitlines()]
    rows[9]["payload"] = '{"tampered":true}'
    records_file.write_text("".join(json.dumps(r) + "\n" for r in rows))
    edited = run_bundle(bundle)
    assert edited.returncode == 1 and "record 10: hash mismatch" in edited.stderr, edited

    records_file.write_text("".join(line + "\n" for line in original.splitlines()[:70]))
    truncated = run_bundle(bundle)
    assert truncated.returncode == 1 and "log truncated" in truncated.stderr, truncated

    records_file.write_text(original)
    with open(bundle / "checkpoints.jsonl", "a") as f:
        cp = {"v": 1, "seq": 3, "ts": "x", "count": 120, "head": rows[-1]["hash"], "key_id": "0" * 16}
        cp["sig"] = base64.b64encode(Ed25519PrivateKey.generate().sign(bundle_fmt.checkpoint_message(cp))).decode()
        f.write(json.dumps(cp) + "\n")
    forged = run_bundle(bundle)
    assert forged.returncode == 1 and "bad signature" in forged.stderr, forged


def test_nothing_to_export_from_a_mistyped_workdir(tmp_path):
    with pytest.raises(LookupError, match="no audit database"):
        export_bundle(Settings(workdir=tmp_path / "nope"), tmp_path / "bundle")
    assert not (tmp_path / "nope").exists()
