"""Confidence calibration: a stated 0.9 should be right about 9 times in 10.

:class:`ReliabilityBins` accumulates ``(confidence, correct)`` pairs in fixed
bins (bounded memory, however long the labelled history) and reports the
expected calibration error::

    ECE = sum over bins b of  |b| / N * |mean confidence(b) - accuracy(b)|

:class:`ConfidenceCalibrator` is fitted per verdict (all verdicts pooled for one with
too little history) by isotonic regression
(pool-adjacent-violators over fine bins, so it is monotone: a higher raw
confidence never maps lower) shrunk towards the raw value where a bin has
few samples. It is the ``Calibrator`` the reason node applies; it keeps the
verdict and changes only the number. ``undetermined`` is a refusal to
decide, not a claim, and is left alone (and out of the ECE).
"""

from __future__ import annotations

import bisect
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone

from sqlmodel import select

from soc_agent.learning.tables import CalibrationRow
from soc_agent.types import Assessment, Verdict

CALIBRATED_VERDICTS = ("true_positive", "benign_positive", "false_positive")
POOLED = "*"
"""The map for a verdict with too little history of its own: all verdicts pooled."""


@dataclass
class ReliabilityBins:
    """Counts, confidence sums and hits per equal-width confidence bin."""

    n_bins: int = 10
    count: list[int] = field(default_factory=list)
    conf: list[float] = field(default_factory=list)
    hits: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.count:
            self.count, self.conf, self.hits = [0] * self.n_bins, [0.0] * self.n_bins, [0] * self.n_bins

    def add(self, confidence: float, correct: bool) -> None:
        """One prediction with its stated confidence and whether it was right."""
        i = min(int(confidence * self.n_bins), self.n_bins - 1)
        self.count[i] += 1
        self.conf[i] += confidence
        self.hits[i] += int(correct)

    @property
    def total(self) -> int:
        """How many predictions were added."""
        return sum(self.count)

    def ece(self) -> float | None:
        """Expected calibration error, or None with nothing to measure."""
        n = self.total
        if not n:
            return None
        return round(sum(abs(self.conf[i] - self.hits[i]) for i in range(self.n_bins) if self.count[i]) / n, 4)

    def curve(self) -> list[dict[str, float]]:
        """Per non-empty bin: mean confidence, accuracy and count (the reliability diagram)."""
        return [{"confidence": round(self.conf[i] / self.count[i], 4),
                 "accuracy": round(self.hits[i] / self.count[i], 4), "count": self.count[i]}
                for i in range(self.n_bins) if self.count[i]]


def expected_calibration_error(pairs: list[tuple[float, bool]], n_bins: int = 10) -> float | None:
    """ECE of ``(confidence, correct)`` pairs."""
    bins = ReliabilityBins(n_bins)
    for confidence, correct in pairs:
        bins.add(confidence, correct)
    return bins.ece()


def _pav(values: list[float], weights: list[float]) -> list[float]:
    """Pool adjacent violators: the weighted least-squares non-decreasing fit."""
    blocks: list[list[float]] = []  # [value, weight, length]
    for v, w in zip(values, weights):
        blocks.append([v, w, 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            v2, w2, n2 = blocks.pop()
            v1, w1, n1 = blocks.pop()
            blocks.append([(v1 * w1 + v2 * w2) / (w1 + w2), w1 + w2, n1 + n2])
    out: list[float] = []
    for v, _, n in blocks:
        out.extend([v] * int(n))
    return out


@dataclass
class _Map:
    """Monotone points ``(raw, calibrated, weight)``, linearly interpolated."""

    points: list[tuple[float, float, float]]

    def __call__(self, raw: float) -> float:
        xs = [p[0] for p in self.points]
        i = bisect.bisect_left(xs, raw)
        if i == 0:
            return self.points[0][1]
        if i >= len(xs):
            return self.points[-1][1]
        (x0, y0, _), (x1, y1, _) = self.points[i - 1], self.points[i]
        return y0 + (y1 - y0) * (raw - x0) / (x1 - x0) if x1 > x0 else y1


class CalibrationFitter:
    """Collects ``(verdict, raw confidence, correct)`` in fine bins; fits a :class:`ConfidenceCalibrator`."""

    def __init__(self, fine_bins: int = 50) -> None:
        self.fine_bins = fine_bins
        self.bins: dict[str, ReliabilityBins] = {v: ReliabilityBins(fine_bins) for v in CALIBRATED_VERDICTS}
        self.bins[POOLED] = ReliabilityBins(fine_bins)

    def add(self, verdict: str, confidence: float, correct: bool) -> None:
        """One labelled prediction."""
        if verdict in self.bins:
            self.bins[verdict].add(confidence, correct)
            self.bins[POOLED].add(confidence, correct)

    def fit(self, shrink: float = 5.0, min_samples: int = 100, min_pooled: int = 30) -> "ConfidenceCalibrator":
        """Isotonic per verdict with ``min_samples``; otherwise the pooled map (with ``min_pooled``)."""
        maps: dict[str, _Map] = {}
        sizes: dict[str, int] = {}
        for verdict, bins in self.bins.items():
            if bins.total < (min_pooled if verdict == POOLED else min_samples):
                continue
            idx = [i for i in range(bins.n_bins) if bins.count[i]]
            raw = [bins.conf[i] / bins.count[i] for i in idx]
            acc = [bins.hits[i] / bins.count[i] for i in idx]
            weights = [float(bins.count[i]) for i in idx]
            iso = _pav(acc, weights)
            # Few samples in a bin: trust the raw number more than a noisy frequency.
            points = [(r, (w * y + shrink * r) / (w + shrink), w) for r, y, w in zip(raw, iso, weights)]
            fixed = _pav([p[1] for p in points], [p[2] for p in points])
            maps[verdict] = _Map([(p[0], min(max(y, 0.01), 0.99), p[2]) for p, y in zip(points, fixed)])
            sizes[verdict] = bins.total
        return ConfidenceCalibrator(maps, sizes)


class ConfidenceCalibrator:
    """The reason node's ``Calibrator``: same verdict, calibrated confidence."""

    def __init__(self, maps: dict[str, _Map], sizes: dict[str, int] | None = None) -> None:
        self.maps = maps
        self.sizes = sizes or {}

    def calibrate(self, verdict: str, confidence: float) -> float:
        """The calibrated confidence (unchanged for a verdict without a map)."""
        mapping = self.maps.get(str(verdict)) or self.maps.get(POOLED)
        return round(mapping(confidence), 3) if mapping else confidence

    def __call__(self, assessment: Assessment) -> Assessment:
        if assessment.verdict is Verdict.UNDETERMINED or not (str(assessment.verdict) in self.maps
                                                              or POOLED in self.maps):
            return assessment
        calibrated = self.calibrate(str(assessment.verdict), assessment.confidence)
        return assessment.model_copy(update={
            "confidence": calibrated,
            "rationale": assessment.rationale + f"; confidence calibrated from {assessment.confidence:.2f} "
                                                f"against analysts' history",
        })

    def __bool__(self) -> bool:
        return bool(self.maps)

    def save(self, session, ece_before: float | None = None) -> None:
        """Replace the stored maps with these (the caller commits)."""
        for row in session.exec(select(CalibrationRow)):
            session.delete(row)
        now = datetime.now(timezone.utc)
        for verdict, mapping in self.maps.items():
            session.add(CalibrationRow(verdict=verdict, points=json.dumps(mapping.points),
                                       n=self.sizes.get(verdict, 0), ece_before=ece_before, fitted_at=now))

    @classmethod
    def load(cls, session) -> "ConfidenceCalibrator | None":
        """The stored maps, or None when nothing was fitted."""
        rows = list(session.exec(select(CalibrationRow)))
        if not rows:
            return None
        return cls({r.verdict: _Map([tuple(p) for p in json.loads(r.points)]) for r in rows},
                   {r.verdict: r.n for r in rows})
