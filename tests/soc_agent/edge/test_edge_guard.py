"""The edge's compiled guard agrees with soc_agent.guard.decide, and stays fast."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import pytest

from soc_agent.edge.guardlite import EDGE_CLASS, EdgeGuard, compile_policy, edge_policy
from soc_agent.guard import GuardContext, decide
from soc_agent.policy import load_policy
from soc_agent.types import (
    Entity,
    EntityKind,
    Outcome,
    ProposedAction,
    RunMode,
    Tier,
    Verdict,
)

POLICY = Path(__file__).resolve().parents[3] / "playbooks" / "policy.yml"
ADDRESSES = ["203.0.113.9", "198.51.100.10", "8.8.8.8", "10.1.2.3", "192.168.1.1", "172.16.0.5", "100.64.1.1",
             "127.0.0.1", "169.254.1.1", "224.0.0.1", "0.0.0.0", "198.18.0.1", "2001:db8::1", "2606:4700::1",
             "fe80::1", "::1", "240.0.0.1", "not-an-ip"]


def _policy_file(tmp_path: Path, **block) -> Path:
    text = POLICY.read_text()
    if "own_ranges" in block:
        text = text.replace("own_ranges: []", f"own_ranges: {block['own_ranges']}")
    if "kill_switch" in block:
        text = text.replace("kill_switch: false", "kill_switch: true")
    path = tmp_path / "policy.yml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("variant", [{}, {"own_ranges": '["203.0.113.0/28", "2606:4700::/32"]'},
                                     {"kill_switch": True}])
def test_edge_guard_matches_decide_over_addresses_block_counts_and_ttls(tmp_path, variant):
    path = _policy_file(tmp_path, **variant)
    policy = edge_policy(load_policy(path))
    guard = EdgeGuard(compile_policy(path))
    for ip, recent, ttl in itertools.product(ADDRESSES, (0, 19, 20, 50), (0, 600, 86400, 10**6)):
        action = ProposedAction(name="block_ip", tier=Tier.CONTAIN_SOFT, capability="firewall.block",
                                target=Entity(kind=EntityKind.IP, value=ip, role="src"),
                                params={"ttl_seconds": ttl})
        ctx = GuardContext(verdict=Verdict.TRUE_POSITIVE, confidence=0.9, independent_evidence=1,
                           recent_blocks=recent, mode=RunMode.ENFORCE, incident_class=EDGE_CLASS)
        expected = decide(action, ctx, policy)
        guard.block_times.clear()
        guard.block_times.extend([1000.0] * recent)
        outcome, eff_ttl, _ = guard.judge(ip, ttl, 1000.0)
        assert outcome == str(expected.outcome), (ip, recent, ttl, expected.reasons)
        if expected.outcome is Outcome.ALLOW:
            assert eff_ttl == expected.action.params["ttl_seconds"]


def test_allowlisted_address_needs_the_server_and_never_block_wins(tmp_path):
    guard = EdgeGuard(compile_policy(POLICY, POLICY.parents[1] / "demo" / "data" / "allowlists.yml"))
    assert guard.judge("198.51.100.10", 600, 0)[0] == "needs_approval"  # the partner SFTP endpoint
    guard.allow("203.0.113.0/24", "shared allowlist")
    assert guard.judge("203.0.113.7", 600, 0)[0] == "needs_approval"
    guard.unallow("203.0.113.0/24")
    assert guard.judge("203.0.113.7", 600, 0)[0] == "allow"
    assert guard.judge("10.0.0.1", 600, 0)[0] == "deny"


def test_local_judgement_takes_microseconds_where_decide_takes_far_longer():
    guard = EdgeGuard(compile_policy(POLICY))
    policy = load_policy(POLICY)
    n = 2000
    t0 = time.perf_counter()
    for i in range(n):
        guard.judge(f"203.0.113.{i % 250}", 600, float(i * 10))
    lean = (time.perf_counter() - t0) / n
    action = ProposedAction(name="block_ip", tier=Tier.CONTAIN_SOFT, capability="firewall.block",
                            target=Entity(kind=EntityKind.IP, value="203.0.113.9"), params={"ttl_seconds": 600})
    ctx = GuardContext(verdict=Verdict.TRUE_POSITIVE, confidence=0.9, independent_evidence=1, mode=RunMode.ENFORCE)
    t0 = time.perf_counter()
    for _ in range(200):
        decide(action, ctx, policy)
    full = (time.perf_counter() - t0) / 200
    print(f"edge judge {lean * 1e6:.1f} us, guard.decide {full * 1e6:.1f} us")
    assert lean < 100e-6


def test_a_supervised_install_keeps_the_edges_local_authority_and_an_autonomy_file_can_take_it(tmp_path):
    """No autonomy file: the edge still blocks on its own; a file that withholds the class is obeyed."""
    path = _policy_file(tmp_path)
    assert load_policy(path).autonomy is None
    assert compile_policy(path)["base_outcome"] == "allow"
    (tmp_path / "autonomy.yml").write_text(f"autonomy:\n  {EDGE_CLASS}: approval\n")
    assert compile_policy(path)["base_outcome"] == "needs_approval"
