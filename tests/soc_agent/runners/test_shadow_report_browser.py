"""The shadow report opened in headless Chromium: four inline SVG charts, nothing fetched."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from soc_agent.runners.report import write_report

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]


def _results() -> dict:
    return {
        "alerts_file": "alerts.jsonl", "labels_file": "labels.jsonl <script>alert(1)</script>", "learning": False,
        "scored_alerts": 10, "verdict_agreement": 0.7, "risky_recommendations": 1, "missed_true_positives": 2,
        "missed_critical_true_positives": 0, "macro_f1": 0.65,
        "per_label": {k: {"precision": 0.7, "recall": 0.7, "f1": 0.7, "support": 3}
                      for k in ("true_positive", "benign_positive", "false_positive")},
        "confusion_matrix": {"rows": ["true_positive", "benign_positive", "false_positive"],
                             "columns": ["true_positive", "benign_positive", "false_positive", "undetermined"],
                             "counts": [[3, 0, 1, 0], [0, 2, 0, 1], [1, 0, 2, 0]]},
        "action_agreement": {"compared": 4, "same": 0.5, "counts": {"same": 2, "more_disruptive": 2}},
        "risky_examples": {"case-1": ["d (false_positive): block_ip"]},
        "time_to_decision": {"n": 5, "p50_ms": 12.0, "p95_ms": 30.0, "max_ms": 31.0},
        "agreement_over_time": [{"bucket": 0, "alerts": 5, "agreement": 0.6},
                                {"bucket": 1, "alerts": 0, "agreement": None},
                                {"bucket": 2, "alerts": 5, "agreement": 0.8}],
        "calibration": {"ece": 0.12, "predictions": 9, "curve": [
            {"confidence": 0.75, "accuracy": 0.5, "count": 4}, {"confidence": 0.95, "accuracy": 0.8, "count": 5}]},
        "per_class": {"known_bad_ip": {"mode": "approval", "decision": "hold", "was": "approval",
                                       "reasons": ["3 case(s) < 200"],
                                       "evidence": {"cases": 3, "verdict_agreement": 0.7, "risky_recommendations": 1,
                                                    "missed_critical_true_positives": 0}},
                      "brute_force": {"mode": "autonomous", "decision": "promote", "was": "approval", "reasons": [],
                                      "evidence": {"cases": 450, "verdict_agreement": 0.98, "risky_recommendations": 0,
                                                   "missed_critical_true_positives": 0}},
                      "<b>phish</b>": {"mode": "approval", "decision": "hold", "was": "approval",
                                       "reasons": ["verdict agreement 90.00% < 95%"],
                                       "evidence": {"cases": 260, "verdict_agreement": 0.9,
                                                    "risky_recommendations": 0, "missed_critical_true_positives": 0}}},
        "gate": {"min_cases": 200, "min_agreement": 0.95, "max_risky": 0, "max_missed_critical": 0,
                 "demote_below": None, "min_cases_to_demote": 20},
        "input": {"alerts_in": 12, "dead_lettered": 1},
        "skipped": {"conflicting labels (same alert, different labels; alert left out)":
                    {"count": 1, "examples": ["e: true_positive vs benign_positive"]}},
    }


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists() or shutil.which(str(CHROMIUM)) is None:
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()


def test_report_charts_render_in_headless_chromium(tmp_path, browser):
    path = tmp_path / "report.html"
    write_report(path, _results())
    page = browser.new_page()
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(path.as_uri())
    charts = page.eval_on_selector_all("svg[data-chart]", "els => els.map(e => e.dataset.chart)")
    assert charts == ["confusion-matrix", "agreement-over-time", "calibration-curve", "promotion-gate"]
    # 3 labels x 4 verdicts, each cell drawn with its count.
    assert page.locator("svg[data-chart=confusion-matrix] rect.cell").count() == 12
    assert page.locator("svg[data-chart=agreement-over-time] circle.point").count() == 2  # the empty bucket is a gap
    assert page.locator("svg[data-chart=calibration-curve] circle.point").count() == 2
    assert page.locator("svg[data-chart=calibration-curve] line.diagonal").count() == 1
    for chart in charts:  # laid out with a real size, not collapsed
        box = page.locator(f"svg[data-chart={chart}]").bounding_box()
        assert box["width"] > 200 and box["height"] > 150
    # The promotion gate: one bar group per class (cases and agreement), one line per gate, green past it.
    gate = "svg[data-chart=promotion-gate]"
    groups = page.eval_on_selector_all(f"{gate} g.class-group", "els => els.map(e => e.getAttribute('data-class'))")
    assert groups == ["known_bad_ip", "brute_force", "<b>phish</b>"]
    assert page.locator(f"{gate} g.class-group rect.bar.cases").count() == 3
    assert page.locator(f"{gate} g.class-group rect.bar.agreement").count() == 3
    assert page.locator(f"{gate} line.gate").count() == 2
    fills = page.eval_on_selector_all(f"{gate} rect.bar", "els => els.map(e => e.getAttribute('fill'))")
    assert fills == ["#e8590c", "#e8590c", "#2f9e44", "#2f9e44", "#2f9e44", "#e8590c"]
    # Bars reach past the gate line exactly when they clear it.
    line_x = page.eval_on_selector_all(f"{gate} line.gate", "els => els.map(e => e.x1.baseVal.value)")
    ends = page.eval_on_selector_all(f"{gate} rect.bar.cases",
                                     "els => els.map(e => e.x.baseVal.value + e.width.baseVal.value)")
    assert [end >= line_x[0] for end in ends] == [False, True, True]
    # Accessible: the numbers are in each group's title; the table is still there, folded.
    titles = page.eval_on_selector_all(f"{gate} g.class-group > title", "els => els.map(e => e.textContent)")
    assert "brute_force: 450 case(s) (gate 200), verdict agreement 98.0% (gate 95%); decision promote" in titles
    assert page.locator("#promotion-gate + details table tbody tr").count() == 3
    assert page.locator("b:has-text('phish')").count() == 0  # the hostile class name is text
    page.set_viewport_size({"width": 1400, "height": 900})
    shots = os.environ.get("SOC_AGENT_SCREENSHOTS")
    if shots:
        Path(shots).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(shots) / "shadow-report.png"), full_page=True)
    assert "conflicting labels" in page.inner_text("body")
    assert page.locator("script").count() == 0  # escaped input, no script of its own
    assert requests == [path.as_uri()]  # self-contained: nothing else was fetched
    page.close()
