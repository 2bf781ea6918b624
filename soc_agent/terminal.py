"""Printing untrusted text to a terminal.

Alert fields (and anything stored from them) are attacker-controlled. Before
any of it reaches a terminal it goes through ``safe_text``: every character
a terminal would act on or hide is replaced by a visible escape, so a title
cannot clear the screen, retitle the window, reorder what follows it or
hide part of itself. Rich output then wraps the result in ``Text`` (never
parsed as markup, never emoji-expanded) and the CLI's consoles have emoji
codes off, so ``[/]`` cannot crash a table and ``:email:`` stays text.
"""

from __future__ import annotations

import re

from rich.console import Console
from rich.text import Text

# C0 controls, DEL and C1 controls (U+009B is a one-byte CSI), written as \xNN.
_CONTROL = "\x00-\x1f\x7f-\x9f"
# Bidi controls, line/paragraph separators, zero-width and other invisible characters (soft hyphen,
# fillers, tag characters), written as \uNNNN (\UNNNNNNNN above U+FFFF).
_INVISIBLE = ("\u00ad\u061c\u115f\u1160\u17b4\u17b5\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f\u3164"
              "\ufeff\ufff9-\ufffb\uffa0\U000e0000-\U000e007f")
_UNSAFE = re.compile(f"[{_CONTROL}{_INVISIBLE}]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _visible(match: re.Match) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def safe_text(value: object, *, multiline: bool = False) -> str:
    """``value`` as text that is inert on a terminal.

    C0 controls (ESC, BEL, ...), DEL and C1 controls become ``\\x1b``-style
    escapes (newline, carriage return and tab become ``\\n``, ``\\r``,
    ``\\t``); bidi controls (U+202A-U+202E, U+2066-U+2069, U+200E/U+200F,
    U+061C), U+2028/U+2029 and zero-width or invisible characters become
    ``\\u202e``-style escapes. With ``multiline`` newlines (and tabs) are
    kept, for multi-line documents such as case notes. Everything else,
    including Rich markup such as ``[bold]`` or ``:email:``, is returned
    unchanged: print the result as plain text, or through ``safe_cell``.
    ``None`` is the empty string.
    """
    text = "" if value is None else str(value)
    if not multiline:
        return _UNSAFE.sub(_visible, text)
    return "\n".join("\t".join(_UNSAFE.sub(_visible, part) for part in line.split("\t"))
                     for line in text.split("\n"))


def safe_cell(value: object, style: str = "") -> Text:
    """``safe_text(value)`` as a Rich ``Text``: for table cells and ``Console.print``; no markup, no emoji."""
    return Text(safe_text(value), style=style)


def make_console(stderr: bool = False) -> Console:
    """A console for the CLI: emoji codes off, so data that reaches it through a string stays text."""
    return Console(stderr=stderr, emoji=False)
