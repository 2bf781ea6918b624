"""Isolation and permission removal carried out in the kernel (in a netns) and at the IdP.

Kernel: the nftables lab of ``tests/connectors/test_nftables.py`` (two namespaces and a
veth pair, a listener in ``lab.ns``). The agent's host is ``lab.peer``: the egress drop is
installed there and connections are made from there as a given OS user
(``setpriv`` + bash's ``/dev/tcp``), so the drop is keyed on the socket's owner.
IdP: the Okta responder against the Okta API replay the connector tests use.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
from collections.abc import Iterator

import pytest

from connectors.nftables import NftablesError, NftablesUnavailable
from connectors.okta import OktaResponder
from soc_agent.pdp.enforce import AgentAccount, EgressBlock, Enforcer, IdpRevoke
from connectors.base import ResponderError
from tests.connectors.test_nftables import HOST4, Lab, _socket_in, make_lab
from tests.connectors.test_okta import USER_ID, FakeOkta, _client

AGENT_UID, OTHER_UID = 65534, 65533


def _decision(outcome: str, removed: list[str] | None = None, ttl: int | None = None) -> dict:
    return {"decision_id": "d-1", "decision": outcome, "risk": {"score": 1.0, "level": "critical"},
            "reasons": ["test"], "obligations": {"remove_permissions": removed or [], "ttl_s": ttl}}


def connects_as(lab: Lab, uid: int, host: str, port: int) -> bool:
    """Can OS user ``uid`` on the agent's host (``lab.peer``) open a TCP connection to host:port?"""
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is not installed")
    done = subprocess.run(
        ["ip", "netns", "exec", lab.peer, "setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
         "timeout", "1", "bash", "-c", f"exec 3<>/dev/tcp/{host}/{port}"],
        capture_output=True, text=True, check=False)
    return done.returncode == 0


@pytest.fixture
def lab() -> Iterator[Lab]:
    with make_lab() as made:
        yield made


@pytest.fixture
def egress(lab: Lab) -> Iterator[EgressBlock]:
    if shutil.which("nft") is None:
        pytest.skip("nft is not installed (Debian package nftables)")
    try:
        block = EgressBlock(netns=lab.peer)
    except NftablesUnavailable as exc:
        pytest.skip(f"nftables unavailable: {exc}")
    try:
        block.setup()
    except NftablesError as exc:
        block.close()
        pytest.skip(f"kernel refused the nftables table: {exc}")
    yield block
    block.close()


@pytest.fixture
def loopback_port(lab: Lab) -> Iterator[int]:
    """A listener on the agent host's own loopback."""
    with _socket_in(lab.peer, socket.AF_INET) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield sock.getsockname()[1]


def test_isolation_drops_only_the_agent_users_outbound_traffic(lab: Lab, egress: EgressBlock, loopback_port: int):
    assert connects_as(lab, AGENT_UID, HOST4, lab.port4) and connects_as(lab, OTHER_UID, HOST4, lab.port4)
    enforcer = Enforcer({"agent-7": AgentAccount(uid=AGENT_UID)}, egress=egress)
    done = enforcer.apply("agent-7", _decision("isolate_agent"))
    assert done == [{"effect": "egress_dropped", "uid": AGENT_UID, "ttl_s": None, "already_active": False}]
    assert not connects_as(lab, AGENT_UID, HOST4, lab.port4)
    assert connects_as(lab, OTHER_UID, HOST4, lab.port4), "another user on the same host keeps its network"
    assert connects_as(lab, AGENT_UID, "127.0.0.1", loopback_port), "loopback (a local PDP) stays reachable"
    assert egress.remaining(AGENT_UID) == -1, "isolation has no TTL: a person lifts it"
    listed = subprocess.run(["ip", "netns", "exec", lab.peer, "nft", "list", "table", "inet", "soc_agent_pdp"],
                            capture_output=True, text=True, check=True).stdout
    assert "meta skuid @agent_uids" in listed and str(AGENT_UID) in listed
    egress.unblock(AGENT_UID)
    assert connects_as(lab, AGENT_UID, HOST4, lab.port4)


def test_removing_net_outbound_drops_egress_for_the_decisions_ttl(lab: Lab, egress: EgressBlock):
    enforcer = Enforcer({"agent-7": AgentAccount(uid=AGENT_UID)}, egress=egress)
    enforcer.apply("agent-7", _decision("remove_permissions", ["net:outbound"], ttl=600))
    assert 590 <= egress.remaining(AGENT_UID) <= 600
    assert not connects_as(lab, AGENT_UID, HOST4, lab.port4)
    enforcer.apply("agent-7", _decision("remove_permissions", ["net:outbound"], ttl=60))
    assert egress.remaining(AGENT_UID) > 500, "a shorter repeat never shortens the drop"


def test_other_removed_permissions_and_unknown_agents_touch_nothing(lab: Lab, egress: EgressBlock):
    enforcer = Enforcer({"agent-7": AgentAccount(uid=AGENT_UID)}, egress=egress)
    assert enforcer.apply("agent-7", _decision("remove_permissions", ["db:write"])) == []
    assert enforcer.apply("agent-9", _decision("isolate_agent")) == []
    assert enforcer.apply("agent-7", _decision("deny")) == []
    assert egress.remaining(AGENT_UID) is None
    assert connects_as(lab, AGENT_UID, HOST4, lab.port4)


def test_setup_is_idempotent_and_teardown_removes_the_table(lab: Lab, egress: EgressBlock):
    egress.block(AGENT_UID)
    egress.setup()
    egress.setup()
    chain = subprocess.run(["ip", "netns", "exec", lab.peer, "nft", "list", "chain", "inet", "soc_agent_pdp",
                            "output"], capture_output=True, text=True, check=True).stdout
    assert chain.count("drop") == 1, chain
    assert egress.remaining(AGENT_UID) == -1
    egress.teardown()
    egress.teardown()
    assert connects_as(lab, AGENT_UID, HOST4, lab.port4)


@pytest.mark.parametrize("uid", [-1, 2**32 - 1, "0; flush ruleset", True, 1.5])
def test_only_a_plain_uid_is_accepted(egress: EgressBlock, uid: object):
    with pytest.raises(ResponderError, match="uid"):
        egress.block(uid)  # type: ignore[arg-type]


def test_isolation_revokes_the_agents_sessions_at_the_idp():
    okta = FakeOkta()
    enforcer = Enforcer({"agent-7": AgentAccount(idp_user="dana.reyes@example.com")},
                        idp=IdpRevoke(OktaResponder(_client(okta)), disable=True))
    done = enforcer.apply("agent-7", _decision("isolate_agent"))
    assert [d["effect"] for d in done] == ["idp_revoked"]
    assert ("DELETE", f"/api/v1/users/{USER_ID}/sessions") in okta.calls
    assert okta.user["status"] == "SUSPENDED"
    okta.calls.clear()
    assert enforcer.apply("agent-7", _decision("remove_permissions", ["net:outbound"])) == []
    assert okta.calls == [], "removing a permission does not revoke the identity"


def test_an_idp_failure_is_reported_not_swallowed():
    okta = FakeOkta()
    okta.forbid_writes = True
    enforcer = Enforcer({"agent-7": AgentAccount(idp_user="dana.reyes@example.com")},
                        idp=IdpRevoke(OktaResponder(_client(okta))))
    [done] = enforcer.apply("agent-7", _decision("isolate_agent"))
    assert done["effect"] == "idp_revoked" and "okta.users.manage" in done["error"]
