#!/usr/bin/env python3
"""Verify an exported soc-agent audit bundle, without soc-agent.

``soc-agent audit export --out DIR`` copies this file into DIR as
``verify_bundle.py`` beside:

* ``records.jsonl``      - the audit records, one JSON object per line, in seq order
* ``checkpoints.jsonl``  - the signed checkpoints (record count + head hash)
* ``audit-signing.pub``  - the Ed25519 public key the checkpoints are signed with

Run it in the bundle with only the standard library and ``cryptography``::

    python verify_bundle.py [--dir DIR] [--public-key PEM] [--key-id HEX]

It recomputes the hash chain, checks every checkpoint's signature, and checks
that the chain reaches every signed checkpoint with the signed head hash
(catching truncation and rewritten chains). The public key in the bundle
travels with the bundle: pin it with ``--public-key`` (a copy kept elsewhere)
or ``--key-id`` (its fingerprint, printed by this script). Exit 0 when the
bundle verifies, 1 otherwise.

soc-agent itself uses the checkpoint functions below (``checkpoint_message``,
``key_id``, ``read_checkpoints``), so the format has one definition.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import sys
from pathlib import Path
from typing import Any, Iterable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

GENESIS_HASH = "0" * 64
CHECKPOINT_VERSION = 1
SIGNED_FIELDS = ("v", "seq", "ts", "count", "head", "key_id")
"""The checkpoint fields the signature covers (all of them but ``sig``)."""
_DOMAIN = b"soc-agent audit checkpoint v1\n"

RECORDS_FILE = "records.jsonl"
CHECKPOINTS_FILE = "checkpoints.jsonl"
PUBLIC_KEY_FILE = "audit-signing.pub"


def canonical_json(obj: Any) -> str:
    """Must equal soc_agent.audit.canonical_json: sorted keys, no spaces, UTF-8 kept."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def compute_hash(prev_hash: str, seq: int, ts: str, kind: str, case_id: str | None, payload: str) -> str:
    """Must equal soc_agent.audit.compute_hash."""
    body = canonical_json({"seq": seq, "ts": ts, "kind": kind, "case_id": case_id, "payload": payload})
    return hashlib.sha256(f"{prev_hash}\n{body}".encode()).hexdigest()


def key_id(public_key: Ed25519PublicKey) -> str:
    """Fingerprint of a public key: the first 16 hex digits of SHA-256 over its 32 raw bytes."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def checkpoint_message(checkpoint: dict[str, Any]) -> bytes:
    """The bytes a checkpoint's signature is over."""
    return _DOMAIN + canonical_json({f: checkpoint[f] for f in SIGNED_FIELDS}).encode()


def load_public_key(pem: bytes) -> Ed25519PublicKey:
    key = serialization.load_pem_public_key(pem)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key")
    return key


def read_checkpoints(lines: Iterable[str], public_key: Ed25519PublicKey | None) -> tuple[list[dict], list[str], list[str]]:
    """Parse and check checkpoint lines: ``(valid checkpoints, problems, notes)``.

    A problem is a line that does not parse or whose signature does not verify
    under ``public_key``, or a gap/repeat in the checkpoint sequence numbers
    (a line deleted). A torn line (a crash while writing) is a note.
    """
    valid: list[dict] = []
    problems: list[str] = []
    notes: list[str] = []
    raw = list(lines)
    last_seq: int | None = None
    for n, line in enumerate(raw, 1):
        text = line.rstrip("\n")
        if not text.strip():
            continue
        try:
            cp = json.loads(text)
            if not isinstance(cp, dict) or cp.get("v") != CHECKPOINT_VERSION:
                raise ValueError("unknown checkpoint version")
            fields = {f: cp[f] for f in SIGNED_FIELDS}
            if not (isinstance(fields["seq"], int) and isinstance(fields["count"], int) and fields["count"] >= 0):
                raise ValueError("seq and count must be integers")
            sig = base64.b64decode(cp["sig"], validate=True)
        except (ValueError, KeyError, TypeError) as exc:
            if not text.rstrip().endswith("}"):
                # A torn write (a crash mid-line); the next writer reuses its sequence number, so a
                # line hidden this way still shows as a gap.
                notes.append(f"checkpoint line {n}: incomplete line ignored (a crash while writing?)")
            else:
                problems.append(f"checkpoint line {n}: unreadable ({exc})")
            continue
        if last_seq is not None and cp["seq"] != last_seq + 1:
            problems.append(f"checkpoint line {n}: sequence number {cp['seq']} follows {last_seq} "
                            "(checkpoints deleted, reordered or replayed)")
        last_seq = cp["seq"]
        if public_key is None:
            problems.append(f"checkpoint {cp['seq']}: no public key to check its signature")
            continue
        try:
            public_key.verify(sig, checkpoint_message(cp))
        except InvalidSignature:
            problems.append(f"checkpoint {cp['seq']} (line {n}): bad signature: not signed by key "
                            f"{key_id(public_key)} (claims key {cp.get('key_id')}) - forged or edited")
            continue
        valid.append(cp)
    return valid, problems, notes


def check_records(rows: Iterable[dict[str, Any]], checkpoints: list[dict]) -> tuple[bool, int, str]:
    """Recompute the chain over ``rows`` and hold it to every valid checkpoint: ``(ok, checked, reason)``."""
    anchors: dict[int, dict] = {}
    for cp in checkpoints:
        if cp["count"] > 0:
            anchors.setdefault(cp["count"], cp)
    expected, prev, checked = 1, GENESIS_HASH, 0
    for row in rows:
        seq = row["seq"]
        if seq != expected:
            return False, checked, f"record {expected}: missing or out of order (found seq {seq})"
        if row["prev_hash"] != prev:
            return False, checked, f"record {seq}: prev_hash does not match record {seq - 1}"
        digest = compute_hash(prev, seq, row["ts"], row["kind"], row["case_id"], row["payload"])
        if not hmac.compare_digest(digest, row["hash"]):
            return False, checked, f"record {seq}: hash mismatch (content edited)"
        cp = anchors.get(seq)
        if cp is not None and not hmac.compare_digest(digest, cp["head"]):
            return False, checked, (f"record {seq}: hash does not match signed checkpoint {cp['seq']} "
                                    f"of {cp['ts']} (log rewritten)")
        prev = digest
        expected += 1
        checked += 1
    if anchors and max(anchors) > checked:
        cp = anchors[max(anchors)]
        return False, checked, (f"record {checked + 1}: missing; log ends at record {checked} but signed "
                                f"checkpoint {cp['seq']} of {cp['ts']} covers {cp['count']} records (log truncated)")
    return True, checked, f"{checked} records verified"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Verify a soc-agent audit bundle.")
    parser.add_argument("--dir", type=Path, default=Path(__file__).resolve().parent, help="the bundle folder")
    parser.add_argument("--public-key", type=Path, help="PEM public key kept outside the bundle (pins the key)")
    parser.add_argument("--key-id", help="expected key fingerprint (pins the key)")
    args = parser.parse_args(argv)

    key_path = args.public_key or args.dir / PUBLIC_KEY_FILE
    try:
        public_key = load_public_key(key_path.read_bytes())
    except (OSError, ValueError) as exc:
        print(f"audit bundle BROKEN: cannot load public key {key_path}: {exc}", file=sys.stderr)
        return 1
    fingerprint = key_id(public_key)
    if args.key_id and args.key_id != fingerprint:
        print(f"audit bundle BROKEN: public key {fingerprint} is not the expected {args.key_id}", file=sys.stderr)
        return 1
    try:
        with open(args.dir / CHECKPOINTS_FILE, encoding="utf-8", newline="") as f:
            checkpoints, problems, notes = read_checkpoints(f, public_key)
        with open(args.dir / RECORDS_FILE, encoding="utf-8") as f:
            ok, checked, reason = check_records((json.loads(line) for line in f if line.strip()), checkpoints)
    except (OSError, ValueError, KeyError) as exc:
        print(f"audit bundle BROKEN: {exc}", file=sys.stderr)
        return 1
    for note in notes:
        print(f"note: {note}")
    if not ok or problems or not checkpoints or checked == 0:
        for problem in problems:
            print(f"audit bundle BROKEN: {problem}", file=sys.stderr)
        if not ok:
            print(f"audit bundle BROKEN: {reason}", file=sys.stderr)
        if not checkpoints:
            print("audit bundle BROKEN: no validly signed checkpoint", file=sys.stderr)
        if ok and checked == 0:
            print("audit bundle BROKEN: nothing to verify (0 records)", file=sys.stderr)
        return 1
    latest = max(checkpoints, key=lambda cp: cp["count"])
    print(f"audit bundle intact: {reason}; key {fingerprint}; latest signed checkpoint {latest['seq']} "
          f"of {latest['ts']} covers {latest['count']} records")
    return 0


if __name__ == "__main__":
    sys.exit(main())
