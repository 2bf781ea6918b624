"""``soc-agent edge --journal -``: stdin is read in bounded memory; an oversize line is skipped and counted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

from soc_agent.edge.sensor import stdin_chunks

REPO = Path(__file__).resolve().parents[3]


def _failures(ip: str, start: int, n: int) -> list[bytes]:
    return [f"Jun 10 10:00:{i:02d} h sshd[{i}]: Failed password for root from {ip} port {i} ssh2".encode()
            for i in range(start, start + n)]


def _read_all(data: bytes, max_line: int, read_size: int) -> tuple[list[bytes], list[int]]:
    """Everything ``stdin_chunks`` yields for ``data`` written to a real pipe, and the oversize sizes it reported."""
    read_fd, write_fd = os.pipe()

    def write() -> None:
        with os.fdopen(write_fd, "wb") as pipe:
            pipe.write(data)

    writer = threading.Thread(target=write)
    writer.start()
    oversize: list[int] = []
    try:
        chunks = list(stdin_chunks(read_fd, threading.Event(), max_line, oversize.append, read_size))
    finally:
        writer.join()
        os.close(read_fd)
    return chunks, oversize


def test_an_oversize_line_is_never_held_whole_and_is_counted_with_its_size():
    huge = b"x" * (3 << 20)  # 3 MiB without a newline until its end, read 64 KiB at a time
    lines = _failures("203.0.113.9", 0, 3) + [huge] + _failures("203.0.113.9", 3, 3) + [b"last line, no newline"]
    chunks, oversize = _read_all(b"\n".join(lines), max_line=4096, read_size=64 * 1024)
    assert oversize == [len(huge)]
    assert b"\n".join(chunks).split(b"\n") == [line for line in lines if line is not huge]
    assert max(len(c) for c in chunks) <= 64 * 1024 + 4096, "no chunk holds more than a read and a line"


def test_a_long_line_that_arrives_whole_in_one_read_is_skipped_too():
    long = b"y" * 5000
    lines = [b"a", long, b"b"]
    chunks, oversize = _read_all(b"\n".join(lines) + b"\n", max_line=4096, read_size=1 << 20)
    assert oversize == [5000] and b"\n".join(chunks).split(b"\n") == [b"a", b"b"]
    at_limit = [b"a", b"y" * 4096, b"z" * 4095, b"b"]  # exactly the limit is not over it
    chunks, oversize = _read_all(b"\n".join(at_limit) + b"\n", max_line=4096, read_size=1 << 20)
    assert oversize == [] and b"\n".join(chunks).split(b"\n") == at_limit


def test_edge_on_stdin_skips_an_oversize_line_says_so_and_still_blocks(tmp_path):
    stream = b"\n".join(_failures("203.0.113.9", 0, 3) + [b"z" * (2 << 20)] + _failures("203.0.113.9", 3, 3)) + b"\n"
    state = tmp_path / "state"
    proc = subprocess.run([sys.executable, "-m", "soc_agent.cli", "edge", "--journal", "-", "--dry-run",
                           "--state-dir", str(state), "--summary", str(tmp_path / "s.json"),
                           "--max-line-bytes", "65536"],
                          cwd=REPO, input=stream, check=False, capture_output=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["oversize_lines"] == 1 and summary["lines"] == 6
    assert summary["flagged_ips"] == ["203.0.113.9"] and summary["blocked"] == 1
    [message] = [json.loads(line) for line in proc.stderr.splitlines() if b"oversize_line" in line]
    assert message["bytes"] == 2 << 20 and message["limit"] == 65536 and message["action"].startswith("skipped")
