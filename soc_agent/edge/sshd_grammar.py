"""The sshd log grammar, shared by the edge sensor (bytes) and ``connectors.authlog`` (str).

Standard library only, and a leaf module: the sensor imports it without loading
``connectors`` (whose vendor mappings and pydantic would cost several times the
sensor's memory budget), and ``connectors/authlog`` imports it from here.

The user name is client-controlled and logged verbatim (sshd only escapes
control characters), so it can contain spaces, ``from``, ``port``, addresses,
quotes, ``ssh2:``... Every pattern therefore anchors the source address at the
END of the line, where sshd writes it, and takes the user name greedily: the
address is the rightmost ``from <addr> port <n>`` the real grammar allows
there, whatever the name contains. OpenSSH formats (auth.c, auth2.c):

* ``Failed|Accepted METHOD for [invalid user ]USER from ADDR port N ssh2[: INFO]``
  where INFO is ``KEYTYPE FINGERPRINT`` for public keys; certificates
  (``... ID <key id> (serial N) CA ...``), host-based (``..., client user "..",
  client host ".."``) and SSH-1 (``ruser ..``) add free text, partly
  client-controlled. A line with free-text INFO is taken only when exactly one
  ``from ADDR port N sshX: `` occurs in it; if a second one does, the line is
  ambiguous (the name or the free text carries a forged address) and is not
  classified, so it never blocks the address it names.
* ``Invalid user USER from ADDR[ port N]``
* ``Connection closed by|Connection reset by|Disconnected from authenticating user USER ADDR port N [preauth]``
* Legacy ``Failed ... from ADDR[ port N]`` (no protocol), tried only when no
  line of the modern form matches (modern sshd never writes it).
"""

from __future__ import annotations

import re

# ---- syslog headers (unchanged from authlog/edge; the message after them is parsed below) ---------

_SYSLOG = (r"^(?:(?P<bsd>[A-Z][a-z]{2} {1,2}\d{1,2} \d{2}:\d{2}:\d{2})|(?P<iso>\d{4}-\d{2}-\d{2}T\S+))?\s*"
           r"(?:(?P<host>[^\s:\[]+) )?(?P<prog>[\w./-]+)(?:\[(?P<pid>\d+)\])?: (?P<msg>.*)$")
_SD_ELEMENT = r'\[(?:[^\]"]|"(?:[^"\\]|\\.)*")*\]'
# RFC 5424: <PRI>1 TIMESTAMP HOST APP PROCID MSGID STRUCTURED-DATA MSG
_RFC5424 = (r"^<\d{1,3}>1 (?P<iso>\S+) (?P<host>\S+) (?P<prog>\S+) (?P<pid>\S+) \S+ "
            r"(?:-|(?:" + _SD_ELEMENT + r")+) ?(?P<msg>.*)$")

# ---- sshd messages -------------------------------------------------------------------------------

_SOLARIS_ID = r"(?:\[ID \d+ [\w.]+\] )?"
_ADDR = r"[\w.:%-]+"  # IPv4, IPv6 (with zone), or the host name old sshd logged: no space, no quote
_END = r"\s*$"
_LOGIN = r"(?P<method>[\w/-]+) for (?P<invalid>invalid user )?(?P<user>.*) from (?P<ip>" + _ADDR + r")"
_MODERN = r" port (?P<port>\d+) ssh\d?"
_KEY = r"(?:: [A-Z][\w-]* [\w+/=:$.-]+)?"  # ": RSA SHA256:..." / ": DSA 36:48:...": one token, no space
_FREE = r": .*"
_LEGACY = r"(?: port (?P<port>\d+))?(?: ssh\d?)?"
_ANCHOR = r" from " + _ADDR + r" port \d+ ssh\d?: "
_INVALID = _SOLARIS_ID + r"Invalid user (?P<user>.*) from (?P<ip>" + _ADDR + r")(?: port (?P<port>\d+))?" + _END
# A client that offers keys and gives up: no "Failed" line is ever written for it.
_PREAUTH = (r"(?:Connection (?:closed|reset) by|Disconnected from) authenticating user (?P<user>.*) "
            r"(?P<ip>" + _ADDR + r") port (?P<port>\d+) \[preauth\]" + _END)


class Grammar:
    """The patterns compiled for one string type; each method returns the ``re.Match`` or None.

    Matches carry ``user``, ``ip`` and ``port`` (``method`` and ``invalid`` for Failed/Accepted).
    """

    def __init__(self, kind: type) -> None:
        def c(src: str, flags: int = 0) -> re.Pattern:
            if kind is bytes:
                return re.compile(src.encode(), flags)
            return re.compile(src, flags | re.ASCII)

        # Headers keep the flags each side always used (bytes: DOTALL; str: Unicode classes).
        if kind is bytes:
            self.syslog = re.compile(_SYSLOG.encode(), re.DOTALL)
            self.rfc5424 = re.compile(_RFC5424.encode(), re.DOTALL)
        else:
            self.syslog, self.rfc5424 = re.compile(_SYSLOG), re.compile(_RFC5424)
        self._failed = tuple(c(_SOLARIS_ID + "Failed " + _LOGIN + tail + _END) for tail in
                             (_MODERN + _KEY, _MODERN + _FREE, _LEGACY))
        self._accepted = tuple(c("Accepted " + _LOGIN + tail + _END) for tail in
                               (_MODERN + _KEY, _MODERN + _FREE, _LEGACY))
        self._anchor = c(_ANCHOR)
        self._invalid = c(_INVALID)
        self._preauth = c(_PREAUTH)

    def _login(self, patterns: tuple, message):
        strict, free, legacy = patterns
        m = strict.match(message)
        if m is not None:
            return m
        m = free.match(message)
        if m is not None:
            # Free text after the address: take it only when no second address could be the real one.
            return m if len(self._anchor.findall(message)) == 1 else None
        return legacy.match(message)

    def failed(self, message):
        """``Failed METHOD for [invalid user ]USER from ADDR port N ssh2[: INFO]`` (Solaris ``[ID ..]`` too)."""
        return self._login(self._failed, message)

    def accepted(self, message):
        """``Accepted METHOD for USER from ADDR port N ssh2[: INFO]``."""
        return self._login(self._accepted, message)

    def invalid(self, message):
        """``Invalid user USER from ADDR[ port N]``."""
        return self._invalid.match(message)

    def preauth_close(self, message):
        """``Connection closed by authenticating user USER ADDR port N [preauth]`` (a key-only probe)."""
        return self._preauth.match(message)


BYTES = Grammar(bytes)
TEXT = Grammar(str)
