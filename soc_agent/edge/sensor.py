"""``soc-agent edge``: tail sshd logs, count failures per source, block at the threshold, report upstream.

One process, standard library only (see ``soc_agent/edge/__init__.py``), three
threads: the main loop (follow the log, parse, count, judge, block; never
waits on the network), the reporter (disk queue → server) and the intel
puller (server watchlist → pre-emptive blocks). The hot path per line is a
substring test and, for sshd lines, two compiled regexes; only a crossing
builds strings, asks the local guard and calls nftables.

Repeat offenders: a source's n-th block lasts ``base_ttl * ttl_factor**(n-1)``
seconds, capped by the policy's ``max_ttl_s``. A crossing while the source is
still blocked (lines of connections already open) is not a new offence.

    python -m soc_agent.edge.sensor --log /var/log/auth.log --compiled policy.compiled.json \\
        --state-dir /var/lib/soc-agent-edge [--server URL --sensor-id ID --key-file F] [--netns NS]

``soc-agent edge`` compiles the policy, sets up the responder's nftables
table and then replaces itself with this process.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import signal
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from itertools import chain as _chain
from pathlib import Path
from typing import Any

from soc_agent.edge import parse as _p
from soc_agent.edge.firewall import NftFirewall, NullFirewall
from soc_agent.edge.guardlite import ALLOW, EdgeGuard, _canon, load_compiled
from soc_agent.edge.intel import IntelPuller
from soc_agent.edge.reporter import Reporter
from soc_agent.edge.window import RecentSet, SourceWindows

_SSHD_PROGS = frozenset(_p._SSHD)
_SYSLOG_MATCH = _p._SYSLOG.match
_RFC_MATCH = _p._RFC5424.match
_classify = _p.classify_message
_BSD_LINE = _p.BSD_LINE.match
_BSD_SSHD_ITER = _p.BSD_SSHD.finditer
_BSD_SSHD_MATCH = _p.BSD_SSHD.match
_STARTS = frozenset(b"FI[")


class EdgeSensor:
    """The detection and decision core; feed it lines, it blocks and reports.

    ``firewall``: ``NftFirewall`` or ``NullFirewall``. ``reporter``: anything with
    ``submit(dict)``, or None. ``decisions``: an open text file that gets one line
    per judged crossing, ``<wall time after the block> <ip> <outcome> <ttl> <wall time of the guard's
    verdict>`` (benchmarks read it).
    """

    def __init__(self, guard: EdgeGuard, firewall, reporter=None, *, count: int = 5, window_s: float = 60.0,
                 base_ttl: int = 600, ttl_factor: int = 4, max_sources: int = 100_000,
                 decisions=None, sensor_id: str = "edge", max_flagged: int = 100_000) -> None:
        self.guard, self.firewall, self.reporter = guard, firewall, reporter
        self.windows = SourceWindows(count, window_s, max_sources)
        self.attempts = _p.AttemptCounter()
        self.clock = _p.Clock()
        self.base_ttl, self.ttl_factor = base_ttl, ttl_factor
        self.decisions = decisions
        self.sensor_id = sensor_id
        self.lock = threading.Lock()
        """Held while judging and blocking; the intel thread takes it too."""
        self._offenders: OrderedDict[str, list] = OrderedDict()  # ip -> [offences, blocked_until]
        self._max_offenders = max_sources
        self.intel_blocked: dict[str, float] = {}
        """Addresses blocked on the shared watchlist's word (a retraction lifts only these)."""
        self.intel_allowed: dict[str, bool] = {}
        """Shared allowlist entries applied here -> whether the guard holds them because of the watchlist
        (False: the local allowlist file has the same entry, which a retraction leaves alone)."""
        self.lines = 0
        self.failures = 0
        self.flagged = RecentSet(max_flagged)
        """Sources that crossed the threshold, most recent last; at most ``max_flagged`` (oldest evicted)."""
        self.stats = {"blocked": 0, "denied": 0, "needs_approval": 0, "shadow": 0, "already_blocked": 0,
                      "block_errors": 0, "intel_blocked": 0, "intel_lifted": 0,
                      "intel_errors": 0, "oversize_lines": 0}

    # ---- hot path -----------------------------------------------------------------------------

    def feed_chunk(self, chunk: bytes) -> None:
        """Process ``\n``-separated lines; classic syslog chunks are scanned by one regex in C."""
        if not _BSD_LINE(chunk):
            self.feed(chunk.split(b"\n"))
            return
        self.lines += chunk.count(b"\n") + 1
        counted: list[tuple[bytes, float]] = []
        feed_attempt = self.attempts.feed
        bsd = self.clock.bsd
        classify = _classify
        conns = self.attempts
        nl = chunk.find(b"\n")
        if nl < 0:
            nl = len(chunk)
        # The first line has no newline before it: matched on its own, so the chunk is never copied.
        first = _BSD_SSHD_MATCH(b"\n" + chunk[:nl])
        for m in (_chain((first,), _BSD_SSHD_ITER(chunk, nl)) if first else _BSD_SSHD_ITER(chunk, nl)):
            msg, conn = m.group("msg", "conn")
            # Only a failure, an invalid user or a key probe starts counting; any other line
            # matters only to a connection already seen.
            if msg[0] not in _STARTS and conn not in conns and b"authenticating user " not in msg:
                continue
            hit = classify(msg)
            if hit is not None:
                feed_attempt(conn, hit[0], hit[1], bsd(m["bsd"]), counted)
        if counted:
            self._count(counted)

    def feed(self, lines: list[bytes]) -> None:
        """Process a batch of raw lines (any syslog layout, or journald JSON records), one by one."""
        self.lines += len(lines)
        counted: list[tuple[bytes, float]] = []
        feed_attempt = self.attempts.feed
        bsd = self.clock.bsd
        for line in lines:
            if b"sshd" not in line:
                continue
            if line[:1] == b"{":
                self._journal(line, counted)
                continue
            m = (_RFC_MATCH(line) if line[:1] == b"<" else None) or _SYSLOG_MATCH(line)
            if m is None or m["prog"] not in _SSHD_PROGS:
                continue
            hit = _classify(m["msg"])
            if hit is None:
                continue
            stamp = m["bsd"] if m.re is _p._SYSLOG else None
            if stamp is not None:
                ts = bsd(stamp)
            else:
                ts = (_p.Clock.iso(m["iso"]) if m["iso"] else None) or time.time()
            conn = (m["host"] or b"") + b" " + m["prog"] + b"[" + (m["pid"] or b"") + b"]"
            feed_attempt(conn, hit[0], hit[1], ts, counted)
        if counted:
            self._count(counted)

    def _journal(self, line: bytes, counted: list) -> None:
        try:
            rec = json.loads(line)
        except ValueError:
            return
        prog = rec.get("SYSLOG_IDENTIFIER") or rec.get("_COMM")
        msg = rec.get("MESSAGE")
        if prog not in ("sshd", "sshd-session") or not isinstance(msg, str):
            return
        hit = _classify(msg.encode())
        if hit is None:
            return
        try:
            ts = int(rec["__REALTIME_TIMESTAMP"]) / 1e6
        except (KeyError, ValueError, TypeError):
            ts = time.time()
        conn = f"{rec.get('_HOSTNAME', '')} {prog}[{rec.get('_PID', '')}]".encode()
        self.attempts.feed(conn, hit[0], hit[1], ts, counted)

    def _count(self, counted: list[tuple[bytes, float]]) -> None:
        add = self.windows.add
        self.failures += len(counted)
        for ip, ts in counted:
            if add(ip, ts):
                self.windows.forget(ip)
                self.crossed(ip.decode("ascii", "replace"), ts)

    # ---- decisions ----------------------------------------------------------------------------

    def crossed(self, ip: str, ts: float) -> dict[str, Any]:
        """A source reached the threshold at log time ``ts``: judge, block, record, report."""
        with self.lock:
            self.flagged.add(ip)
            state = self._offenders.get(ip)
            if state is not None:
                self._offenders.move_to_end(ip)
                if ts < state[1]:
                    self.stats["already_blocked"] += 1
                    return {"ip": ip, "outcome": "already_blocked"}
            else:
                state = self._offenders[ip] = [0, 0.0]
                if len(self._offenders) > self._max_offenders:
                    self._offenders.popitem(last=False)
            offence = state[0] + 1
            requested = self.base_ttl * self.ttl_factor ** (offence - 1)
            outcome, ttl, reason = self.guard.judge(ip, requested, ts)
            judged = time.time()
            executed = False
            if outcome == ALLOW and self.guard.shadow:
                outcome, reason = "shadow", f"shadow mode: would block for {ttl}s"
                self.stats["shadow"] += 1
            elif outcome == ALLOW:
                try:
                    # An address the watchlist already blocked may hold a longer block: never shorten it.
                    self.firewall.block(ip, ttl, extend_only=ip in self.intel_blocked)
                    executed = True
                except Exception as exc:  # noqa: BLE001  (reported, never fatal to detection)
                    outcome, reason = "error", f"block failed: {exc}"
                    self.stats["block_errors"] += 1
            decided = time.time()
            if executed:
                state[0], state[1] = offence, ts + ttl
                self.guard.record_block(ts)
                self.stats["blocked"] += 1
            elif outcome in ("deny", "needs_approval"):
                self.stats["denied" if outcome == "deny" else "needs_approval"] += 1
        if self.decisions is not None:
            self.decisions.write(f"{decided:.6f} {ip} {outcome} {ttl} {judged:.6f}\n")
            self.decisions.flush()
        event = {"kind": "threshold", "ip": ip, "outcome": outcome, "executed": executed, "ttl_s": ttl,
                 "offence": offence, "reason": reason, "log_time": ts, "decided_at": decided,
                 "count": self.windows.count, "window_s": self.windows.window_s}
        if self.reporter is not None:
            self.reporter.submit(event)
        return event

    # ---- the shared watchlist -----------------------------------------------------------------

    def apply_intel(self, entry: dict[str, Any]) -> str:
        """Apply one watchlist change through the local guard; returns what was done.

        A change that could not be applied returns (and reports upstream, with
        ``executed: false``) ``"error: ..."`` and is counted in ``intel_errors``.
        """
        ip, action = str(entry.get("value", "")), entry.get("action")
        now = time.time()
        with self.lock:
            try:
                done = self._apply_intel(ip, action, entry, now)
            except Exception as exc:  # noqa: BLE001  (a malformed entry: reported, never fatal)
                done = f"error: {exc}"
            executed = not done.startswith("error")
            if not executed:
                self.stats["intel_errors"] += 1
        if self.reporter is not None:
            self.reporter.submit({"kind": "intel", "ip": ip, "action": action, "outcome": done,
                                  "executed": executed, "version": entry.get("version"), "decided_at": time.time()})
        return done

    def _apply_intel(self, ip: str, action: Any, entry: dict[str, Any], now: float) -> str:
        if action == "allow":
            return self._shared_allow(ip, f"shared allowlist: {entry.get('reason') or 'analyst'}")
        if action == "unallow":
            return self._shared_unallow(ip) or "not on the shared allowlist"
        if action == "remove":
            # A retraction or expiry: of a shared allow (the guard drops it), of a watchlist block (lifted).
            done = [d for d in (self._shared_unallow(ip),
                                self._lift(ip, force=False) if ip in self.intel_blocked else None) if d]
            return "; ".join(done) or "not blocked by intel"
        if action == "block":
            ttl = int(entry.get("ttl_s") or self.base_ttl)
            outcome, ttl, reason = self.guard.judge(ip, ttl, now)
            if outcome != ALLOW or self.guard.shadow:
                return f"{'shadow' if outcome == ALLOW else outcome}: {reason}"
            try:
                self.firewall.block(ip, ttl, extend_only=True)
            except Exception as exc:  # noqa: BLE001
                return f"error: {exc}"
            self.guard.record_block(now)
            self.intel_blocked[ip] = now + ttl
            self.stats["intel_blocked"] += 1
            return "blocked"
        return "ignored"

    def _shared_allow(self, value: str, reason: str) -> str:
        """Add a shared allowlist entry (address or CIDR) and lift the blocks it covers."""
        if value not in self.intel_allowed:
            ours = not self._on_local_allowlist(value)
            if ours:
                self.guard.allow(value, reason)
            self.intel_allowed[value] = ours
        if "/" in value:
            net = ipaddress.ip_network(value, strict=False)
            covered = [a for a in {*self.intel_blocked, *self._offenders} if _in_net(a, net)]
        else:
            covered = [value]
        now = time.time()
        lifted = [self._lift(a, force=True) for a in covered
                  if a in self.intel_blocked or (a in self._offenders and self._offenders[a][1] > now)]
        errors = [r for r in lifted if r.startswith("error")]
        if errors:
            return f"error: allowed, but lifting a block failed: {errors[0][7:]}"
        return f"allowed; lifted {len(lifted)}" if lifted else "allowed"

    def _shared_unallow(self, value: str) -> str | None:
        """Drop a shared allowlist entry; None when the watchlist never allowed ``value`` here."""
        if value not in self.intel_allowed:
            return None
        if self.intel_allowed.pop(value):
            self.guard.unallow(value)
            return "unallowed"
        return "unallowed (the local allowlist still holds it)"

    def _on_local_allowlist(self, value: str) -> bool:
        """``value`` is, as such, an entry of the sensor's own allowlist file (a shared entry never removes it)."""
        if "/" in value:
            net = ipaddress.ip_network(value, strict=False)
            return any(n == net for n, _ in self.guard._allow_nets)
        return (_canon(value) or value) in self.guard._allow_exact

    def _lift(self, ip: str, force: bool) -> str:
        state = self._offenders.get(ip)
        locally = state is not None and state[1] > time.time()
        if ip not in self.intel_blocked and not force:
            return "not blocked by intel"
        if locally and not force:
            self.intel_blocked.pop(ip, None)
            return "kept: blocked by local detection"
        self.intel_blocked.pop(ip, None)
        if state is not None:
            state[1] = 0.0
        try:
            self.firewall.unblock(ip)
        except Exception as exc:  # noqa: BLE001
            return f"error: {exc}"
        self.stats["intel_lifted"] += 1
        return "lifted"

    def summary(self) -> dict[str, Any]:
        """Counters for logs and benchmarks."""
        return {"lines": self.lines, "failures": self.failures, "flagged": len(self.flagged),
                "flagged_evicted": self.flagged.evicted,
                "sources_tracked": len(self.windows), "sources_evicted": self.windows.evicted,
                "open_connections": len(self.attempts), **self.stats}


def _in_net(value: str, net) -> bool:
    try:
        addr = ipaddress.ip_address(value)
    except ValueError:
        return False
    return addr.version == net.version and addr in net


# ---- process ------------------------------------------------------------------------------------


def _args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="soc-agent-edge", description=__doc__.split("\n\n")[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--log", help="sshd syslog file to follow (rotation and truncation handled)")
    src.add_argument("--journal", help="journald JSON export to follow (journalctl -o json), or - for stdin")
    ap.add_argument("--compiled", required=True, help="compiled guard policy (soc_agent.edge.guardlite)")
    ap.add_argument("--state-dir", required=True, help="report queue, intel cursor")
    ap.add_argument("--from-start", action="store_true", help="read what the file holds first")
    ap.add_argument("--replay", action="store_true", help="read the file once to its end and exit")
    ap.add_argument("--server", default=None, help="soc-agent serve URL, e.g. http://127.0.0.1:8080")
    ap.add_argument("--sensor-id", default="edge")
    ap.add_argument("--key-file", default=None, help="this sensor's signing key (hex)")
    ap.add_argument("--netns", default=None, help="block inside this network namespace")
    ap.add_argument("--table", default="soc_agent")
    ap.add_argument("--dry-run", action="store_true", help="judge but never touch nftables")
    ap.add_argument("--count", type=int, default=5)
    ap.add_argument("--window", type=float, default=60.0)
    ap.add_argument("--base-ttl", type=int, default=600)
    ap.add_argument("--ttl-factor", type=int, default=4)
    ap.add_argument("--max-sources", type=int, default=100_000)
    ap.add_argument("--max-flagged", type=int, default=100_000,
                    help="threshold-crossing sources remembered for the summary (oldest dropped first)")
    ap.add_argument("--queue-max", type=int, default=100_000, help="events kept on disk while the server is away")
    ap.add_argument("--intel-interval", type=float, default=10.0)
    ap.add_argument("--decisions", default=None, help="append '<time> <ip> <outcome> <ttl> <judged>' per decision")
    ap.add_argument("--summary", default=None, help="write counters as JSON here on exit")
    ap.add_argument("--max-line-bytes", type=int, default=MAX_LINE_BYTES,
                    help="stdin lines longer than this are skipped and counted, never held whole")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the sensor until SIGTERM / SIGINT (or, with --replay, to the end of the file)."""
    args = _args(argv)
    state = Path(args.state_dir)
    state.mkdir(parents=True, exist_ok=True)
    guard = EdgeGuard(load_compiled(Path(args.compiled)))
    if args.dry_run:
        firewall = NullFirewall()
    else:
        firewall = NftFirewall(args.table, args.netns)
    key = bytes.fromhex(Path(args.key_file).read_text().strip()) if args.key_file else b""
    reporter = Reporter(state / "queue.sqlite3", args.server, args.sensor_id, key, max_events=args.queue_max)
    decisions = open(args.decisions, "a", buffering=1) if args.decisions else None  # noqa: SIM115  (process-long)
    sensor = EdgeSensor(guard, firewall, reporter, count=args.count, window_s=args.window, base_ttl=args.base_ttl,
                        ttl_factor=args.ttl_factor, max_sources=args.max_sources, decisions=decisions,
                        sensor_id=args.sensor_id, max_flagged=args.max_flagged)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    reporter.start()
    puller = None
    if args.server and key and not args.replay:
        puller = IntelPuller(args.server, args.sensor_id, key, state / "intel.cursor", sensor.apply_intel,
                             interval_s=args.intel_interval)
        puller.start()
    follower = None
    if args.journal != "-":
        # deferred: the sensor's memory: tail's ctypes.util pulls in subprocess, not needed when reading stdin
        from soc_agent.edge.tail import FileFollower

        # Opened before announcing the start: every line written after "started" is seen.
        follower = FileFollower(args.log or args.journal, from_start=args.from_start or args.replay)
    print(json.dumps({"edge": "started", "sensor": args.sensor_id, "firewall": firewall.mode,
                      "pid": os.getpid()}), flush=True)
    t0 = time.perf_counter()
    try:
        if follower is None:
            _follow_stdin(sensor, stop, args.max_line_bytes)
        else:
            if args.replay:
                while batch := follower.read_available():
                    for chunk in batch:
                        sensor.feed_chunk(chunk)
            else:
                for batch in follower.follow(stop):
                    for chunk in batch:
                        sensor.feed_chunk(chunk)
            follower.close()
    finally:
        elapsed = time.perf_counter() - t0
        stop.set()
        if puller is not None:
            puller.stop()
        reporter.stop(drain_s=2.0 if args.server and not args.replay else 0.0)
        firewall.close()
        out = sensor.summary() | {"seconds": round(elapsed, 3), "lines_per_s": round(sensor.lines / elapsed)
                                  if elapsed else None, "report_queue": reporter.stats(),
                                  "intel": puller.stats() if puller is not None else None,
                                  "flagged_ips": sorted(sensor.flagged)}
        if args.summary:
            Path(args.summary).write_text(json.dumps(out))
        print(json.dumps({k: v for k, v in out.items() if k != "flagged_ips"}), flush=True)
        if decisions is not None:
            decisions.close()
    return 0


MAX_LINE_BYTES = 256 * 1024
"""Longest stdin line the sensor reads (an sshd line or a journald JSON record is a few KiB at most)."""
_READ = 1 << 20


def stdin_chunks(fd: int, stop: threading.Event, max_line: int = MAX_LINE_BYTES,
                 on_oversize: Callable[[int], None] = lambda _size: None,
                 read_size: int = _READ) -> Iterator[bytes]:
    """Complete lines read from ``fd`` as ``\n``-joined chunks, in memory bounded by ``read_size + max_line``.

    A line longer than ``max_line`` is never held: its bytes are discarded up
    to its newline and ``on_oversize(size)`` is called with its full length.
    The last line is yielded at the end of input even without a newline.
    """
    rest = b""
    skipping = -1  # bytes of the oversize line being discarded so far; -1: not inside one
    while not stop.is_set():
        data = os.read(fd, read_size)
        if not data:
            break
        if skipping >= 0:
            nl = data.find(b"\n")
            if nl < 0:
                skipping += len(data)
                continue
            on_oversize(skipping + nl)
            skipping, data = -1, data[nl + 1:]
        data = rest + data if rest else data
        cut = data.rfind(b"\n")
        if cut < 0:
            rest = data
        else:
            rest = data[cut + 1:]
            chunk = data[:cut]
            if cut > max_line and _has_long_line(chunk, max_line):
                # A long line that arrived whole within one read: skipped and counted all the same.
                kept = []
                for line in chunk.split(b"\n"):
                    if len(line) > max_line:
                        on_oversize(len(line))
                    else:
                        kept.append(line)
                chunk = b"\n".join(kept)
            if chunk:
                yield chunk
        if len(rest) > max_line:
            skipping, rest = len(rest), b""
    if skipping >= 0:
        on_oversize(skipping)
    elif rest:
        yield rest


def _has_long_line(chunk: bytes, max_line: int) -> bool:
    """Does ``chunk`` hold a line longer than ``max_line``? A few ``rfind`` calls per ``max_line`` bytes."""
    start, end = 0, len(chunk)
    while end - start > max_line:
        nl = chunk.rfind(b"\n", start, start + max_line + 1)
        if nl < 0:
            return True  # the line starting at ``start`` runs past the limit
        start = nl + 1
    return False


def _follow_stdin(sensor: EdgeSensor, stop: threading.Event, max_line: int = MAX_LINE_BYTES) -> None:
    def oversize(size: int) -> None:
        sensor.stats["oversize_lines"] = sensor.stats.get("oversize_lines", 0) + 1
        print(json.dumps({"edge": "oversize_line", "bytes": size, "limit": max_line,
                          "action": "skipped (not parsed, not held in memory)"}), file=sys.stderr, flush=True)

    for chunk in stdin_chunks(sys.stdin.fileno(), stop, max_line, oversize):
        sensor.feed_chunk(chunk)


if __name__ == "__main__":
    sys.exit(main())
