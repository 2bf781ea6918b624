"""The audit witness: signed checkpoints POSTed to an HTTP endpoint off the host, and verify held to its copy."""

from __future__ import annotations

import base64
import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from sqlalchemy import create_engine
from sqlmodel import SQLModel

from soc_agent import audit_bundle_verify as fmt
from soc_agent.audit import AuditLog
from soc_agent.audit_checkpoints import (
    CHECKPOINTS_FILE,
    KEY_FILE,
    WITNESS_ENV,
    AuditCheckpoints,
    verify_workdir,
)
from soc_agent.config import Settings
from tests.soc_agent.test_audit import fill, hash_of, soc_cli, sql


class _Witness:
    """A real HTTP server on loopback that keeps each POSTed body as one line of ``copy``."""

    def __init__(self, copy: Path, status: int = 204) -> None:
        self.copy = copy
        self.paths: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.paths.append(self.path)
                if status < 300:
                    with open(outer.copy, "ab") as f:
                        f.write(body + b"\n")
                self.send_response(status)
                self.end_headers()

            def log_message(self, *_args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/witness?token=s3cret-token"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def witness(tmp_path, monkeypatch):
    running = _Witness(tmp_path / "witness-copy.jsonl")
    monkeypatch.setenv(WITNESS_ENV, running.url)
    yield running
    running.close()


def _work(tmp_path: Path, n: int = 120) -> tuple[Path, AuditLog]:
    work = tmp_path / "work"
    work.mkdir()
    engine = create_engine(f"sqlite:///{work}/soc-agent.db")
    SQLModel.metadata.create_all(engine)
    log = fill(engine, n)
    log.checkpoint()
    engine.dispose()
    return work, log


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_each_signed_checkpoint_is_posted_to_the_witness_and_verify_holds_the_chain_to_its_copy(tmp_path, witness):
    work, log = _work(tmp_path)
    local = _lines(work / CHECKPOINTS_FILE)
    assert [(c["seq"], c["count"]) for c in local] == [(1, 1), (2, 120)]
    assert _lines(witness.copy) == local, "the witness received every checkpoint, as signed"
    assert witness.paths == ["/witness?token=s3cret-token"] * 2
    assert log._checkpoints.witness.stats == {"sent": 2, "failed": 0, "dropped": 0}

    verdict = verify_workdir(Settings(workdir=work), witness_file=witness.copy)
    assert verdict.ok, verdict
    assert any("2 checkpoint(s) the witness kept" in note for note in verdict.notes)
    proc = soc_cli("audit", "verify", "--workdir", str(work), "--witness", str(witness.copy))
    assert proc.returncode == 0 and "audit intact" in proc.stdout, proc


def test_a_truncation_re_signed_with_the_local_key_passes_alone_and_is_caught_by_the_witness(tmp_path, witness):
    work, _ = _work(tmp_path)
    # The attacker holds the database and the workdir (the default key lives there): cut the newest 50
    # records, cut the checkpoint that covered them and sign a fresh one for the shorter chain.
    engine = create_engine(f"sqlite:///{work}/soc-agent.db")
    sql(engine, "DELETE FROM audit WHERE seq > 70")
    key = serialization.load_pem_private_key((work / KEY_FILE).read_bytes(), password=None)
    first = _lines(work / CHECKPOINTS_FILE)[0]
    forged = {"v": 1, "seq": 2, "ts": first["ts"], "count": 70, "head": hash_of(engine, 70),
              "key_id": first["key_id"]}
    forged["sig"] = base64.b64encode(key.sign(fmt.checkpoint_message(forged))).decode()
    (work / CHECKPOINTS_FILE).write_text(json.dumps(first) + "\n" + json.dumps(forged) + "\n")
    engine.dispose()

    assert verify_workdir(Settings(workdir=work)).ok, "without a witness the rewrite is undetectable"
    verdict = verify_workdir(Settings(workdir=work), witness_file=witness.copy)
    assert verdict.status == "broken" and verdict.exit_code == 1
    assert "record 71: missing" in verdict.message and "witness checkpoint 2" in verdict.message
    assert any("checkpoint 2" in p and "differs from the witness's copy" in p for p in verdict.problems)
    proc = soc_cli("audit", "verify", "--workdir", str(work), "--witness", str(witness.copy))
    assert proc.returncode == 1 and "differs from the witness" in proc.stderr, proc


def test_an_unreachable_witness_is_logged_and_counted_and_never_stops_the_log(tmp_path, monkeypatch, caplog):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]  # nothing listens here once the socket closes
    monkeypatch.setenv(WITNESS_ENV, f"http://127.0.0.1:{closed}/w?token=s3cret-token")
    with caplog.at_level(logging.WARNING, logger="soc_agent.audit_checkpoints"):
        work, log = _work(tmp_path)
    assert [c["count"] for c in _lines(work / CHECKPOINTS_FILE)] == [1, 120], "local checkpoints as always"
    assert log._checkpoints.witness.stats == {"sent": 0, "failed": 2, "dropped": 0}
    assert "not sent to witness http://127.0.0.1" in caplog.text
    assert "s3cret" not in caplog.text, "no credentials of the URL in the logs"
    assert verify_workdir(Settings(workdir=work)).ok


def test_a_witness_that_refuses_is_counted_as_failed(tmp_path, monkeypatch, caplog):
    refusing = _Witness(tmp_path / "unused.jsonl", status=503)
    monkeypatch.setenv(WITNESS_ENV, refusing.url)
    try:
        with caplog.at_level(logging.WARNING, logger="soc_agent.audit_checkpoints"):
            _, log = _work(tmp_path, 3)
    finally:
        refusing.close()
    assert log._checkpoints.witness.stats["failed"] == 2 and "HTTP 503" in caplog.text


def test_a_witness_copy_that_is_missing_is_a_one_line_error(tmp_path):
    work, _ = _work(tmp_path, 3)
    proc = soc_cli("audit", "verify", "--workdir", str(work), "--witness", str(tmp_path / "nope.jsonl"))
    assert proc.returncode == 2 and "no witness copy at" in proc.stderr and "Traceback" not in proc.stderr


def test_without_the_variable_there_is_no_witness(tmp_path, monkeypatch):
    monkeypatch.delenv(WITNESS_ENV, raising=False)
    assert AuditCheckpoints(tmp_path).witness is None
