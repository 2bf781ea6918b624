"""The nftables responder against the real kernel, inside throwaway network namespaces.

Topology per test (nothing touches the host's own namespace)::

    socagent-test-<pid>-<n>  (responder runs here)      socagent-test-<pid>-<n>-peer
      veth0 10.200.0.1/24  fd00:200::1/64   <------->     veth0 10.200.0.2, 10.200.0.3 /24
                                                                fd00:200::2, fd00:200::3 /64

Traffic is a TCP connect from a peer address to a listener in the responder's
namespace: a dropped SYN shows up as a connect timeout. Skips, saying why, where
namespaces or nftables are not available (no root, no kernel support, no nft).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import itertools
import os
import shutil
import socket
import statistics
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone

import pytest

from connectors.nftables import NftablesError, NftablesResponder, NftablesUnavailable
from soc_agent.types import Entity, EntityKind, ProposedAction, Tier

HOST4, BAD4, GOOD4 = "10.200.0.1", "10.200.0.2", "10.200.0.3"
HOST6, BAD6, GOOD6 = "fd00:200::1", "fd00:200::2", "fd00:200::3"
NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)
_counter = itertools.count()
_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=False)


def _namespaces() -> set[str]:
    return {line.split()[0] for line in _ip("netns", "list").stdout.splitlines() if line.strip()}


@dataclass
class Lab:
    """Two namespaces joined by a veth pair, and a TCP listener (v4 and v6) in ``ns``."""

    ns: str
    peer: str
    port4: int = 0
    port6: int = 0


@contextlib.contextmanager
def _socket_in(ns: str, family: int) -> Iterator[socket.socket]:
    """A socket opened inside ``ns``: a socket belongs to the namespace it was created in."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{ns}", os.O_RDONLY)
    try:
        assert _libc.setns(target, 0x40000000) == 0, os.strerror(ctypes.get_errno())
        try:
            sock = socket.socket(family, socket.SOCK_STREAM)
        finally:
            assert _libc.setns(home, 0x40000000) == 0, "could not leave the test namespace"
    finally:
        os.close(target)
        os.close(home)
    with sock:
        yield sock


@contextlib.contextmanager
def make_lab() -> Iterator[Lab]:
    """Create the namespaces; always delete them, whatever happened in between."""
    if shutil.which("ip") is None:
        pytest.skip("iproute2 (ip) is not installed")
    ns = f"socagent-test-{os.getpid()}-{next(_counter)}"
    lab = Lab(ns=ns, peer=f"{ns}-peer")
    made = _ip("netns", "add", lab.ns)
    if made.returncode != 0:
        pytest.skip(f"cannot create a network namespace (needs root and netns support): {made.stderr.strip()}")
    try:
        assert _ip("netns", "add", lab.peer).returncode == 0
        for cmd in (
            ["-n", lab.ns, "link", "add", "veth0", "type", "veth", "peer", "name", "veth0", "netns", lab.peer],
            ["-n", lab.ns, "addr", "add", f"{HOST4}/24", "dev", "veth0"],
            ["-n", lab.ns, "addr", "add", f"{HOST6}/64", "dev", "veth0", "nodad"],
            ["-n", lab.peer, "addr", "add", f"{BAD4}/24", "dev", "veth0"],
            ["-n", lab.peer, "addr", "add", f"{GOOD4}/24", "dev", "veth0"],
            ["-n", lab.peer, "addr", "add", f"{BAD6}/64", "dev", "veth0", "nodad"],
            ["-n", lab.peer, "addr", "add", f"{GOOD6}/64", "dev", "veth0", "nodad"],
            *(["-n", n, "link", "set", dev, "up"] for n in (lab.ns, lab.peer) for dev in ("lo", "veth0")),
        ):
            done = _ip(*cmd)
            if done.returncode != 0:
                pytest.skip(f"cannot build the veth pair ({' '.join(cmd)}): {done.stderr.strip()}")
        with _socket_in(lab.ns, socket.AF_INET) as l4, _socket_in(lab.ns, socket.AF_INET6) as l6:
            l4.bind((HOST4, 0))
            l6.bind((HOST6, 0))
            l4.listen(256)
            l6.listen(256)
            lab.port4, lab.port6 = l4.getsockname()[1], l6.getsockname()[1]
            yield lab
    finally:
        _ip("netns", "del", lab.peer)
        _ip("netns", "del", lab.ns)


def connects(lab: Lab, src: str, timeout: float = 2.0) -> bool:
    """Can ``src`` (a peer address) complete a TCP handshake with the listener?"""
    v6 = ":" in src
    with _socket_in(lab.peer, socket.AF_INET6 if v6 else socket.AF_INET) as sock:
        sock.settimeout(timeout)
        sock.bind((src, 0))
        try:
            sock.connect((HOST6, lab.port6) if v6 else (HOST4, lab.port4))
        except (TimeoutError, OSError):
            return False
        return True


def list_set(lab: Lab, name: str) -> str:
    """The set as ``nft`` itself shows it from inside the namespace: an independent witness."""
    out = subprocess.run(["ip", "netns", "exec", lab.ns, "nft", "list", "set", "inet", "soc_agent", name],
                         capture_output=True, text=True, check=True)
    return out.stdout


def block(address: str, ttl: object = 60) -> ProposedAction:
    params = {} if ttl is None else {"ttl_seconds": ttl}
    return ProposedAction(name="block_ip", tier=Tier.CONTAIN_SOFT, capability="firewall.block",
                          target=Entity(kind=EntityKind.IP, value=address), params=params, rollback="unblock_ip")


@pytest.fixture
def lab() -> Iterator[Lab]:
    with make_lab() as made:
        yield made


def _responder(lab: Lab, mode: str) -> NftablesResponder:
    if mode == "cli" and shutil.which("nft") is None:
        pytest.skip("nft is not installed (Debian package nftables)")
    try:
        responder = NftablesResponder(netns=lab.ns, mode=mode)
    except NftablesUnavailable as exc:
        pytest.skip(f"nftables unavailable: {exc}")
    try:
        responder.setup()
    except NftablesError as exc:
        responder.close()
        pytest.skip(f"kernel refused the nftables table (no nf_tables support?): {exc}")
    return responder


@pytest.fixture(params=["lib", "cli"])
def responder(request: pytest.FixtureRequest, lab: Lab) -> Iterator[NftablesResponder]:
    """A set-up responder in the lab namespace, in each backend mode."""
    if shutil.which("nft") is None:
        pytest.skip("nft is not installed (Debian package nftables)")
    r = _responder(lab, request.param)
    yield r
    r.close()


@pytest.fixture
def fast(lab: Lab) -> Iterator[NftablesResponder]:
    """The in-process responder only, for tests whose behaviour does not depend on the backend."""
    if shutil.which("nft") is None:
        pytest.skip("nft is not installed (Debian package nftables)")
    r = _responder(lab, "auto")
    yield r
    r.close()


# ---- behaviour --------------------------------------------------------------------------------


def test_blocked_address_is_in_the_set_and_its_traffic_is_dropped(lab: Lab, responder: NftablesResponder):
    assert connects(lab, BAD4) and connects(lab, GOOD4)
    result = responder.execute(block(BAD4), "case-1", 1, NOW)
    assert result["target"] == BAD4 and result["already_active"] is False
    assert BAD4 in list_set(lab, "blocked_v4")
    assert responder.verify(block(BAD4))
    assert not connects(lab, BAD4, timeout=0.5)
    assert connects(lab, GOOD4)
    assert not responder.verify(block(GOOD4))


def test_ipv6_block_drops_only_the_blocked_address(lab: Lab, responder: NftablesResponder):
    assert connects(lab, BAD6) and connects(lab, GOOD6)
    responder.execute(block(BAD6.upper().replace("::", ":0:0:0:0:0:")), "case-1", 1, NOW)  # non-canonical form
    assert BAD6 in list_set(lab, "blocked_v6")
    assert responder.verify(block(BAD6))
    assert not connects(lab, BAD6, timeout=0.5)
    assert connects(lab, GOOD6)
    assert connects(lab, BAD4), "an IPv6 block does not touch IPv4"


def test_blocking_twice_is_idempotent_and_only_ever_extends(lab: Lab, responder: NftablesResponder):
    responder.execute(block(BAD4, ttl=60), "case-1", 1, NOW)
    again = responder.execute(block(BAD4, ttl=60), "case-1", 2, NOW)
    assert again["already_active"] is True
    assert list_set(lab, "blocked_v4").count(BAD4) == 1
    longer = responder.execute(block(BAD4, ttl=3600), "case-2", 3, NOW)
    assert longer["already_active"] is True
    assert responder._remaining(BAD4, "blocked_v4") > 3000  # extended
    responder.execute(block(BAD4, ttl=5), "case-3", 4, NOW)
    assert responder._remaining(BAD4, "blocked_v4") > 3000  # a shorter repeat never shortens


def test_a_short_ttl_is_expired_by_the_kernel(lab: Lab, responder: NftablesResponder):
    responder.execute(block(BAD4, ttl=2), "case-1", 1, NOW)
    assert responder.verify(block(BAD4))
    deadline = time.monotonic() + 5
    while responder.verify(block(BAD4)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not responder.verify(block(BAD4)), "element still present 5 s after a 2 s TTL"
    assert BAD4 not in list_set(lab, "blocked_v4")
    assert connects(lab, BAD4)
    assert responder.expire(NOW) == [], "the kernel expires; the responder reports nothing"


def test_rollback_lifts_the_block_and_a_missing_element_is_fine(lab: Lab, responder: NftablesResponder):
    responder.execute(block(BAD4), "case-1", 1, NOW)
    assert responder.rollback(block(BAD4), "case-1", NOW)["lifted"] is True
    assert BAD4 not in list_set(lab, "blocked_v4")
    assert not responder.verify(block(BAD4))
    assert connects(lab, BAD4)
    responder.rollback(block(BAD4), "case-1", NOW)  # already gone: no error
    responder.rollback(block(BAD6), "case-1", NOW)  # never blocked: no error


def test_unblock_ip_runs_through_execute(fast: NftablesResponder):
    fast.execute(block(BAD4), "case-1", 1, NOW)
    unblock = block(BAD4).model_copy(update={"name": "unblock_ip", "params": {}})
    fast.execute(unblock, "case-1", 2, NOW)
    assert not fast.verify(block(BAD4))


@pytest.mark.parametrize("ttl", [None, 0, -5, "abc", 1.5, True, [60]])
def test_ttl_is_required_positive_and_whole(fast: NftablesResponder, ttl: object):
    with pytest.raises(NftablesError, match="ttl_seconds"):
        fast.execute(block(BAD4, ttl=ttl), "case-1", 1, NOW)
    assert not fast.verify(block(BAD4))


@pytest.mark.parametrize("value", ["not-an-ip", "10.200.0.2 }; flush ruleset; add element inet x y {", "10.0.0.0/8",
                                   "fe80::1%veth0"])
def test_only_a_single_plain_address_is_accepted(fast: NftablesResponder, value: str):
    with pytest.raises(NftablesError):
        fast.execute(block(value), "case-1", 1, NOW)


def test_ipv4_mapped_ipv6_goes_to_the_ipv4_set(lab: Lab, fast: NftablesResponder):
    fast.execute(block(f"::ffff:{BAD4}"), "case-1", 1, NOW)
    assert BAD4 in list_set(lab, "blocked_v4")
    assert not connects(lab, BAD4, timeout=0.5)


def test_setup_is_idempotent_and_keeps_blocks_and_teardown_removes_the_table(lab: Lab, fast: NftablesResponder):
    fast.execute(block(BAD4), "case-1", 1, NOW)
    fast.setup()
    fast.setup()
    rules = subprocess.run(["ip", "netns", "exec", lab.ns, "nft", "list", "chain", "inet", "soc_agent", "input"],
                           capture_output=True, text=True, check=True).stdout
    assert rules.count("drop") == 2, rules
    assert fast.verify(block(BAD4)) and not connects(lab, BAD4, timeout=0.5)
    fast.teardown()
    fast.teardown()  # already gone: fine
    tables = subprocess.run(["ip", "netns", "exec", lab.ns, "nft", "list", "tables"],
                            capture_output=True, text=True, check=True).stdout
    assert "soc_agent" not in tables
    assert connects(lab, BAD4)


def test_a_missing_namespace_is_a_clear_error():
    if shutil.which("nft") is None:
        pytest.skip("nft is not installed (Debian package nftables)")
    with pytest.raises(NftablesUnavailable, match="no network namespace 'socagent-test-absent'|CAP_"):
        NftablesResponder(netns="socagent-test-absent")


def test_non_block_actions_are_refused(fast: NftablesResponder):
    with pytest.raises(NftablesError, match="cannot run isolate_host"):
        fast.execute(block(BAD4).model_copy(update={"name": "isolate_host"}), "case-1", 1, NOW)


def test_the_namespaces_are_removed_even_when_the_test_fails():
    with pytest.raises(RuntimeError), make_lab() as lab:
        assert {lab.ns, lab.peer} <= _namespaces()
        raise RuntimeError("boom")
    assert not {lab.ns, lab.peer} & _namespaces()


@pytest.mark.parametrize("mode", ["lib", "cli"])
def test_block_latency(lab: Lab, mode: str, capsys: pytest.CaptureFixture[str]):
    """200 blocks of fresh addresses; prints the median. Asserts only that every one landed."""
    r = _responder(lab, mode)
    try:
        times = []
        for i in range(200):
            action = block(f"10.201.{i // 250}.{i % 250 + 1}", ttl=600)
            start = time.perf_counter()
            r.execute(action, "bench", i, NOW)
            times.append(time.perf_counter() - start)
        assert list_set(lab, "blocked_v4").count("10.201.") == 200
        with capsys.disabled():
            print(f"\n[nftables {mode}] block_ip median {statistics.median(times) * 1e3:.3f} ms, "
                  f"p95 {sorted(times)[189] * 1e3:.3f} ms over 200 calls")
    finally:
        r.close()
