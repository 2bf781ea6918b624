"""``soc-agent edge``: compiles the policy, then becomes the lean sensor (options pass through)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def test_edge_command_compiles_the_policy_and_execs_the_sensor(tmp_path):
    log = tmp_path / "auth.log"
    lines = [f"Jun 10 10:00:0{i} h sshd[{i}]: Failed password for root from 203.0.113.9 port {i} ssh2"
             for i in range(6)]
    log.write_text("\n".join(lines) + "\n")
    state = tmp_path / "state"
    proc = subprocess.run([sys.executable, "-m", "soc_agent.cli", "edge", "--log", str(log), "--dry-run",
                           "--state-dir", str(state), "--replay", "--summary", str(tmp_path / "s.json")],
                          cwd=REPO, check=False, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    compiled = json.loads((state / "policy.compiled.json").read_text())
    assert compiled["base_outcome"] == "allow" and compiled["max_ttl_s"] == 86400
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["flagged_ips"] == ["203.0.113.9"] and summary["blocked"] == 1
