"""Map one sshd log line to a raw authentication event.

Input is either a syslog text line (``Feb 12 14:10:21 host sshd[16378]: ...``,
RFC 3339 timestamps too) wrapped by the registry as ``{TEXT_KEY: line}``, or a
``journalctl -o json`` record (``MESSAGE``, ``_HOSTNAME``,
``__REALTIME_TIMESTAMP``). Lines from other programs, and sshd lines that are
not login attempts, are recognised as this format but rejected with a reason.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from connectors._common import Entities, build_alert, digest, fail, parse_time, text, utcnow
from connectors.authlog._sshd import SshdAttempt, classify
from soc_agent.edge.sshd_grammar import TEXT as _GRAMMAR
from soc_agent.types import Alert, EntityKind, Severity

NAME = "authlog"
TEXT_KEY = "syslog_line"
"""The key under which the registry passes a non-JSON text line."""

_SSHD_PROGRAMS = {"sshd", "sshd-session"}
# Header grammar shared with the edge sensor (soc_agent/edge/sshd_grammar.py).
_SYSLOG = _GRAMMAR.syslog
# RFC 5424: <PRI>1 TIMESTAMP HOST APP PROCID MSGID STRUCTURED-DATA MSG
_RFC5424 = _GRAMMAR.rfc5424
# A clock a little ahead of the log writer's must not push today's lines into last year.
_SKEW = timedelta(days=1)


def record_from_text(line: str) -> dict[str, Any]:
    """The record form of a text line, as the registry hands it to ``detect``/``to_alert``."""
    return {TEXT_KEY: line}


def detect(record: dict[str, Any]) -> bool:
    """A syslog-shaped text line, or a journald JSON record."""
    line = record.get(TEXT_KEY)
    if isinstance(line, str):
        return len(record) == 1 and (_SYSLOG.match(line) or _RFC5424.match(line)) is not None
    return (isinstance(record.get("MESSAGE"), str)
            and ("__REALTIME_TIMESTAMP" in record or "_HOSTNAME" in record)
            and ("SYSLOG_IDENTIFIER" in record or "_COMM" in record))


def bsd_time(stamp: str, now: datetime | None = None) -> datetime | None:
    """``Feb 12 14:10:21`` (no year, taken as UTC) in the current year, or the previous one if that is future."""
    now = now or utcnow()
    for year in (now.year, now.year - 1, now.year - 2):  # Feb 29 needs a leap year
        try:
            parsed = datetime.strptime(f"{year} {' '.join(stamp.split())}", "%Y %b %d %H:%M:%S")
        except ValueError:
            continue
        parsed = parsed.replace(tzinfo=timezone.utc)
        if parsed <= now + _SKEW:
            return parsed
    return None


def _from_text(line: str) -> tuple[datetime | None, str | None, str, str | None, str, str]:
    match = _RFC5424.match(line) or _SYSLOG.match(line)
    if match is None:
        raise fail(NAME, "not a syslog line (expected 'Mon DD HH:MM:SS host program[pid]: message')")
    if match.re is _SYSLOG and match["bsd"]:
        timestamp = bsd_time(match["bsd"])
    elif match["iso"]:
        timestamp = parse_time(match["iso"])
        if timestamp is None:
            raise fail(NAME, f"unparseable timestamp {match['iso'][:40]!r}")
    else:
        timestamp = None
    pid = match["pid"] if match["pid"] and match["pid"] != "-" else None
    return timestamp, match["host"], match["prog"], pid, match["msg"], digest(line)


def _from_journal(record: dict[str, Any]) -> tuple[datetime | None, str | None, str, str | None, str, str]:
    program = text(record.get("SYSLOG_IDENTIFIER")) or text(record.get("_COMM")) or ""
    stamp = record.get("__REALTIME_TIMESTAMP")
    timestamp = parse_time(stamp) if stamp is not None else None
    if stamp is not None and timestamp is None:
        raise fail(NAME, "unparseable __REALTIME_TIMESTAMP")
    event_id = text(record.get("__CURSOR"), 256) or digest(record.get("MESSAGE"), stamp, record.get("_HOSTNAME"))
    return (timestamp, text(record.get("_HOSTNAME")), program, text(record.get("_PID")),
            str(record["MESSAGE"]), event_id)


def to_alert(record: dict[str, Any]) -> Alert:
    """Map one sshd line to an ``auth_failure`` / ``auth_invalid_user`` / ``auth_success`` event."""
    line = record.get(TEXT_KEY) if isinstance(record, dict) else None
    if isinstance(line, str):
        timestamp, host, program, pid, message, event_id = _from_text(line)
    elif isinstance(record, dict) and isinstance(record.get("MESSAGE"), str):
        timestamp, host, program, pid, message, event_id = _from_journal(record)
    else:
        raise fail(NAME, f"expected a '{TEXT_KEY}' text line or a journald record with a MESSAGE string")
    if program not in _SSHD_PROGRAMS:
        raise fail(NAME, f"not an sshd line (program {program[:40]!r})")
    attempt = classify(message)
    if attempt is None:
        raise fail(NAME, f"sshd message is not a countable login attempt: {message[:80]!r}")
    inferred = timestamp is None
    # journal-style text without a timestamp: ingest time is the best we have, flagged as such.
    timestamp = timestamp or utcnow()
    return build_alert(
        NAME, record, id=f"authlog:{event_id}", kind="event", rule_id=attempt.rule_id,
        title=_title(attempt), description=message[:16384],
        severity=Severity.INFORMATIONAL if attempt.outcome == "success" else Severity.LOW,
        timestamp=timestamp, entities=_entities(attempt, host),
        attributes={
            "service": "ssh", "outcome": attempt.outcome, "auth_method": attempt.method,
            "invalid_user": attempt.invalid_user, "src_port": attempt.port,
            "program": program, "pid": pid, "time_inferred": inferred or None,
            # One sshd connection is one process on one host: the threshold detector counts an
            # attempt once per connection (a [preauth] close after failures is not another one).
            "connection": f"{host or '-'}/sshd[{pid}]" if pid else None,
            "closes_connection": attempt.method == "preauth_close" or None,
            "announces_attempt": attempt.rule_id == "auth_invalid_user" or None,
        },
    )


def _title(attempt: SshdAttempt) -> str:
    what = {"auth_failure": "failed login", "auth_invalid_user": "invalid user",
            "auth_success": "successful login"}[attempt.rule_id]
    return f"sshd {what} for {attempt.user or '?'} from {attempt.source}"


def _entities(attempt: SshdAttempt, host: str | None) -> list:
    found = Entities()
    found.add_host_or_ip(attempt.source, "src")
    found.add(EntityKind.USER, attempt.user, "target")
    found.add(EntityKind.HOST, host, "dst")
    return found.items
