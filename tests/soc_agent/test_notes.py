"""Case notes' markdown: alert text reads as written and stays inert (checked with a CommonMark parser)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from markdown_it import MarkdownIt

from soc_agent.notes import CaseNotes, NoteAction, NoteEvidence, TimelineEntry, code, inert, render_markdown
from soc_agent.terminal import safe_text

# CommonMark plus the GFM pieces the notes use or a renderer may add (tables, strikethrough).
MD = MarkdownIt("commonmark").enable("table").enable("strikethrough")

HOSTILE = [
    "# Pwned\n## and again",
    "[click me](http://evil.example/login) ![pixel](http://evil.example/p.png)",
    "<img src=x onerror=alert(1)> <script>alert(1)</script> <http://evil.example/>",
    "ok\n- injected item\n\n# injected heading\n> quote",
    "`code` ``` fence ~~~ and a `` double",
    "cell | break | out",
    "1. ordered",
    "---",
    "    indented code",
    "&lt;b&gt; &#x3C;script&#x3E; **bold** __strong__ _em_ *em* ~~struck~~",
    "title ending in hashes ##",
    "[ref]: http://evil.example/\n[ref]",
    "trailing backslash \\",
    "\u202egnp.exe\x1b[2J\r\n* star item",
]


def _notes(text: str) -> CaseNotes:
    """Notes with ``text`` in every field that comes from an alert or an enricher."""
    return CaseNotes(
        case_id="case-1", run=1, title=text, incident_class="malware", playbook="malware", summary=text,
        timeline=[TimelineEntry(ts=datetime(2026, 1, 1, tzinfo=timezone.utc), alert_id=text, rule_id=text,
                                title=text)],
        entities=[text], evidence=[NoteEvidence(id=text, kind="intel", source=text, summary=text, weight=1.0)],
        verdict="true_positive", confidence=0.9, reasoner="deterministic", reasoning=text, decision="allow",
        decision_reasons=[text], actions=[NoteAction(name="block_ip", tier="contain_soft", target=text,
                                                     status="executed", rollback="unblock_ip", action_id=7)],
        open_questions=[text], similar_cases=[text], earlier_verdict=text, case_work=[text],
    )


def _structure(markdown: str) -> list[str]:
    """Every block and inline token type, text aside: what the markdown does, not what it says."""
    types = []
    for token in MD.parse(markdown):
        types.append(f"{token.type}:{token.tag}")
        types += [f"  {child.type}:{child.tag}" for child in token.children or [] if child.type != "text"]
    return types


def _texts(markdown: str) -> list[str]:
    """The text of each inline run as a reader sees it (code spans included)."""
    return ["".join(child.content for child in token.children or [])
            for token in MD.parse(markdown) if token.type == "inline"]


def test_plain_words_are_not_escaped():
    plain = ("3 distinct alerts (phishing_reported, malware_detected), 1 duplicate; see ticket #12, "
             "C:\\Temp\\ca.pfx, 1.5 GB to 198.51.100.7 (user: alice@corp.example) - done! {ok} 50% a+b=c")
    assert inert(plain) == plain


@pytest.mark.parametrize("text", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_alert_text_cannot_add_a_heading_link_image_html_list_item_or_cell(text):
    benign = render_markdown(_notes("plain words"))
    hostile = render_markdown(_notes(text))
    assert _structure(hostile) == _structure(benign), hostile
    html = MD.render(hostile)
    for tag in ("<a ", "<img", "<script", "<h3", "<blockquote", "<ol", "<del", "<s>", "<pre"):
        assert tag not in html, (tag, html)
    assert html.count("<h1>") == 1 and html.count("<tr>") == 2  # the title; the header and one action row


@pytest.mark.parametrize("text", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_text_reads_as_written_once_rendered(text):
    visible = safe_text(text).lstrip(" ")  # controls and newlines shown as escapes; a leading indent dropped
    texts = _texts(render_markdown(_notes(text)))
    assert f"Case case-1: {visible}" in texts  # the heading
    assert visible in texts  # the summary and the reasoning paragraphs, each list item
    assert any(t.startswith("2026-01-01 00:00:00 " + safe_text(text)) for t in texts)  # the timeline's code span


def test_a_code_span_cannot_be_closed_early():
    for text in ("a`b", "``", "`lead", "trail`", "x ``` y"):
        parsed = MD.parse(f"- {code(text)} after")
        children = next(t for t in parsed if t.type == "inline").children
        assert [c.type for c in children] == ["code_inline", "text"] and children[0].content.strip() == text


def test_newlines_and_controls_stay_on_the_line():
    assert inert("a\nb\r\nc\u2028d\x1b") == "a\\nb\\r\\nc\\u2028d\\x1b"


def test_long_text_is_capped_with_what_was_cut():
    assert inert("x" * 50, limit=10) == "x" * 10 + "… \\[40 more chars\\]"


def test_the_summary_counts_in_words():
    from soc_agent.wording import counted

    assert [counted(1, "alert"), counted(2, "alert"), counted(0, "duplicate"), counted(1, "entity", "entities"),
            counted(3, "entity", "entities")] == ["1 alert", "2 alerts", "0 duplicates", "1 entity", "3 entities"]
