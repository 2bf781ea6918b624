"""The web queue and `approvals list` also show the decision point's pending tool calls, as escaped data."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from soc_agent.pdp import PDP, load_policy
from soc_agent.pdp.audit import open_workdir
from soc_agent.pdp.policy import SHIPPED_POLICY

REPO = Path(__file__).resolve().parents[3]
HOSTILE = "<script>alert(1)</script>\x1b[2J"


def _pending_call(workdir: Path) -> str:
    store, audit = open_workdir(workdir)
    pdp = PDP(load_policy(SHIPPED_POLICY), store=store, audit=audit)
    d = pdp.decide({"agent": {"id": "dba", "role": "analyst", "permissions": ["db:write"]},
                    "tool": {"name": "sql_write", "args": {"sql": f"DROP TABLE x -- {HOSTILE}"}},
                    "session": {"id": "s1"}})
    pdp.close()
    assert d.decision == "require_approval"
    return d.approval_id


def test_the_web_queue_lists_pending_tool_calls_escaped(settings, start_server, kit):
    approval_id = _pending_call(settings.workdir)
    server = start_server()
    with server.client() as client:
        client.cookies.set("soc_agent_token", kit.tokens["viewer"][1], path="/ui")
        page = client.get("/ui").text
    assert 'id="pdp-queue"' in page and approval_id in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>alert(1)" not in page


def test_approvals_list_shows_pending_tool_calls(settings):
    approval_id = _pending_call(settings.workdir)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOC_AGENT_")}
    env.update(COLUMNS="400", NO_COLOR="1", TERM="dumb", PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-m", "soc_agent.cli", "approvals", "list", "--workdir",
                           str(settings.workdir)], capture_output=True, text=True, cwd=REPO, env=env, timeout=120,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    assert approval_id in proc.stdout and "DROP TABLE x" in proc.stdout
    esc = proc.stdout.find("\x1b")
    assert esc == -1, repr(proc.stdout[max(0, esc - 80):esc + 40])
    assert "\\u001b[2J" in proc.stdout
