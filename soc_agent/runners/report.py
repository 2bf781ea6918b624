"""The shadow run as one self-contained HTML page: inline SVG charts, no script, nothing fetched.

Four charts (each an ``<svg>`` with a ``data-chart`` attribute so tests and
people can find it): the verdict confusion matrix, agreement over time, the
calibration curve (stated confidence against how often the verdict was
right, with the diagonal of perfect calibration), and the promotion gate per
incident class (cases and agreement as bars against the gate's lines; the
same numbers as a folded table and in each bar's ``<title>``). Tables follow:
per-label scores, action agreement, and what was skipped and why.
Every value is escaped; labels and ids come from input files.
"""

from __future__ import annotations

import math
from html import escape
from pathlib import Path
from typing import Any

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:1100px;color:#1d2330;padding:0 1rem}
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #dde;padding-bottom:.2rem}
table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #dde;padding:.25rem .55rem;text-align:left}
th{background:#f3f5fa}.num{text-align:right}.ok{color:#17693a}.bad{color:#a3241c}
.kpis{display:flex;gap:1rem;flex-wrap:wrap}.kpi{border:1px solid #dde;border-radius:6px;padding:.6rem 1rem}
.kpi b{display:block;font-size:1.4rem}.charts{display:flex;gap:1.5rem;flex-wrap:wrap}
figure{margin:0}figcaption{font-weight:600;margin-bottom:.3rem}svg text{font:11px system-ui,sans-serif}
"""


def _fmt(value: Any, pct: bool = False) -> str:
    if value is None:
        return "–"
    if pct and isinstance(value, (int, float)):
        return f"{value:.1%}"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def confusion_svg(matrix: dict[str, Any]) -> str:
    """A heat grid: rows are analyst labels, columns the agent's verdicts."""
    rows, cols, counts = matrix["rows"], matrix["columns"], matrix["counts"]
    cell, left, top = 78, 120, 100
    width, height = left + cell * len(cols) + 50, top + cell * len(rows) + 30
    peak = max((max(r) for r in counts), default=0) or 1
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" data-chart="confusion-matrix" width="{width}" '
             f'height="{height}" role="img" aria-label="verdict confusion matrix">']
    for j, col in enumerate(cols):
        x = left + j * cell + cell / 3
        parts.append(f'<text x="{x}" y="{top - 8}" text-anchor="start" transform="rotate(-30 {x} {top - 8})">'
                     f'{escape(col)}</text>')
    parts.append(f'<text x="{left + cell * len(cols) / 2}" y="14" text-anchor="middle">agent verdict</text>')
    for i, row in enumerate(rows):
        y = top + i * cell
        parts.append(f'<text x="{left - 6}" y="{y + cell / 2 + 4}" text-anchor="end">{escape(row)}</text>')
        for j, n in enumerate(counts[i]):
            shade = n / peak
            colour = (f"rgb({int(255 - 200 * shade)},{int(255 - 120 * shade)},{int(255 - 60 * shade)})"
                      if rows[i] == cols[j] else
                      f"rgb(255,{int(255 - 170 * shade)},{int(255 - 170 * shade)})")
            parts.append(f'<rect class="cell" x="{left + j * cell}" y="{y}" width="{cell - 2}" height="{cell - 2}" '
                         f'fill="{colour}" stroke="#ccd"><title>{escape(row)} → {escape(cols[j])}: {n}</title></rect>')
            parts.append(f'<text x="{left + j * cell + cell / 2}" y="{y + cell / 2 + 4}" '
                         f'text-anchor="middle">{n}</text>')
    parts.append(f'<text x="8" y="{top + cell * len(rows) + 20}">rows: analyst label</text></svg>')
    return "".join(parts)


def _axes(parts: list[str], left: int, top: int, w: int, h: int, xlabel: str, ylabel: str,
          x_ticks: bool = False) -> None:
    parts.append(f'<rect x="{left}" y="{top}" width="{w}" height="{h}" fill="#fbfcfe" stroke="#ccd"/>')
    if x_ticks:
        for k in range(0, 11, 2):
            parts.append(f'<text x="{left + w * k / 10}" y="{top + h + 14}" text-anchor="middle">{k / 10:.1f}</text>')
    for k in range(0, 11, 2):
        y = top + h - h * k / 10
        parts.append(f'<line x1="{left}" x2="{left + w}" y1="{y}" y2="{y}" stroke="#eef"/>'
                     f'<text x="{left - 6}" y="{y + 4}" text-anchor="end">{k / 10:.1f}</text>')
    parts.append(f'<text x="{left + w / 2}" y="{top + h + 32}" text-anchor="middle">{escape(xlabel)}</text>'
                 f'<text x="14" y="{top + h / 2}" transform="rotate(-90 14 {top + h / 2})" '
                 f'text-anchor="middle">{escape(ylabel)}</text>')


def agreement_svg(points: list[dict[str, Any]]) -> str:
    """Verdict agreement per stream bucket (empty buckets leave a gap)."""
    left, top, w, h = 50, 15, 420, 220
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" data-chart="agreement-over-time" width="{left + w + 20}" '
             f'height="{top + h + 45}" role="img" aria-label="verdict agreement over time">']
    _axes(parts, left, top, w, h, "stream position (equal buckets, oldest left)", "verdict agreement")
    n = max(len(points), 1)
    coords = []
    for p in points:
        if p.get("agreement") is None:
            continue
        x = left + w * (p["bucket"] + 0.5) / n
        y = top + h - h * p["agreement"]
        coords.append((x, y, p))
    if coords:
        path = " ".join(f"{'M' if i == 0 else 'L'}{x:.1f},{y:.1f}" for i, (x, y, _) in enumerate(coords))
        parts.append(f'<path d="{path}" fill="none" stroke="#2b5fb3" stroke-width="2"/>')
        for x, y, p in coords:
            parts.append(f'<circle class="point" cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="#2b5fb3">'
                         f'<title>bucket {p["bucket"]}: {p["agreement"]:.1%} of {p["alerts"]}</title></circle>')
    parts.append("</svg>")
    return "".join(parts)


def calibration_svg(curve: list[dict[str, Any]], ece: float | None) -> str:
    """Reliability diagram: accuracy against mean stated confidence per bin; the diagonal is perfect."""
    left, top, w, h = 50, 15, 260, 220
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" data-chart="calibration-curve" width="{left + w + 20}" '
             f'height="{top + h + 45}" role="img" aria-label="calibration curve">']
    _axes(parts, left, top, w, h, f"stated confidence (ECE {_fmt(ece)})", "share right", x_ticks=True)
    parts.append(f'<line class="diagonal" x1="{left}" y1="{top + h}" x2="{left + w}" y2="{top}" '
                 f'stroke="#999" stroke-dasharray="4 3"/>')
    if curve:
        peak = max(p["count"] for p in curve)
        coords = [(left + w * p["confidence"], top + h - h * p["accuracy"], p) for p in curve]
        path = " ".join(f"{'M' if i == 0 else 'L'}{x:.1f},{y:.1f}" for i, (x, y, _) in enumerate(coords))
        parts.append(f'<path d="{path}" fill="none" stroke="#b35a2b" stroke-width="2"/>')
        for x, y, p in coords:
            r = 3 + 5 * (p["count"] / peak) ** 0.5
            parts.append(f'<circle class="point" cx="{x:.1f}" cy="{y:.1f}" r="{r:.1f}" fill="#b35a2b" '
                         f'fill-opacity=".75"><title>stated {p["confidence"]:.2f}, right {p["accuracy"]:.1%} '
                         f'({p["count"]})</title></circle>')
    parts.append("</svg>")
    return "".join(parts)


def gate_svg(per_class: dict[str, dict[str, Any]], gate: dict[str, Any]) -> str:
    """The promotion gate per class: cases (log scale) and verdict agreement as bars against the gate's lines.

    One ``<g class="class-group">`` per class holds its two bars; a bar is green
    when it clears its line. Every group and bar carries a ``<title>`` with the
    numbers, so the chart reads without the table beside it.
    """
    min_cases, min_agreement = gate.get("min_cases", 0), gate.get("min_agreement", 0.0)
    names = list(per_class)
    left, label_w, panel_w, gap, row_h, top = 10, 190, 300, 60, 30, 34
    cases_x = left + label_w
    agree_x = cases_x + panel_w + gap
    decision_x = agree_x + panel_w + 20
    width, height = decision_x + 150, top + row_h * max(len(names), 1) + 36
    peak = max([c["evidence"].get("cases") or 0 for c in per_class.values()] + [min_cases, 1]) * 1.5
    log_peak = math.log10(1 + peak)

    def cases_at(n: float) -> float:
        return cases_x + panel_w * math.log10(1 + max(n, 0)) / log_peak

    def agree_at(a: float) -> float:
        return agree_x + panel_w * max(0.0, min(a, 1.0))

    summary = (f"promotion gate per incident class: cases against {min_cases} and verdict agreement against "
               f"{min_agreement:.0%}")
    parts = [(f'<svg xmlns="http://www.w3.org/2000/svg" data-chart="promotion-gate" width="{width}" '
              f'height="{height}" role="img" aria-label="{escape(summary)}"><title>{escape(summary)}</title>'),
             f'<text x="{cases_x}" y="14" font-weight="600">cases (log scale)</text>',
             f'<text x="{agree_x}" y="14" font-weight="600">verdict agreement</text>',
             f'<text x="{decision_x}" y="14" font-weight="600">decision</text>']
    bottom = top + row_h * max(len(names), 1)
    for panel_x in (cases_x, agree_x):
        parts.append(f'<rect x="{panel_x}" y="{top - 6}" width="{panel_w}" height="{bottom - top + 6}" '
                     f'fill="#fbfcfe" stroke="#ccd"/>')
    tick = 1
    while tick <= peak:
        x = cases_at(tick)
        parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top - 6}" y2="{bottom}" stroke="#eef"/>'
                     f'<text x="{x:.1f}" y="{bottom + 14}" text-anchor="middle">{tick:,}</text>')
        tick *= 10
    for k in range(0, 11, 2):
        x = agree_at(k / 10)
        parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top - 6}" y2="{bottom}" stroke="#eef"/>'
                     f'<text x="{x:.1f}" y="{bottom + 14}" text-anchor="middle">{k * 10}%</text>')
    for i, name in enumerate(names):
        c = per_class[name]
        ev = c["evidence"]
        cases, agreement = ev.get("cases") or 0, ev.get("verdict_agreement")
        y = top + i * row_h
        mid = y + (row_h - 12) / 2 + 4  # a text baseline centred on the bar
        said = (f"{name}: {cases} case(s) (gate {min_cases}), verdict agreement "
                f"{_fmt(agreement, pct=True)} (gate {min_agreement:.0%}); decision {c['decision']}")
        cases_ok, agree_ok = cases >= min_cases, agreement is not None and agreement >= min_agreement
        parts.append(f'<g class="class-group" data-class="{escape(name)}" '
                     f'aria-label="{escape(said)}"><title>{escape(said)}</title>')
        parts.append(f'<text x="{cases_x - 8}" y="{mid}" text-anchor="end">{escape(name[:32])}</text>')
        parts.append(f'<rect class="bar cases" x="{cases_x}" y="{y}" width="{cases_at(cases) - cases_x:.1f}" '
                     f'height="{row_h - 12}" fill="{"#2f9e44" if cases_ok else "#e8590c"}">'
                     f'<title>{escape(name)}: {cases} case(s); the gate needs {min_cases}</title></rect>')
        if agreement is not None:
            parts.append(f'<rect class="bar agreement" x="{agree_x}" y="{y}" '
                         f'width="{agree_at(agreement) - agree_x:.1f}" height="{row_h - 12}" '
                         f'fill="{"#2f9e44" if agree_ok else "#e8590c"}"><title>{escape(name)}: agreement '
                         f'{_fmt(agreement, pct=True)}; the gate needs {min_agreement:.0%}</title></rect>')
        else:
            parts.append(f'<text x="{agree_x + 6}" y="{mid}">no scored case</text>')
        parts.append(_bar_value(cases_at(cases), cases_x + panel_w, mid, f"{cases:,}"))
        if agreement is not None:
            parts.append(_bar_value(agree_at(agreement), agree_x + panel_w, mid,
                                    _fmt(agreement, pct=True)))
        parts.append(f'<text class="decision" x="{decision_x}" y="{mid}">{escape(str(c["decision"]))} '
                     f'({escape(str(c["mode"]))})</text></g>')
    for x, label in ((cases_at(min_cases), f"gate {min_cases:,}"), (agree_at(min_agreement), f"gate {min_agreement:.0%}")):
        parts.append(f'<line class="gate" x1="{x:.1f}" x2="{x:.1f}" y1="{top - 10}" y2="{bottom + 2}" '
                     f'stroke="#1d2330" stroke-width="2" stroke-dasharray="5 3"/>'
                     f'<text x="{x:.1f}" y="{top - 13}" text-anchor="middle" font-weight="600">{label}</text>')
    parts.append(f'<text x="{left}" y="{bottom + 30}">green: clears the gate; orange: short of it</text></svg>')
    return "".join(parts)


def _bar_value(end: float, panel_end: float, y: float, text: str) -> str:
    # The number after the bar, or inside its end when the bar leaves no room behind it.
    if end + 50 <= panel_end:
        return f'<text class="value" x="{end + 4:.1f}" y="{y:.1f}">{escape(text)}</text>'
    return f'<text class="value" x="{end - 4:.1f}" y="{y:.1f}" text-anchor="end" fill="#fff">{escape(text)}</text>'


def _default_gate() -> dict[str, Any]:
    # Results written before they carried their gate: the defaults they were judged by.
    # deferred: import cycle (soc_agent.runners.shadow imports this module); shadow also loads the pipeline
    from soc_agent.runners.shadow import GateConfig

    return {k: getattr(GateConfig(), k) for k in GateConfig.__dataclass_fields__}


def _table(headers: list[str], rows: list[list[Any]], cls: str = "") -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def render_report(results: dict[str, Any]) -> str:
    """The HTML page for one shadow run's results."""
    r = results
    kpis = [("verdict agreement", _fmt(r["verdict_agreement"], pct=True)), ("macro-F1", _fmt(r["macro_f1"])),
            ("risky recommendations", r["risky_recommendations"]),
            ("missed true positives", r["missed_true_positives"]),
            ("missed critical", r["missed_critical_true_positives"]),
            ("scored alerts", r["scored_alerts"]), ("calibration ECE", _fmt(r["calibration"]["ece"])),
            ("p50 time to decision", f'{_fmt(r["time_to_decision"]["p50_ms"])} ms')]
    kpi_html = "".join(f'<div class="kpi">{escape(str(k))}<b>{escape(str(v))}</b></div>' for k, v in kpis)
    classes = [[escape(name), escape(c["decision"]), escape(c["was"]), escape(c["mode"]),
                f'<span class="num">{c["evidence"]["cases"]}</span>',
                _fmt(c["evidence"]["verdict_agreement"], pct=True), c["evidence"]["risky_recommendations"],
                c["evidence"]["missed_critical_true_positives"], escape("; ".join(c["reasons"]))]
               for name, c in r["per_class"].items()]
    labels = [[escape(k), _fmt(v["precision"]), _fmt(v["recall"]), _fmt(v["f1"]), v["support"]]
              for k, v in r["per_label"].items()]
    actions = [[escape(k), v] for k, v in sorted(r["action_agreement"]["counts"].items())]
    skipped = [[escape(reason), s["count"], escape("; ".join(s["examples"]))] for reason, s in r["skipped"].items()]
    ttd = r["time_to_decision"]
    inputs = [[escape(k), escape(_fmt(v))] for k, v in r["input"].items()]
    risky = [[escape(str(case)), escape("; ".join(items))] for case, items in r.get("risky_examples", {}).items()]
    calibration = calibration_svg(r["calibration"]["curve"], r["calibration"]["ece"])
    gate_chart = (f'<figure id="promotion-gate"><figcaption>Promotion gate per class</figcaption>'
                  f'{gate_svg(r["per_class"], r.get("gate") or _default_gate())}</figure>'
                  if r["per_class"] else "<p>No incident class was scored.</p>")
    class_headers = ["class", "decision", "was", "suggested mode", "cases", "agreement", "risky", "missed critical",
                     "why"]
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>soc-agent shadow run</title>
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<style>{_CSS}</style></head><body>
<h1>soc-agent shadow run</h1>
<p>Alerts <code>{escape(str(r.get("alerts_file", "")))}</code> against labels
<code>{escape(str(r.get("labels_file", "")))}</code>; mode shadow (nothing executed);
learned priors/calibration: {"on" if r.get("learning") else "off"}.</p>
<div class="kpis">{kpi_html}</div>
<h2>Charts</h2><div class="charts">
<figure><figcaption>Verdict confusion matrix</figcaption>{confusion_svg(r["confusion_matrix"])}</figure>
<figure><figcaption>Agreement over time</figcaption>{agreement_svg(r["agreement_over_time"])}</figure>
<figure><figcaption>Calibration curve</figcaption>{calibration}</figure>
</div>
<h2>Autonomy per incident class</h2>
{gate_chart}
<details><summary>the same as a table, with the reasons</summary>{_table(class_headers, classes)}</details>
<h2>Verdicts by label</h2>{_table(["label", "precision", "recall", "F1", "support"], labels)}
<h2>Actions (where the analyst named one)</h2>
<p>Same action: {_fmt(r["action_agreement"]["same"], pct=True)} of {r["action_agreement"]["compared"]} compared.</p>
{_table(["agent vs analyst", "alerts"], actions)}
<h2>Risky recommendations</h2>
{_table(["case", "alerts"], risky) if risky else '<p class="ok">None.</p>'}
<h2>Time to decision</h2>
<p>{ttd["n"]} graph decisions; p50 {_fmt(ttd["p50_ms"])} ms, p95 {_fmt(ttd["p95_ms"])} ms,
max {_fmt(ttd["max_ms"])} ms.</p>
<h2>Input</h2>{_table(["what", "count"], inputs)}
<h2>Skipped, and why</h2>
{_table(["reason", "count", "examples"], skipped) if skipped else '<p class="ok">Nothing skipped.</p>'}
</body></html>
"""


def write_report(path: Path, results: dict[str, Any]) -> None:
    """Write the report for ``results`` to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_report(results), encoding="utf-8")
