"""``safe_text``: untrusted text made inert for a terminal (the CLI end to end is in test_cli.py)."""

from __future__ import annotations

import io

import pytest
from rich.table import Table

from soc_agent.terminal import make_console, safe_cell, safe_text


@pytest.mark.parametrize("raw, shown", [
    ("\x1b[2J", r"\x1b[2J"),                                     # clear screen
    ("\x1b]0;pwned\x07", r"\x1b]0;pwned\x07"),                   # OSC window title, BEL
    ("\x9b31m", r"\x9b31m"),                                     # C1 CSI
    ("\x85\x7f\x00", r"\x85\x7f\x00"),                           # C1 NEL, DEL, NUL
    ("a\nb\rc\td", r"a\nb\rc\td"),
    ("\u202egnp.exe", r"\u202egnp.exe"),                         # right-to-left override
    ("\u202a\u202b\u202c\u202d", r"\u202a\u202b\u202c\u202d"),
    ("\u2066\u2067\u2068\u2069", r"\u2066\u2067\u2068\u2069"),   # bidi isolates
    ("\u200e\u200f\u061c", r"\u200e\u200f\u061c"),               # directional marks
    ("\u2028\u2029", r"\u2028\u2029"),                           # line and paragraph separators
    ("a\u200bb\u200c\u200d\u2060\ufeff", r"a\u200bb\u200c\u200d\u2060\ufeff"),  # zero-width
    ("\U000e0041", r"\U000e0041"),                               # invisible tag character
])
def test_controls_and_invisible_characters_become_visible_escapes(raw, shown):
    assert safe_text(raw) == shown


def test_ordinary_text_markup_and_emoji_codes_are_left_as_text():
    text = "Ünïcode 日本 C:\\Users\\Public [/] [bold red]x[/bold red] :email: 📧"
    assert safe_text(text) == text
    assert safe_text(None) == "" and safe_text(42) == "42"


def test_multiline_keeps_newlines_and_tabs_and_escapes_the_rest():
    assert safe_text("# title\x1b[2J\n\tline\r\u202e", multiline=True) == "# title\\x1b[2J\n\tline\\r\\u202e"


def _render(*renderables) -> str:
    buffer = io.StringIO()
    console = make_console()
    console.file = buffer
    console.width = 200
    for renderable in renderables:
        console.print(renderable)
    return buffer.getvalue()


def test_cells_are_never_markup_or_emoji():
    table = Table()
    table.add_column("target")
    table.add_row(safe_cell("mal[/]ware [bold]x[/bold] :email:\x1b[2J"))
    out = _render(table, safe_cell("[/] :email:"))
    assert "mal[/]ware [bold]x[/bold] :email:\\x1b[2J" in out
    assert "[/] :email:" in out and "\U0001f4e7" not in out and "\x1b" not in out


def test_the_consoles_have_emoji_codes_off():
    assert ":email:" in _render(":email: in a plain string")
