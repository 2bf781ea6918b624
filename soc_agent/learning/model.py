"""The learned triage model: what this site's analysts decided, generalised to new alerts.

A LightGBM multiclass classifier (true / benign / false positive) over
generic features of an alert: its rule, tenant, vendor evidence (severity,
risk, verdict, ATT&CK), entity shape, and the history of its rule, tenant
and entities in the site's dispositions. LightGBM because it handles the
high-cardinality categoricals a SOC has (rule ids, tenants) natively, trains
in seconds on a laptop, explains each prediction (``pred_contrib``) and
saves to a plain-text model, so no pickle is ever loaded.

History features are target encodings; during training each row's are
computed from the other folds only, so the model never sees its own label.
Probabilities are calibrated per class by isotonic regression fitted on
out-of-fold predictions; the reported macro-F1 and ECE are cross-fitted
(each fold calibrated by maps fitted on the other folds).

The model speaks only with ``min_examples`` dispositions behind it, and its
non-malicious call counts as benign evidence only for a rule (or category)
with enough history of its own (``speaks_benign``).
"""

from __future__ import annotations

import bisect
import math
import json
import random
from collections import Counter, OrderedDict, defaultdict
from dataclasses import dataclass, field
from typing import Any

from soc_agent.types import Alert, Case, EntityKind, Evidence

LABELS = ("true_positive", "benign_positive", "false_positive")
_CATEGORICAL = ("rule", "tenant", "source", "category", "tactic", "technique", "detection_source", "verdict_text",
                "title", "description")
_NUMERIC = ("severity", "risk", "vendor_confidence", "techniques", "tactics", "low_fidelity", "entities",
            *(f"n_{k}" for k in EntityKind), "impacted", "related", "hour", "weekday")
_HISTORY = ("rule", "tenant", "category", "description", "tenant_rule")
_RATES = ("n", "tp", "bp", "fp")
_PARAMS = {"objective": "multiclass", "num_class": 3, "learning_rate": 0.05, "num_leaves": 15,
           "min_data_in_leaf": 20, "feature_fraction": 0.8, "bagging_fraction": 0.8, "bagging_freq": 1,
           "lambda_l2": 1.0, "cat_smooth": 10, "min_data_per_group": 5, "verbose": -1, "num_threads": 2,
           "deterministic": True, "seed": 7}
_ROUNDS = 300


@dataclass(frozen=True)
class ModelConfig:
    """When the model may speak, and how it is trained."""

    min_examples: int = 200
    """Dispositions needed before a model is trained at all."""
    min_per_label: int = 10
    """Each of the three labels needs this many examples."""
    min_rule_history: int = 5
    """Dispositions of an alert's rule needed before the model's benign call counts as benign evidence."""
    min_category_history: int = 50
    """Or of its category (the vendor's class of detection)."""
    folds: int = 5


def alert_features(alert: Alert) -> dict[str, Any]:
    """The generic, JSON-able features of one alert (no site knowledge: that comes from history)."""
    vendor = alert.vendor
    kinds = Counter(str(e.kind) for e in alert.entities)
    roles = Counter((e.role or "").lower() for e in alert.entities)
    severity = vendor.severity or vendor.rule_level
    return {
        "rule": alert.rule_id, "tenant": alert.tenant or "", "source": alert.source,
        "title": alert.title[:128], "description": alert.description[:128],
        "tenant_rule": f"{alert.tenant or ''}/{alert.rule_id}",
        "category": str(alert.attributes.get("category") or (vendor.tactics[0] if vendor.tactics else "")),
        "tactic": vendor.tactics[0] if vendor.tactics else "",
        "technique": vendor.techniques[0] if vendor.techniques else "",
        "detection_source": vendor.detection_source or "", "verdict_text": (vendor.verdict_text or "").lower(),
        "severity": severity.rank if severity is not None else -1,
        "risk": vendor.risk_score if vendor.risk_score is not None else -1,
        "vendor_confidence": vendor.confidence if vendor.confidence is not None else -1,
        "techniques": len(vendor.techniques), "tactics": len(vendor.tactics), "low_fidelity": int(vendor.low_fidelity),
        "entities": len(alert.entities), **{f"n_{k}": kinds.get(str(k), 0) for k in EntityKind},
        "impacted": roles.get("impacted", 0), "related": roles.get("related", 0),
        "hour": alert.timestamp.hour, "weekday": alert.timestamp.weekday(),
        "entity_keys": sorted({e.key for e in alert.entities})[:20],
    }


def _label_index(label: str) -> int:
    return LABELS.index(label)


class _History:
    """Disposition counts per (scope, key): the target encodings, from the rows they may see."""

    def __init__(self) -> None:
        self.counts: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])

    def add(self, features: dict[str, Any], label: int) -> None:
        for scope in _HISTORY:
            self.counts[f"{scope}|{features[scope]}"][label] += 1
        for key in features["entity_keys"]:
            self.counts[f"entity|{key}"][label] += 1

    def encode(self, features: dict[str, Any], prior: list[float]) -> list[float]:
        out: list[float] = []
        for scope in _HISTORY:
            out += _rates(self.counts.get(f"{scope}|{features[scope]}"), prior)
        # The entity with the most history speaks for the alert's entities.
        best = max((self.counts.get(f"entity|{k}") for k in features["entity_keys"]),
                   key=lambda c: sum(c) if c else 0, default=None)
        out += _rates(best, prior)
        # And all of them together: the pooled history of every entity the alert names.
        pooled = [0, 0, 0]
        for key in features["entity_keys"]:
            for i, n in enumerate(self.counts.get(f"entity|{key}") or (0, 0, 0)):
                pooled[i] += n
        out += _rates(pooled if sum(pooled) else None, prior)
        # Per kind of entity: an address's history says something else than a user's.
        for kind in _ENTITY_KINDS:
            mine = [self.counts.get(f"entity|{k}") for k in features["entity_keys"] if k.startswith(f"{kind}:")]
            out += _rates(max(mine, key=lambda c: sum(c) if c else 0, default=None), prior)
        return out

    def n(self, scope: str, value: str) -> int:
        return sum(self.counts.get(f"{scope}|{value}") or (0, 0, 0))


def _rates(counts: list[int] | None, prior: list[float], smoothing: float = 2.0) -> list[float]:
    n = sum(counts) if counts else 0
    if not n:
        return [0.0, *prior]
    return [float(n), *((counts[i] + smoothing * prior[i]) / (n + smoothing) for i in range(3))]


_ENTITY_KINDS = ("user", "host", "ip", "url", "file_hash", "email", "cloud_resource")
_HISTORY_NAMES = [f"{scope}_{r}" for scope in (*_HISTORY, "entity", "entities", *_ENTITY_KINDS) for r in _RATES]
FEATURE_NAMES = [*_CATEGORICAL, *_NUMERIC, *_HISTORY_NAMES]


def _describe(name: str, value: float) -> str:
    """A feature and its value in words, for the case notes."""
    if name in _CATEGORICAL:
        return f"its {name.replace('_', ' ')}"
    scope, _, rate = name.rpartition("_")
    if scope in _ENTITY_KINDS and rate in _RATES:
        scope, what = "entity", f"its {scope.replace('_', ' ')}"
    elif scope in (*_HISTORY, "entity", "entities") and rate in _RATES:
        what = {"rule": "this rule", "tenant": "this tenant", "category": "this category",
                "description": "this description", "tenant_rule": "this rule in this tenant",
                "entity": "its most-seen entity", "entities": "its entities"}[scope]
    if scope in (*_HISTORY, "entity", "entities") and rate in _RATES:
        if rate == "n":
            return f"how often analysts saw {what} ({value:.0f} dispositions)"
        return f"how often {what} was a {dict(tp='true', bp='benign', fp='false')[rate]} positive ({value:.0%})"
    return f"its {name.replace('_', ' ')} ({value:g})"


class _Isotonic:
    """A monotone map fitted by pool-adjacent-violators, linearly interpolated."""

    def __init__(self, xs: list[float], ys: list[float]) -> None:
        self.xs, self.ys = xs, ys

    @classmethod
    def fit(cls, scores: list[float], hits: list[int], bins: int = 20) -> "_Isotonic":
        pairs = sorted(zip(scores, hits))
        if not pairs:
            return cls([0.0, 1.0], [0.0, 1.0])
        size = max(1, len(pairs) // bins)
        blocks = []  # [mean x, mean y, weight]
        for start in range(0, len(pairs), size):
            chunk = pairs[start:start + size]
            blocks.append([sum(p[0] for p in chunk) / len(chunk), sum(p[1] for p in chunk) / len(chunk), len(chunk)])
        merged: list[list[float]] = []
        for block in blocks:
            merged.append(block)
            while len(merged) > 1 and merged[-2][1] > merged[-1][1]:
                b2, b1 = merged.pop(), merged.pop()
                w = b1[2] + b2[2]
                merged.append([(b1[0] * b1[2] + b2[0] * b2[2]) / w, (b1[1] * b1[2] + b2[1] * b2[2]) / w, w])
        return cls([b[0] for b in merged], [b[1] for b in merged])

    def __call__(self, x: float) -> float:
        i = bisect.bisect_left(self.xs, x)
        if i == 0:
            return self.ys[0]
        if i >= len(self.xs):
            return self.ys[-1]
        x0, x1, y0, y1 = self.xs[i - 1], self.xs[i], self.ys[i - 1], self.ys[i]
        return y0 + (y1 - y0) * (x - x0) / (x1 - x0) if x1 > x0 else y1

    def as_json(self) -> list[list[float]]:
        return [[round(x, 6), round(y, 6)] for x, y in zip(self.xs, self.ys)]


def _calibrate(raw: list[list[float]], maps: list[_Isotonic]) -> list[list[float]]:
    out = []
    for row in raw:
        cal = [min(max(maps[c](row[c]), 1e-4), 1.0) for c in range(3)]
        total = sum(cal)
        out.append([c / total for c in cal])
    return out


def _fit_maps(raw: list[list[float]], labels: list[int]) -> list[_Isotonic]:
    return [_Isotonic.fit([r[c] for r in raw], [int(y == c) for y in labels]) for c in range(3)]


def _scores(probs: list[list[float]], labels: list[int]) -> tuple[float, float]:
    """Macro-F1 over the three labels and top-label ECE (10 bins)."""
    predicted = [max(range(3), key=lambda c: p[c]) for p in probs]
    f1s = []
    for c in range(3):
        tp = sum(1 for y, p in zip(labels, predicted) if y == c and p == c)
        fp = sum(1 for y, p in zip(labels, predicted) if y != c and p == c)
        fn = sum(1 for y, p in zip(labels, predicted) if y == c and p != c)
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    bins: dict[int, list[float]] = defaultdict(lambda: [0, 0.0, 0])
    for p, y, k in zip(probs, labels, predicted):
        b = bins[min(int(p[k] * 10), 9)]
        b[0] += 1
        b[1] += p[k]
        b[2] += int(y == k)
    ece = sum(abs(b[1] - b[2]) for b in bins.values()) / max(1, len(labels))
    return round(sum(f1s) / 3, 4), round(ece, 4)


@dataclass
class TrainReport:
    """What ``train`` did: sizes and the cross-validated quality of the model it trained."""

    examples: int
    by_label: dict[str, int]
    cv_macro_f1: float | None = None
    cv_ece: float | None = None
    trained: bool = False
    why_not: str | None = None


class _Encoder:
    """Categorical vocabularies (values seen at least twice) and the label prior."""

    def __init__(self, vocab: dict[str, dict[str, int]], prior: list[float]) -> None:
        self.vocab, self.prior = vocab, prior

    @classmethod
    def fit(cls, rows: list[dict[str, Any]], labels: list[int]) -> "_Encoder":
        vocab = {}
        for col in _CATEGORICAL:
            counts = Counter(r[col] for r in rows)
            vocab[col] = {v: i for i, v in enumerate(sorted(v for v, n in counts.items() if n >= 2))}
        counts = Counter(labels)
        return cls(vocab, [counts.get(c, 0) / max(1, len(labels)) for c in range(3)])

    def row(self, features: dict[str, Any], history: _History) -> list[float]:
        cats = [float(self.vocab[c].get(features[c], math.nan)) for c in _CATEGORICAL]  # NaN: unseen, missing
        nums = [float(features.get(c, 0) or 0) for c in _NUMERIC]
        return cats + nums + history.encode(features, self.prior)


@dataclass
class Prediction:
    """The model's call for one alert."""

    verdict: str
    confidence: float
    probabilities: dict[str, float]
    speaks_benign: bool
    reasons: list[str] = field(default_factory=list)


class TriageModel:
    """A trained model with everything needed to predict, loaded from and saved to plain JSON."""

    def __init__(self, booster, encoder: _Encoder, history: _History, maps: list[_Isotonic],
                 config: ModelConfig, meta: dict[str, Any]) -> None:
        self.booster, self.encoder, self.history, self.maps = booster, encoder, history, maps
        self.config, self.meta = config, meta

    def predict(self, alert: Alert) -> Prediction:
        """Calibrated probabilities, the verdict, and the three strongest reasons in words."""
        import numpy as np  # deferred: numpy and lightgbm load with a trained model, not with this package

        features = alert_features(alert)
        x = np.array([self.encoder.row(features, self.history)], dtype=float)
        raw = self.booster.predict(x)[0].tolist()
        probs = _calibrate([raw], self.maps)[0]
        best = max(range(3), key=lambda c: probs[c])
        contrib = self.booster.predict(x, pred_contrib=True)[0]
        width = len(FEATURE_NAMES) + 1
        mine = contrib[best * width:(best + 1) * width - 1]
        top = sorted(range(len(FEATURE_NAMES)), key=lambda i: -abs(mine[i]))[:3]
        reasons = [f"{_describe(FEATURE_NAMES[i], x[0][i])} {'for' if mine[i] > 0 else 'against'} "
                   f"{LABELS[best].replace('_', ' ')} ({mine[i]:+.2f})" for i in top if mine[i]]
        cfg = self.config
        speaks = (self.history.n("rule", features["rule"]) >= cfg.min_rule_history
                  or self.history.n("category", features["category"]) >= cfg.min_category_history)
        return Prediction(LABELS[best], round(probs[best], 3), dict(zip(LABELS, (round(p, 4) for p in probs))),
                          speaks, reasons)

    def to_json(self) -> str:
        """The artefact: LightGBM's own text model inside plain JSON."""
        return json.dumps({
            "format": 1, "booster": self.booster.model_to_string(), "vocab": self.encoder.vocab,
            "prior": self.encoder.prior, "history": dict(self.history.counts),
            "maps": [m.as_json() for m in self.maps], "config": self.config.__dict__, "meta": self.meta,
        })

    @classmethod
    def from_json(cls, text: str) -> "TriageModel":
        """Load an artefact written by ``to_json`` (text parsing only; nothing is unpickled)."""
        import lightgbm as lgb  # deferred: lightgbm loads with a trained model, not with this package

        data = json.loads(text)
        if data.get("format") != 1:
            raise ValueError(f"unknown model artefact format {data.get('format')!r}")
        history = _History()
        for key, counts in data["history"].items():
            history.counts[key] = list(counts)
        maps = [_Isotonic([p[0] for p in m], [p[1] for p in m]) for m in data["maps"]]
        return cls(lgb.Booster(model_str=data["booster"]), _Encoder(data["vocab"], data["prior"]), history, maps,
                   ModelConfig(**data["config"]), data["meta"])


def train(examples: list[tuple[dict[str, Any], str]], config: ModelConfig | None = None,
          ) -> tuple[TriageModel | None, TrainReport]:
    """Train on ``(features, label)`` pairs; ``None`` with the reason when there is too little history."""
    # deferred: lightgbm and numpy load to train, not with this package (the store's schema imports it)
    import lightgbm as lgb
    import numpy as np

    config = config or ModelConfig()
    rows = [f for f, _ in examples]
    labels = [_label_index(lab) for _, lab in examples]
    by_label = {LABELS[c]: n for c, n in sorted(Counter(labels).items())}
    report = TrainReport(len(examples), by_label)
    if len(examples) < config.min_examples:
        report.why_not = f"{len(examples)} dispositions; the model needs {config.min_examples}"
        return None, report
    if any(by_label.get(lab, 0) < config.min_per_label for lab in LABELS):
        report.why_not = f"each label needs {config.min_per_label} dispositions: {by_label}"
        return None, report
    encoder = _Encoder.fit(rows, labels)
    # Folds by a seeded shuffle: each row's history features come from the other folds only.
    order = list(range(len(rows)))
    random.Random(13).shuffle(order)
    fold_of = {i: k % config.folds for k, i in enumerate(order)}
    fold_history = []
    for k in range(config.folds):
        history = _History()
        for i, (features, label) in enumerate(zip(rows, labels)):
            if fold_of[i] != k:
                history.add(features, label)
        fold_history.append(history)
    x = np.array([encoder.row(f, fold_history[fold_of[i]]) for i, f in enumerate(rows)], dtype=float)
    y = np.array(labels)
    categorical = list(range(len(_CATEGORICAL)))
    oof = [[0.0, 0.0, 0.0] for _ in rows]
    for k in range(config.folds):
        train_idx = [i for i in range(len(rows)) if fold_of[i] != k]
        test_idx = [i for i in range(len(rows)) if fold_of[i] == k]
        booster = lgb.train(_PARAMS, lgb.Dataset(x[train_idx], y[train_idx], categorical_feature=categorical,
                                                 free_raw_data=False), _ROUNDS)
        for i, p in zip(test_idx, booster.predict(x[test_idx])):
            oof[i] = p.tolist()
    # Cross-fitted calibration: each fold is calibrated by maps fitted on the other folds' predictions.
    calibrated = [None] * len(rows)
    for k in range(config.folds):
        others = [i for i in range(len(rows)) if fold_of[i] != k]
        maps = _fit_maps([oof[i] for i in others], [labels[i] for i in others])
        mine = [i for i in range(len(rows)) if fold_of[i] == k]
        for i, p in zip(mine, _calibrate([oof[i] for i in mine], maps)):
            calibrated[i] = p
    report.cv_macro_f1, report.cv_ece = _scores(calibrated, labels)
    # The served model: every row, history from every row.
    full_history = _History()
    for features, label in zip(rows, labels):
        full_history.add(features, label)
    booster = lgb.train(_PARAMS, lgb.Dataset(x, y, categorical_feature=categorical), _ROUNDS)
    report.trained = True
    meta = {"examples": len(rows), "by_label": by_label, "cv_macro_f1": report.cv_macro_f1,
            "cv_ece": report.cv_ece, "features": FEATURE_NAMES}
    return TriageModel(booster, encoder, full_history, _fit_maps(oof, labels), config, meta), report


class ModelEvidence:
    """The ``EvidenceSource`` that puts the model's call for each alert of a case into its evidence."""

    name = "learned_model"

    def __init__(self, model: TriageModel, version: int, cache_size: int = 50_000) -> None:
        self.model = model
        self.version = version
        self._cache: OrderedDict[str, Prediction] = OrderedDict()
        self._cache_size = cache_size

    def evidence(self, case: Case) -> list[Evidence]:
        """One ``model`` item per alert: signed towards its verdict, never independent corroboration."""
        items = []
        for alert in case.alerts:
            prediction = self._predict(alert)
            p_tp = prediction.probabilities["true_positive"]
            items.append(Evidence(
                id=f"model:{alert.id}", kind="model", source=f"{self.name}/v{self.version}",
                summary=f"the site's learned model (v{self.version}) calls it {prediction.verdict} at "
                        f"{prediction.confidence:.2f}" + (f"; because of {'; '.join(prediction.reasons)}"
                                                          if prediction.reasons else ""),
                weight=round(4 * (p_tp - 0.5), 3), alert_id=alert.id,
                data={"verdict": prediction.verdict, "confidence": prediction.confidence,
                      "probabilities": prediction.probabilities, "speaks_benign": prediction.speaks_benign,
                      "reasons": prediction.reasons, "version": self.version},
            ))
        return items

    def _predict(self, alert: Alert) -> Prediction:
        hit = self._cache.get(alert.id)
        if hit is None:
            hit = self._cache[alert.id] = self.model.predict(alert)
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return hit

