"""A realistic synthetic alert stream for the benchmark.

About 30% of alerts are new detections, 40% follow-ups (same rule, same
entities, different details) and 30% exact re-sends, plus brute-force
bursts of raw auth failures whose 5th event in 60 s crosses the threshold.
Deterministic for a seed.
"""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta, timezone

_RULES = [
    ("malware_detected", "host", "file_hash"),
    ("suspicious_powershell", "host", "process"),
    ("connection_to_known_bad_ip", "host", "ip"),
    ("exfil_unusual_destination", "host", "ip"),
    ("impossible_travel", "user", "ip"),
    ("phishing_reported", "user", "email"),
    ("oauth_consent_suspicious", "user", "cloud_resource"),
    ("port_scan", "host", "ip"),
    ("admin_tool_execution", "user", "host"),
    ("dns_query_anomaly", "host", "domain"),
]


def _value(kind: str, rng: random.Random) -> str:
    n = rng.randrange(1, 4000)
    return {
        "host": f"wks-{n:04d}.corp.example", "user": f"user{n}", "ip": f"198.51.{n % 256}.{n // 256 + 1}",
        "file_hash": f"{n:064x}", "process": f"proc{n}.exe:{n}", "email": f"sender{n}@mail{n % 50}.test",
        "cloud_resource": f"app:{n:08x}", "domain": f"d{n}.example",
    }[kind]


def generate(n_alerts: int, seed: int = 11, end: datetime | None = None) -> list[bytes]:
    """``n_alerts`` input lines ending about now (so intake accepts them)."""
    rng = random.Random(seed)
    end = end or datetime.now(timezone.utc)
    start = end - timedelta(hours=2)
    step = (end - start) / max(n_alerts, 1)
    lines: list[bytes] = []
    emitted: list[dict] = []
    ts = start
    counter = 0
    while len(lines) < n_alerts:
        ts += step
        counter += 1
        roll = rng.random()
        if roll < 0.06:
            # a brute-force burst: 6-12 failures, 2-6 s apart, from one external source
            ip = f"203.0.{rng.randrange(0, 256)}.{rng.randrange(1, 255)}"
            burst_ts = ts
            for i in range(rng.randrange(6, 13)):
                burst_ts += timedelta(seconds=rng.uniform(2, 6))
                lines.append(json.dumps({
                    "id": f"ev-{counter}-{i}", "kind": "event", "rule_id": "auth_failure", "title": "sshd failure",
                    "severity": "low", "timestamp": min(burst_ts, end).isoformat(),
                    "entities": [{"kind": "ip", "value": ip, "role": "src"},
                                 {"kind": "user", "value": rng.choice(["root", "admin", "oracle"]), "role": "target"},
                                 {"kind": "host", "value": "web01.corp.example", "role": "dst"}],
                    "attributes": {"service": "ssh", "outcome": "failure"},
                }).encode())
            continue
        if emitted and roll < 0.36:
            lines.append(json.dumps(rng.choice(emitted[-200:])).encode())  # exact re-send
            continue
        if emitted and roll < 0.76:
            base = rng.choice(emitted[-200:])
            follow = {**base, "id": f"a-{counter}", "timestamp": ts.isoformat(),
                      "attributes": {**base["attributes"], "seq": counter}}
            lines.append(json.dumps(follow).encode())
            continue
        rule, k1, k2 = rng.choice(_RULES)
        alert = {
            "id": f"a-{counter}", "kind": "alert", "rule_id": rule, "title": rule.replace("_", " "),
            "severity": rng.choice(["low", "medium", "high", "critical"]), "timestamp": ts.isoformat(),
            "entities": [{"kind": k1, "value": _value(k1, rng), "role": "src"},
                         {"kind": k2, "value": _value(k2, rng), "role": "dst"}],
            "attributes": {"bytes_out": rng.randrange(1000, 10**9)},
        }
        emitted.append(alert)
        lines.append(json.dumps(alert).encode())
    return lines[:n_alerts]
