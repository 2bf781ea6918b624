"""Golden cases: one folder per scenario under ``cases/``, run through a fresh pipeline.

Each folder holds ``input.jsonl`` (native alert lines with fixed timestamps, re-based to now so
the clock check accepts them) and ``expected.json``: for each alert id, the expected subset of its
triage result (``status``, ``verdict``, ``action``, ``decision``) and optionally a ``reason``
substring that one of the result's reasons must contain. An alert id that appears several times in
the input maps to a list of expectations, one per occurrence, in order.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest

from evals.dataset import rebase

CASES_DIR = Path(__file__).resolve().parent / "cases"
CASES = sorted(p for p in CASES_DIR.iterdir() if (p / "input.jsonl").is_file())
_FIELDS = ("status", "verdict", "action", "decision", "incident_class")


def _lines(case: Path) -> list[bytes]:
    records = [json.loads(line) for line in (case / "input.jsonl").read_text().splitlines() if line.strip()]
    return [json.dumps(r).encode() for r in rebase(records)]


def test_there_are_enough_golden_cases():
    assert len(CASES) >= 8
    for case in CASES:
        assert (case / "expected.json").is_file(), case.name


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_golden_case(case: Path, settings):
    from soc_agent.pipeline import Pipeline

    expected = json.loads((case / "expected.json").read_text())
    lines = _lines(case)
    pipeline = Pipeline(settings)
    try:
        results = list(pipeline.run_lines(lines, f"golden:{case.name}"))
        summary = pipeline.summary
        assert summary.dead_lettered == 0, dict(summary.dead_letter_reasons)
        assert summary.alerts_in == summary.processed == len(lines)
    finally:
        pipeline.close()

    by_id: dict[str, list] = defaultdict(list)
    for result in results:
        by_id[result.alert_id].append(result)
    assert set(by_id) == set(expected), "every input alert has an expectation and a result"

    problems = []
    for alert_id, want in expected.items():
        wants = want if isinstance(want, list) else [want] * len(by_id[alert_id])
        got = by_id[alert_id]
        if len(wants) != len(got):
            problems.append(f"{alert_id}: {len(got)} result(s), expected {len(wants)}")
            continue
        for n, (w, r) in enumerate(zip(wants, got)):
            actual = {k: getattr(r, k) for k in _FIELDS if k in w}
            subset = {k: w[k] for k in _FIELDS if k in w}
            if actual != subset:
                problems.append(f"{alert_id}[{n}]: expected {subset}, got {actual}; reasons {r.reasons}")
            if "reason" in w and not any(w["reason"] in reason for reason in r.reasons):
                problems.append(f"{alert_id}[{n}]: no reason contains {w['reason']!r}: {r.reasons}")
    assert not problems, "\n".join(problems)
