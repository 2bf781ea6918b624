"""A brute force triaged by the pipeline blocks through the configured kernel firewall (in a netns)."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tests.conftest import make_alert

ATTACKER = "203.0.113.45"


@pytest.fixture
def netns():
    if shutil.which("ip") is None or shutil.which("nft") is None:
        pytest.skip("iproute2 or nftables (nft) is not installed")
    name = f"socagent-loader-{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot create a network namespace (needs root and netns support): {made.stderr.strip()}")
    yield name
    subprocess.run(["ip", "netns", "delete", name], capture_output=True)


def test_a_configured_nftables_responder_takes_the_block(settings, netns, tmp_path, monkeypatch):
    config = tmp_path / "connectors.yml"
    config.write_text(f"connectors:\n  firewall:\n    type: nftables\n    grant: [firewall.block]\n"
                      f"    options: {{netns: {netns}, mode: cli}}\n")
    monkeypatch.setenv("SOC_AGENT_CONNECTORS", str(config))
    from soc_agent.pipeline import Pipeline

    pipeline = Pipeline(settings)
    try:
        for i in range(5):
            result = pipeline.process_line(make_alert(
                "auth_failure", [("ip", ATTACKER, "src"), ("user", "root", "target"),
                                 ("host", "web01.corp.example", "dst")],
                alert_id=f"nf-{i}", kind="event", severity="low", minutes_ago=(5 - i) / 12,
                service="ssh", outcome="failure"))[0]
        assert result.action == "block_ip" and result.decision == "allow"
    finally:
        pipeline.close()
    listed = subprocess.run(["ip", "netns", "exec", netns, "nft", "list", "set", "inet", "soc_agent", "blocked_v4"],
                            capture_output=True, text=True)
    assert ATTACKER in listed.stdout, listed.stdout + listed.stderr
    assert "expires" in listed.stdout, "the kernel holds the TTL"


def test_with_connectors_configured_an_ungranted_capability_is_denied_not_simulated(settings, tmp_path,
                                                                                     monkeypatch):
    """Only the firewall is granted: isolating a host must be denied, not recorded as if done."""
    config = tmp_path / "connectors.yml"
    config.write_text("connectors:\n  hooks:\n    type: webhook\n    base_url: http://127.0.0.1:9\n"
                      "    grant: [notify.send]\n    options: {signing_secret: HOOK_KEY}\n")
    monkeypatch.setenv("SOC_AGENT_CONNECTORS", str(config))
    monkeypatch.setenv("HOOK_KEY", "k" * 32)
    from soc_agent.pipeline import Pipeline

    pipeline = Pipeline(settings)
    try:
        result = pipeline.process_line(make_alert(
            "shadow_copy_deletion", [("host", "wks-fin-02.corp.example", "dst"),
                                     ("process", "vssadmin.exe:1", "process")],
            alert_id="rw-1", severity="critical", command_line="vssadmin delete shadows /all /quiet"))[0]
        assert result.action == "isolate_host" and result.decision == "deny"
        assert any("no configured responder holds capability edr.isolate" in r for r in result.reasons)
    finally:
        pipeline.close()


def test_cli_rollback_lifts_the_block_in_the_kernel_through_the_configured_firewall(settings, netns, tmp_path,
                                                                                     monkeypatch):
    """``actions rollback`` uses the responders a triage process uses, not a store-only stand-in."""
    import json

    from typer.testing import CliRunner

    from soc_agent.cli import app
    from soc_agent.pipeline import Pipeline

    config = tmp_path / "connectors.yml"
    config.write_text(f"connectors:\n  firewall:\n    type: nftables\n    grant: [firewall.block]\n"
                      f"    options: {{netns: {netns}, mode: cli}}\n")
    monkeypatch.setenv("SOC_AGENT_CONNECTORS", str(config))
    pipeline = Pipeline(settings)
    try:
        for i in range(5):
            pipeline.process_line(make_alert(
                "auth_failure", [("ip", ATTACKER, "src"), ("user", "root", "target"),
                                 ("host", "web01.corp.example", "dst")],
                alert_id=f"rb-{i}", kind="event", severity="low", minutes_ago=(5 - i) / 12,
                service="ssh", outcome="failure"))
    finally:
        pipeline.close()

    def kernel_set() -> str:
        return subprocess.run(["ip", "netns", "exec", netns, "nft", "list", "set", "inet", "soc_agent",
                               "blocked_v4"], capture_output=True, text=True).stdout

    assert ATTACKER in kernel_set()
    runner = CliRunner()
    actions = json.loads(runner.invoke(app, ["actions", "list", "--json", "--workdir", str(settings.workdir)]).stdout)
    block = next(a for a in actions if a["name"] == "block_ip")
    result = runner.invoke(app, ["actions", "rollback", str(block["id"]), "--workdir", str(settings.workdir),
                                 "--by", "ana.lead"])
    assert result.exit_code == 0, result.output
    assert "lifted" in result.stdout
    assert ATTACKER not in kernel_set(), "the kernel no longer drops the address"
