"""Analyst labels files: JSON lines ``{"alert_id", "label", "action"?}``, indexed on disk.

A labels file may be as large as the alert stream it describes (a million
lines), so the labels go into a scratch SQLite index rather than a dict:
memory stays bounded whatever the size. Loading never raises on bad lines;
it counts what it skipped and why, and keeps a few examples of each:

* malformed JSON, or a line that is not an object with ``alert_id`` and ``label``;
* an unknown label value (only ``true_positive``, ``benign_positive``,
  ``false_positive``);
* a duplicate (same alert, same label: counted once);
* a conflict (same alert, different labels: the alert is left out of scoring
  and learning, because we cannot know which analyst was right).

``action`` is optional; ``expected_action`` (the key ``evals.generate``
writes) is accepted as a synonym. A present ``null`` action means "nothing
should have been done".
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LABEL_VALUES = ("true_positive", "benign_positive", "false_positive")
"""Dispositions an analyst can give an alert."""

_NO_ACTION = "\x00none"  # stored for an explicit null action; SQL NULL means "no action given"
_BATCH = 5000
_EXAMPLES = 5


@dataclass
class Skipped:
    """What was left out and why, with a few examples per reason."""

    counts: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def add(self, reason: str, example: str, n: int = 1) -> None:
        """Count ``n`` items skipped for ``reason``."""
        self.counts[reason] += n
        bucket = self.examples.setdefault(reason, [])
        if len(bucket) < _EXAMPLES:
            bucket.append(example[:200])

    def as_dict(self) -> dict[str, Any]:
        """``{reason: {"count", "examples"}}`` for the results file and the report."""
        return {reason: {"count": n, "examples": self.examples.get(reason, [])}
                for reason, n in self.counts.most_common()}


@dataclass(frozen=True)
class Label:
    """One usable label."""

    alert_id: str
    label: str
    action: str | None
    has_action: bool


class LabelIndex:
    """Labels in a scratch SQLite file: lookups by alert id, conflicts and unmatched labels tracked."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        self.path = path
        self.db = sqlite3.connect(path)
        self.db.execute("PRAGMA journal_mode=OFF")
        self.db.execute("PRAGMA synchronous=OFF")
        self.db.execute("CREATE TABLE labels (alert_id TEXT PRIMARY KEY, label TEXT, action TEXT, "
                        "conflict INTEGER DEFAULT 0, matched INTEGER DEFAULT 0, scored INTEGER DEFAULT 0)")
        self.skipped = Skipped()
        self.lines = 0

    # ---- loading ------------------------------------------------------

    def load(self, lines: Iterable[bytes | str], source: str = "labels") -> None:
        """Read a labels file; bad lines are counted in ``skipped``, never raised."""
        batch: list[tuple[str, str, str | None]] = []
        for line_no, line in enumerate(lines, start=1):
            self.lines += 1
            text = line.decode("utf-8", errors="replace") if isinstance(line, bytes) else line
            if not text.strip():
                continue
            parsed = _parse_label(text)
            if isinstance(parsed, str):
                self.skipped.add(parsed, f"{source}:{line_no}: {text.strip()}")
                continue
            batch.append(parsed)
            if len(batch) >= _BATCH:
                self._insert(batch, source)
                batch = []
        if batch:
            self._insert(batch, source)
        self.db.commit()

    def _insert(self, batch: list[tuple[str, str, str | None]], source: str) -> None:
        cur = self.db.cursor()
        for alert_id, label, action in batch:
            cur.execute("INSERT OR IGNORE INTO labels (alert_id, label, action) VALUES (?, ?, ?)",
                        (alert_id, label, action))
            if cur.rowcount:
                continue
            old_label, old_action, conflict = cur.execute(
                "SELECT label, action, conflict FROM labels WHERE alert_id = ?", (alert_id,)).fetchone()
            if old_label == label:
                self.skipped.add("duplicate label (same alert, same label; counted once)", alert_id)
                if old_action is None and action is not None:
                    cur.execute("UPDATE labels SET action = ? WHERE alert_id = ?", (action, alert_id))
            else:
                if not conflict:
                    cur.execute("UPDATE labels SET conflict = 1 WHERE alert_id = ?", (alert_id,))
                self.skipped.add("conflicting labels (same alert, different labels; alert left out)",
                                 f"{alert_id}: {old_label} vs {label}")

    # ---- queries ------------------------------------------------------

    @property
    def usable(self) -> int:
        """Labels that can be scored (not conflicting)."""
        return self.db.execute("SELECT count(*) FROM labels WHERE conflict = 0").fetchone()[0]

    def lookup(self, alert_ids: list[str]) -> dict[str, Label]:
        """The usable labels among ``alert_ids``; marks them as matched to an alert."""
        found: dict[str, Label] = {}
        for start in range(0, len(alert_ids), 500):
            chunk = alert_ids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            for alert_id, label, action in self.db.execute(
                    f"SELECT alert_id, label, action FROM labels WHERE conflict = 0 AND alert_id IN ({marks})",
                    chunk):
                found[alert_id] = Label(alert_id, label, None if action in (None, _NO_ACTION) else action,
                                        action is not None)
            self.db.execute(f"UPDATE labels SET matched = 1 WHERE alert_id IN ({marks})", chunk)
        return found

    def claim(self, alert_id: str) -> bool:
        """True the first time an alert is scored; a re-sent alert (same id) is scored once."""
        cur = self.db.execute("UPDATE labels SET scored = 1 WHERE alert_id = ? AND scored = 0", (alert_id,))
        return cur.rowcount == 1

    def unmatched(self) -> tuple[int, list[str]]:
        """Usable labels whose alert never appeared in the stream (or was dead-lettered)."""
        n = self.db.execute("SELECT count(*) FROM labels WHERE conflict = 0 AND matched = 0").fetchone()[0]
        examples = [r[0] for r in self.db.execute(
            "SELECT alert_id FROM labels WHERE conflict = 0 AND matched = 0 LIMIT ?", (_EXAMPLES,))]
        return n, examples

    def record_unmatched(self) -> None:
        """Add the labels for unknown alerts to ``skipped``."""
        self.db.commit()
        n, examples = self.unmatched()
        if n:
            reason = "label for an alert not in the stream (unknown id, or the alert was dead-lettered)"
            self.skipped.counts[reason] += n
            self.skipped.examples[reason] = examples

    def iter_labels(self) -> Iterator[Label]:
        """Every usable label, in alert-id order."""
        for alert_id, label, action in self.db.execute(
                "SELECT alert_id, label, action FROM labels WHERE conflict = 0 ORDER BY alert_id"):
            yield Label(alert_id, label, None if action in (None, _NO_ACTION) else action, action is not None)

    def close(self) -> None:
        """Close and delete the scratch file."""
        self.db.close()
        self.path.unlink(missing_ok=True)


def _parse_label(text: str) -> tuple[str, str, str | None] | str:
    """``(alert_id, label, action)`` or the reason the line is unusable."""
    try:
        record = json.loads(text)
    except ValueError:
        return "malformed JSON"
    if not isinstance(record, dict):
        return "not a JSON object"
    alert_id, label = record.get("alert_id"), record.get("label")
    if not isinstance(alert_id, str) or not alert_id:
        return "missing or non-string alert_id"
    if not isinstance(label, str):
        return "missing or non-string label"
    label = label.strip().lower()
    if label not in LABEL_VALUES:
        return f"unknown label value (expected one of {', '.join(LABEL_VALUES)})"
    key = "action" if "action" in record else "expected_action" if "expected_action" in record else None
    action: str | None = None
    if key is not None:
        value = record[key]
        action = _NO_ACTION if value in (None, "", "none") else str(value)
    return alert_id, label, action
