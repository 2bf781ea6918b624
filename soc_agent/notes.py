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

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\u202a-\u202e\u2066-\u2069]")
_MARKUP = re.compile(r"([\\`*_{}\[\]<>()#|!])")


def inert(text: object, limit: int = 300) -> str:
    """Render untrusted text as one inert markdown line."""
    value = str(text)
    value = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", value)
    value = value.replace("\n", "\\n").replace("\r", "\\r")
    if len(value) > limit:
        value = value[:limit] + f"… [{len(value) - limit} more chars]"
    return _MARKUP.sub(r"\\\1", value)


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


def render_markdown(notes: CaseNotes) -> str:
    """The notes as markdown; untrusted strings are neutralised by ``inert``."""
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
        *([f"Earlier verdict: {inert(notes.earlier_verdict, 300)}"] if notes.earlier_verdict else []),
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
        lines.append(f"- `{item.id}` ({item.kind}, {item.weight:+.1f}, from {inert(item.source, 80)}): "
                     f"{inert(item.summary, 400)}")
    lines += ["", "## Entities", ""]
    lines += [f"- {inert(e, 200)}" for e in notes.entities] or ["none"]
    lines += ["", "## Timeline", ""]
    for entry in notes.timeline:
        lines.append(f"- {entry.ts:%Y-%m-%d %H:%M:%S} `{inert(entry.alert_id, 80)}` {inert(entry.rule_id, 80)}: "
                     f"{inert(entry.title, 200)}")
    lines += ["", "## Similar past cases", ""]
    lines += [f"- {inert(s, 300)}" for s in notes.similar_cases] or ["none learned yet"]
    lines += ["", "## Open questions", ""]
    lines += [f"- {inert(q, 400)}" for q in notes.open_questions] or ["none"]
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
