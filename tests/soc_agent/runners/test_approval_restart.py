"""Pause in one process; approve over the API of a server in another (``soc-agent serve``)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
from sqlmodel import select

from soc_agent.store import ActionRow, ApprovalRow, CaseRow, ContainmentRow

REPO = Path(__file__).resolve().parents[3]


def _pause_in_subprocess(workdir: Path) -> None:
    script = (
        "import sys; from pathlib import Path\n"
        "from soc_agent.config import Settings\n"
        "from soc_agent.pipeline import Pipeline\n"
        "from tests.soc_agent.test_graph import CROWN_JEWEL_MALWARE\n"
        f"p = Pipeline(Settings(workdir=Path({str(workdir)!r})))\n"
        "print(p.process_line(CROWN_JEWEL_MALWARE)[0].status)\n"
        "p.close()\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=120,
                          env={**_env(), "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("pending_approval")


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("SOC_AGENT_")}


def test_paused_in_one_process_approved_over_the_api_of_another(kit, tmp_path, settings):
    workdir = settings.workdir
    _pause_in_subprocess(workdir)

    port = kit.free_port()
    env = {**_env(), "PYTHONPATH": str(REPO), "SOC_AGENT_TOKENS_FILE": str(kit.write_tokens(tmp_path / "t.yml"))}
    server = subprocess.Popen([sys.executable, "-m", "soc_agent.cli", "serve", "--workdir", str(workdir),
                               "--host", "127.0.0.1", "--port", str(port)], cwd=REPO, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None, server.stdout.read().decode()
            assert time.monotonic() < deadline, "server did not come up"
            time.sleep(0.2)
        lead = {"Authorization": f"Bearer {kit.tokens['lead'][1]}"}
        items = httpx.get(f"{url}/api/approvals", headers=lead, timeout=30).json()
        assert [i["action"] for i in items] == ["isolate_host"]
        response = httpx.post(f"{url}/api/approvals/{items[0]['id']}/approve", headers=lead,
                              json={"comment": "owner on the phone"}, timeout=60)
        assert response.status_code == 200 and response.json()["status"] == "pending", response.text
        lead2 = {"Authorization": f"Bearer {kit.tokens['lead2'][1]}"}  # the two-person rule: a second lead
        response = httpx.post(f"{url}/api/approvals/{items[0]['id']}/approve", headers=lead2, json={}, timeout=60)
        assert response.status_code == 200, response.text
        assert response.json()["action_status"] == "executed"
    finally:
        server.terminate()
        server.wait(timeout=30)

    from soc_agent.pipeline import Pipeline

    check = Pipeline(settings)
    try:
        session = check.store.session
        approval = session.exec(select(ApprovalRow)).one()
        assert (approval.status, approval.decided_by) == ("approved", "ana.lead and di.lead")
        assert session.exec(select(ActionRow).where(ActionRow.status == "done")).one().approved_by == \
            "ana.lead and di.lead"
        assert session.get(ContainmentRow, ("isolated_host", "dc02.corp.example")).active
        assert session.get(CaseRow, approval.case_id).status == "contained"
    finally:
        check.close()
