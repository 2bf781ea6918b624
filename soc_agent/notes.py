"""Case notes: a structured record of one decision and its markdown rendering.

Alert text is attacker-controlled: every string from an alert is rendered as
inert text (control characters escaped, markdown and HTML neutralised,
length-capped) so a note can be pasted into a ticket or a web page safely.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel, Field

from soc_agent.terminal import safe_text

_ASCII_PUNCTUATION = frozenset("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")
# Characters that open inline markup wherever they stand: emphasis (``*``), code spans, links and images
# (``[``, ``]``), autolinks and raw HTML (``<``), GFM strikethrough (``~``) and table cells (``|``).
_ALWAYS = frozenset("*`[]<~|")
_ENTITY = re.compile(r"&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});")
# Block markers at the start of a line (escaped where the group that matched starts): a heading, a block
# quote, a bullet or a setext underline, an ordered list item ("1." / "1)").
_BLOCK_START = re.compile(r"(#)#{0,5}(?=\s|$)|(>)|([-+=])(?=[-+=\s]|$)|\d{1,9}([.)])(?=\s|$)")
# GFM's extended autolinks turn bare URLs into links: escaping the colon of ``scheme://`` and the dot of
# ``www.`` keeps the text as written and the link out.
_BARE_LINK = re.compile(r"(?<=[A-Za-z])(:)(?=//)|(?<![\w.-])(?i:www)(\.)")
# A run of "#" at the end of a heading line is its closing sequence, which renderers drop.
_CLOSING_HASHES = re.compile(r"(?<=\s)#+\s*$")


def _cap(value: str, limit: int) -> str:
    """One line of visible characters, at most ``limit`` of them before a marker of what was cut."""
    value = safe_text(value)  # controls, newlines, bidi and invisible characters as visible escapes
    if len(value) > limit:
        value = value[:limit] + f"… [{len(value) - limit} more chars]"
    return value


def inert(text: object, limit: int = 300) -> str:
    """Render untrusted text as one inert markdown line, readable as written.

    Only what CommonMark (and GFM's tables, strikethrough and autolinks) would
    act on is escaped: ``*``, backticks, ``[``, ``]``, ``<``, ``~`` and ``|``
    everywhere; ``_`` unless inside a word (``phishing_reported`` stays as it
    is); ``\\`` before punctuation or at the end; ``&`` that starts an entity;
    a block marker at the start (``#``, ``>``, ``-``, ``+``, ``=``, ``1.``),
    a heading's closing ``#`` run, the ``://`` of a bare URL and the dot of
    ``www.``. Newlines and control characters become visible escapes, so the
    text stays on its line (a list item, a table cell, a heading) and opens
    no heading, link, image, HTML tag, code span or list item of its own.
    Leading spaces (an indented code block) are dropped. For code spans use
    :func:`code`.
    """
    value = _cap(str(text), limit).lstrip(" ")
    marks = {m.start(m.lastindex) for m in _BARE_LINK.finditer(value)}
    if (start := _BLOCK_START.match(value)) is not None:
        marks.add(start.start(start.lastindex))
    if (hashes := _CLOSING_HASHES.search(value)) is not None:
        marks.add(hashes.start())
    out = []
    for i, char in enumerate(value):
        before, after = value[i - 1: i], value[i + 1: i + 2]
        if i in marks or char in _ALWAYS or (char == "\\" and (not after or after in _ASCII_PUNCTUATION)) \
                or (char == "_" and not (before.isalnum() and after.isalnum())) \
                or (char == "&" and _ENTITY.match(value, i)):
            out.append("\\")
        out.append(char)
    return "".join(out)


def code(text: object, limit: int = 120) -> str:
    """Untrusted text as one inline code span, fenced by more backticks than any run inside it (CommonMark
    has no escapes in code spans), so it cannot close early; controls and newlines as visible escapes.
    Not for table cells (a ``|`` there would split the cell)."""
    value = _cap(str(text), limit)
    fence = "`" * (max((len(run) for run in re.findall(r"`+", value)), default=0) + 1)
    pad = " " if not value.strip(" ") or value[0] == "`" or value[-1] == "`" or (value[0] == value[-1] == " ") \
        else ""
    return f"{fence}{pad}{value}{pad}{fence}"


class TimelineEntry(BaseModel):
    """One alert in the case's timeline."""

    ts: datetime
    alert_id: str
    rule_id: str
    title: str


class NoteEvidence(BaseModel):
    """One evidence item as the note shows it."""

    id: str
    kind: str
    source: str
    summary: str
    weight: float


class NoteAction(BaseModel):
    """An action proposed for the case and what became of it."""

    name: str
    tier: str
    target: str | None
    status: str = Field(description="executed | already in effect (by action N); this action owns nothing | "
                                    "recorded (shadow) | pending approval | denied | rejected | failed")
    rollback: str | None
    action_id: int | None = None


class CaseNotes(BaseModel):
    """The case notes: everything an analyst needs to check the agent's work."""

    case_id: str
    run: int
    title: str
    incident_class: str
    playbook: str | None
    summary: str
    timeline: list[TimelineEntry]
    entities: list[str]
    evidence: list[NoteEvidence]
    verdict: str
    confidence: float
    reasoner: str
    reasoning: str
    decision: str | None
    decision_reasons: list[str]
    actions: list[NoteAction]
    open_questions: list[str]
    earlier_verdict: str | None = Field(default=None, description="the case's verdict before this run, when it "
                                        "changed (a malicious alert joining a benign or closed case)")
    similar_cases: list[str] = Field(default_factory=list,
                                     description="this site's most similar past dispositions, one line each")
    trace: list[str] = Field(default_factory=list, description="the nodes this run passed through")
    case_work: list[str] = Field(default_factory=list,
                                 description="people's work on the case, oldest first, one line each: "
                                             "dispositions, reopenings, assignments, comments (approvals' too)")


def render_markdown(notes: CaseNotes) -> str:
    """The notes as markdown; untrusted strings go through ``inert`` (or ``code`` inside a code span)."""
    lines = [
        f"# Case {notes.case_id}: {inert(notes.title, 200)}",
        "",
        f"**Class:** {notes.incident_class} · **Playbook:** {notes.playbook or '-'} · **Run:** {notes.run}",
        "",
        "## Summary",
        "",
        inert(notes.summary, 1000),
        "",
        "## Verdict",
        "",
        f"**{notes.verdict}** with confidence {notes.confidence:.2f} ({notes.reasoner} reasoner)",
        *(["", f"Earlier verdict: {inert(notes.earlier_verdict, 300)}"] if notes.earlier_verdict else []),
        "",
        "## Reasoning",
        "",
        inert(notes.reasoning, 2000),
        "",
        "## Decision",
        "",
        f"**{notes.decision or 'no action proposed'}**",
        "",
        *[f"- {inert(r, 400)}" for r in notes.decision_reasons],
        "",
        "## Actions",
        "",
    ]
    if notes.actions:
        lines += ["| action | tier | target | status | rollback |", "|---|---|---|---|---|"]
        for action in notes.actions:
            rollback = f"`soc-agent actions rollback {action.action_id}` ({action.rollback})" if (
                action.rollback and action.action_id and action.status == "executed") else (
                "none: it owns nothing" if action.status.startswith("already in effect") else action.rollback or "none")
            lines.append(f"| {action.name} | {action.tier} | {inert(action.target or '-', 120)} | "
                         f"{action.status} | {rollback} |")
    else:
        lines.append("none")
    lines += ["", "## Evidence", ""]
    for item in notes.evidence:
        lines.append(f"- {code(item.id, 200)} ({inert(item.kind, 40)}, {item.weight:+.1f}, "
                     f"from {inert(item.source, 80)}): {inert(item.summary, 400)}")
    lines += ["", "## Entities", ""]
    lines += [f"- {inert(e, 200)}" for e in notes.entities] or ["none"]
    lines += ["", "## Timeline", ""]
    for entry in notes.timeline:
        lines.append(f"- {entry.ts:%Y-%m-%d %H:%M:%S} {code(entry.alert_id, 80)} {inert(entry.rule_id, 80)}: "
                     f"{inert(entry.title, 200)}")
    lines += ["", "## Similar past cases", ""]
    lines += [f"- {inert(s, 300)}" for s in notes.similar_cases] or ["none learned yet"]
    lines += ["", "## Open questions", ""]
    lines += [f"- {inert(q, 400)}" for q in notes.open_questions] or ["none"]
    if notes.case_work:
        lines += ["", "## Case work", ""]
        lines += [f"- {inert(line, 4500)}" for line in notes.case_work]
    lines += ["", f"_Trace: {' → '.join(notes.trace)}_", ""]
    return "\n".join(lines)


class NoteFiles:
    """The markdown files that mirror the notes rows, one per case.

    Staged by the write_notes node and written after the commit that stored
    the rows (``Store.after_commit``): a file never shows a decision the store
    does not hold, and a case decided several times between commits is
    written once.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._staged: dict[str, str] = {}

    def stage(self, case_id: str, markdown: str) -> None:
        """Keep the newest markdown of ``case_id`` until the next commit."""
        self._staged[case_id] = markdown

    def write(self) -> None:
        """Write what was staged (called after a commit)."""
        if not self._staged:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        staged, self._staged = self._staged, {}
        for case_id, markdown in staged.items():
            (self.directory / f"{case_id}.md").write_text(markdown)
