"""``soc-agent approvals show|edit|approve|reject`` go through the same queue as the API."""

from __future__ import annotations

import json

from tests.soc_agent.test_cli import cli


def test_cli_show_then_roles_apply_then_reject(kit, settings):
    kit.seed(kit.crown_jewel)
    workdir = settings.workdir
    shown = cli("approvals", "show", "1", "--json", workdir=workdir)
    assert shown.returncode == 0, shown.stderr
    item = json.loads(shown.stdout)
    assert item["action"] == "isolate_host" and item["blast_radius"]["crown_jewel"]
    assert item["case"]["evidence"]

    refused = cli("approvals", "approve", "1", "--by", "bo", "--role", "analyst", workdir=workdir)
    assert refused.returncode == 1 and "needs a lead" in refused.stderr

    edited = cli("approvals", "edit", "1", "--by", "ana", "--action", "reimage_host", workdir=workdir)
    assert edited.returncode == 1 and "menu" in edited.stderr

    rejected = cli("approvals", "reject", "1", "--by", "ana", "--comment", "not now", workdir=workdir)
    assert rejected.returncode == 0, rejected.stderr
    assert "approval 1: rejected by ana" in rejected.stdout
    again = cli("approvals", "approve", "1", "--by", "ana", workdir=workdir)
    assert again.returncode == 1 and "409" in again.stderr
