"""sshd lines to counted login attempts, on bytes, without building alerts.

Line level, this agrees with ``connectors.authlog``: both use the one sshd
grammar in ``soc_agent.edge.sshd_grammar`` (headers and messages; the name is
anchored at the end of the line, so a user name cannot forge the source),
here on bytes, with the same rule ids; ``tests/soc_agent/edge/test_edge_parse.py``
proves it on the shared sample logs. That module is a stdlib-only leaf: importing
``connectors`` would load every vendor mapping and pydantic, several times the
sensor's whole memory budget.

On top of the line classification, :class:`AttemptCounter` counts each failed
attempt once, per sshd connection (host + pid), the way the benchmark's ground
truth defines it:

* every ``Failed <method> for ...`` line counts;
* an ``Invalid user`` connection that ends with no password attempt counts
  once, at the ``Invalid user`` line's time (authlog's ``auth_invalid_user``
  alone never counts: the ``Failed ... invalid user`` after it does);
* ``Connection closed by authenticating user ... [preauth]`` (authlog's
  key-probe ``auth_failure``) counts only when that connection had no counted
  failure: after ``Failed password`` lines it is the same attempt's epilogue.
"""

from __future__ import annotations

import calendar
import re
import time
from collections import OrderedDict
from datetime import datetime

from soc_agent.edge import sshd_grammar as _grammar

FAIL, INVALID, PREAUTH_CLOSE, ACCEPT, CLOSE, CLOSING = 1, 2, 3, 4, 5, 6
"""Line kinds: the first four are authlog's classes; CLOSE is any other last line of a connection
that did not log in, CLOSING a line announcing that end (more lines of the connection follow)."""
RULE_IDS = {FAIL: "auth_failure", INVALID: "auth_invalid_user", PREAUTH_CLOSE: "auth_failure",
            ACCEPT: "auth_success"}
"""The authlog rule id each counted line kind corresponds to."""

_SSHD = (b"sshd", b"sshd-session")
_G = _grammar.BYTES
_SYSLOG = _G.syslog
_RFC5424 = _G.rfc5424
# Lines announcing the end, with the connection's last line still to come.
_CLOSING = (b"Received disconnect from ", b"error: maximum authentication attempts")
# Anything else that ends a connection before authentication completed.
_ENDS = (b"[preauth]", b"Timeout before authentication", b"Disconnecting ", b"Connection closed by ",
         b"Disconnected from ", b"Connection reset by ")
_MONTHS = {m.encode(): i for i, m in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), start=1)}


def _strip(msg: bytes) -> bytes:
    # str.strip() in authlog strips Unicode whitespace; on ASCII bytes these agree.
    return msg.strip()


_FIRST = frozenset(b"FICDA[")  # first bytes authlog's four patterns can match at


def classify_message(message: bytes) -> tuple[int, bytes | None, bytes | None] | None:
    """(kind, source, user) for one sshd message without its header, or None."""
    msg = message.strip() if message[:1].isspace() or message[-1:].isspace() else message
    first = msg[:1]
    if first and first[0] in _FIRST:
        if first == b"F" or first == b"[":
            m = _G.failed(msg)
            if m:
                return FAIL, m["ip"], m["user"]
        if first == b"I" or first == b"[":
            m = _G.invalid(msg)
            if m:
                return INVALID, m["ip"], m["user"]
        elif first == b"C" or first == b"D":
            m = _G.preauth_close(msg)
            if m:
                return PREAUTH_CLOSE, m["ip"], m["user"]
        elif first == b"A":
            m = _G.accepted(msg)
            if m:
                return ACCEPT, m["ip"], m["user"]
    for marker in _CLOSING:
        if msg.startswith(marker):
            return CLOSING, None, None
    for marker in _ENDS:
        if marker in msg:
            return CLOSE, None, None
    return None


# The common case, found by the regex engine over a whole chunk: a BSD-syslog sshd line whose
# message starts like one of the lines above. ``\n`` first lets it skip other lines at memchr speed.
BSD_SSHD = re.compile(
    rb"\n(?P<bsd>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d) (?P<conn>[^\s:\[]+ sshd(?:-session)?\[\d+\]): "
    rb"(?P<msg>(?:Failed |Invalid user |Connection closed by |Connection reset by |Disconnected from |Disconnecting |"
    rb"Received disconnect from |error: maximum authentication|Timeout before authentication|Accepted |\[ID )[^\n]*)")
BSD_LINE = re.compile(rb"[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d [^\s:\[]+ [\w./-]+(?:\[\d+\])?: ")
"""A line in the classic syslog layout: chunks that start with one take the ``BSD_SSHD`` path."""


def split_header(line: bytes):
    """The header match of a syslog / RFC 5424 line, or None (authlog's dead-letter case)."""
    return _RFC5424.match(line) if line[:1] == b"<" and _RFC5424.match(line) else _SYSLOG.match(line)


class Clock:
    """Syslog stamps (``Jun 10 12:00:01``, no year) to epoch seconds, cached per distinct stamp."""

    def __init__(self, now: float | None = None) -> None:
        self._year = time.gmtime(now if now is not None else time.time()).tm_year
        self._now = now
        self._cache: dict[bytes, float] = {}

    def bsd(self, stamp: bytes) -> float:
        """Seconds since the epoch, UTC, in this year unless that is more than a day ahead (authlog's rule)."""
        hit = self._cache.get(stamp)
        if hit is not None:
            return hit
        mon, day, hms = stamp.split()
        h, mi, s = hms.split(b":")
        now = self._now if self._now is not None else time.time()
        value = 0.0
        for year in (self._year, self._year - 1):
            try:
                value = float(calendar.timegm((year, _MONTHS[mon], int(day), int(h), int(mi), int(s))))
            except (KeyError, ValueError, OverflowError):
                return now
            if value <= now + 86400:
                break
        if len(self._cache) > 4096:
            self._cache.clear()
        self._cache[stamp] = value
        return value

    @staticmethod
    def iso(stamp: bytes) -> float | None:
        """RFC 3339 stamp to epoch seconds, None when unparseable."""
        try:
            return datetime.fromisoformat(stamp.decode("ascii")).timestamp()
        except ValueError:
            return None


class AttemptCounter:
    """Turns classified sshd lines into counted failures ``(source, time)``, once per attempt.

    State is one small entry per open sshd connection, capped at ``max_connections``
    (the least recently active is dropped first: its pending ``Invalid user``, if any,
    is counted rather than lost).
    """

    __slots__ = ("_conns", "_max")

    def __init__(self, max_connections: int = 65536) -> None:
        self._conns: OrderedDict[bytes, list] = OrderedDict()  # conn -> [counted?, pending (ip, ts) | None]
        self._max = max_connections

    def feed(self, conn: bytes, kind: int, ip: bytes | None, ts: float, out: list) -> None:
        """Append the failures this line completes to ``out`` as ``(ip_bytes, ts)``."""
        conns = self._conns
        state = conns.get(conn)
        if kind == FAIL:
            if state is None:
                state = conns[conn] = [True, None]
                if len(conns) > self._max:
                    self._evict(out)
            state[0] = True
            state[1] = None  # the Failed line is that Invalid user's attempt
            out.append((ip, ts))
        elif kind == INVALID:
            if state is None:
                state = conns[conn] = [False, None]
                if len(conns) > self._max:
                    self._evict(out)
            elif state[1] is not None:
                out.append(state[1])  # a second name on one connection: the first ended untried
            state[1] = (ip, ts)
        elif kind == PREAUTH_CLOSE:
            if state is None:
                out.append((ip, ts))  # a key-only probe: no Failed line is ever written for it
            else:
                if not state[0]:
                    out.append(state[1] if state[1] is not None else (ip, ts))
                del conns[conn]
        elif kind == CLOSE:
            if state is not None:
                if state[1] is not None:
                    out.append(state[1])
                del conns[conn]
        elif kind == CLOSING:
            if state is not None and state[1] is not None:
                out.append(state[1])
                state[0], state[1] = True, None
        elif kind == ACCEPT and state is not None:
            del conns[conn]

    def _evict(self, out: list) -> None:
        _, state = self._conns.popitem(last=False)
        if state[1] is not None:
            out.append(state[1])

    def __len__(self) -> int:
        return len(self._conns)

    def __contains__(self, conn: bytes) -> bool:
        return conn in self._conns
