"""Classify one sshd message as a login attempt, without its syslog header.

The patterns live in ``soc_agent.edge.sshd_grammar`` (the edge sensor parses
the same grammar on bytes). One attempt can produce several lines (``Invalid
user X`` then ``Failed password for invalid user X``; PAM's own failure line
beside sshd's), so only
one line per attempt is counted as ``auth_failure``: PAM lines and the
``maximum authentication attempts`` summary are deliberately not classified.
"""

from __future__ import annotations

from dataclasses import dataclass

# The one sshd grammar, shared with the edge sensor (a stdlib-only leaf module; see its docstring
# for why the user name is anchored at the end of the line).
from soc_agent.edge.sshd_grammar import TEXT as _G


@dataclass(frozen=True)
class SshdAttempt:
    """What one classified sshd line says about a login attempt."""

    rule_id: str
    """``auth_failure``, ``auth_invalid_user`` or ``auth_success``."""
    outcome: str
    """``failure`` or ``success``."""
    user: str | None
    source: str
    """The client address as logged: an IP, or a host name when sshd resolved it."""
    port: int | None
    method: str | None
    invalid_user: bool


def _user(raw: str | None) -> str | None:
    if not raw or raw.startswith("<"):  # Solaris logs "<invalid username>"
        return None
    return raw.strip() or None


def classify(message: str) -> SshdAttempt | None:
    """The attempt a message records, or None when it is not a countable login line."""
    message = message.strip()
    match = _G.failed(message)
    if match:
        user = _user(match["user"])
        return SshdAttempt("auth_failure", "failure", user, match["ip"], _port(match["port"]), match["method"],
                           bool(match["invalid"]) or user is None)
    match = _G.invalid(message)
    if match:
        return SshdAttempt("auth_invalid_user", "failure", _user(match["user"]), match["ip"],
                           _port(match["port"]), None, True)
    match = _G.preauth_close(message)
    if match:
        return SshdAttempt("auth_failure", "failure", _user(match["user"]), match["ip"], _port(match["port"]),
                           "preauth_close", False)
    match = _G.accepted(message)
    if match:
        return SshdAttempt("auth_success", "success", _user(match["user"]), match["ip"], _port(match["port"]),
                           match["method"], False)
    return None


def _port(raw: str | None) -> int | None:
    return int(raw) if raw and len(raw) <= 5 else None
