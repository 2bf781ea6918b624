"""The web page's pure parts: notes as safe HTML, the queue's sort and filter, who sees which buttons."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

from soc_agent.notes import CaseNotes, NoteAction, render_markdown
from soc_agent.runners.auth import Identity, Role
from soc_agent.runners.ui import (
    filter_and_sort,
    may_roll_back,
    notes_html,
    why_not_decide,
)

HOSTILE = [
    "<script>alert(1)</script>",
    '<img src=x onerror="alert(2)">',
    "[click](javascript:alert(3))",
    "[docs](https://evil.example/login)",
    "<https://evil.example/auto>",
    "![pixel](https://evil.example/p.png)",
    '<div onclick="alert(4)">block</div>',
    "[ref]\n\n[ref]: javascript:alert(5)",
    "<a href=\"javascript:alert(6)\">a</a>",
]


TEXT_TAGS = {"h1", "h2", "h3", "p", "ul", "ol", "li", "strong", "em", "code", "pre", "table", "thead", "tbody",
             "tr", "th", "td", "blockquote", "hr", "br"}


def _elements(html: str) -> list[tuple[str, list]]:
    """Every element the browser would build from ``html``, with its attributes."""
    found: list[tuple[str, list]] = []

    class Collect(HTMLParser):
        def handle_starttag(self, tag, attrs):
            found.append((tag, attrs))

    Collect().feed(html)
    return found


@pytest.mark.parametrize("text", HOSTILE)
def test_markdown_from_anyone_renders_without_markup_links_or_images(text):
    html = notes_html(f"# Case\n\n{text}\n\n- item {text}\n")
    elements = _elements(html)
    assert {tag for tag, _ in elements} <= TEXT_TAGS, html  # no script, img, a, div...
    assert all(not attrs for _, attrs in elements), html  # no onerror, onclick, href, src
    assert "<h1>Case</h1>" in html and "<li>" in html  # still rendered as HTML, not shown as source


def test_raw_html_in_notes_is_shown_as_escaped_text():
    html = notes_html("<script>alert(1)</script> and <b>bold</b>")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "&lt;b&gt;bold&lt;/b&gt;" in html


def test_real_case_notes_render_headings_tables_and_an_inert_hostile_title():
    notes = CaseNotes(
        case_id="case-1", run=1, title='<script>x()</script> [a](javascript:y()) <img src=x onerror=z()>',
        incident_class="phishing", playbook="phishing", summary="1 alert(s)", timeline=[], entities=["user:a"],
        evidence=[], verdict="true_positive", confidence=0.9, reasoner="deterministic", reasoning="r",
        decision="needs_approval", decision_reasons=["needs_approval: executive identity involved"],
        actions=[NoteAction(name="revoke_sessions", tier="contain_soft", target="user:a",
                            status="pending approval", rollback=None)],
        open_questions=[], trace=["ingest"])
    html = notes_html(render_markdown(notes))
    assert html.count("<h2>") >= 5 and "<table>" in html and "<td>revoke_sessions</td>" in html
    assert {tag for tag, _ in _elements(html)} <= TEXT_TAGS and all(not a for _, a in _elements(html))
    assert "&lt;script&gt;" in html


def test_no_notes_say_so():
    assert "no notes yet" in notes_html(None)


def _row(id_, severity, klass, action, age):
    return {"id": id_, "severity": severity, "incident_class": klass, "action": action, "age_s": age}


ROWS = [_row(1, "medium", "phishing", "quarantine_email", 50), _row(2, "critical", "malware", "isolate_host", 10),
        _row(3, "high", "impossible_travel", "revoke_sessions", 90), _row(4, "high", "phishing", "block_domain", 5)]


def test_queue_sorts_oldest_first_by_default_and_by_severity_or_class_on_request():
    assert [r["id"] for r in filter_and_sort(ROWS, "age", "", "", "")] == [3, 1, 2, 4]
    assert [r["id"] for r in filter_and_sort(ROWS, "severity", "", "", "")] == [2, 3, 4, 1]
    assert [r["id"] for r in filter_and_sort(ROWS, "class", "", "", "")] == [3, 2, 4, 1]


def test_queue_filters_combine():
    assert [r["id"] for r in filter_and_sort(ROWS, "age", "phishing", "", "")] == [1, 4]
    assert [r["id"] for r in filter_and_sort(ROWS, "age", "phishing", "", "high")] == [4]
    assert filter_and_sort(ROWS, "age", "phishing", "isolate_host", "") == []


ITEM = {"id": 7, "status": "pending", "required_role": "lead", "escalated": False, "requested_by": "soc-agent",
        "approvals": []}


def test_only_roles_that_may_decide_get_the_buttons():
    analyst, lead, viewer = (Identity("bo", Role.ANALYST), Identity("ana", Role.LEAD), Identity("vic", Role.VIEWER))
    why, may_reject = why_not_decide(ITEM, analyst)
    assert "needs a lead" in why and not may_reject
    assert why_not_decide(ITEM, lead) == (None, True)
    assert "only an analyst or a lead" in why_not_decide(ITEM, viewer)[0]
    analyst_item = {**ITEM, "required_role": "analyst"}
    assert why_not_decide(analyst_item, analyst) == (None, True)
    # The one who raised it, or who already gave the first of two approvals, may still reject.
    why, may_reject = why_not_decide({**analyst_item, "requested_by": "bo"}, analyst)
    assert "cannot approve" in why and may_reject
    why, may_reject = why_not_decide({**ITEM, "approvals": [{"by": "ana"}]}, lead)
    assert "two-person rule" in why and may_reject
    assert why_not_decide({**ITEM, "status": "approved"}, lead)[1] is False


def test_only_a_lead_rolls_back():
    assert may_roll_back(Identity("ana", Role.LEAD)) and may_roll_back(Identity("op", Role.PLATFORM))
    assert not may_roll_back(Identity("bo", Role.ANALYST))
