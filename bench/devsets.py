"""Benchmark: decision quality on every labelled dev set, one table.

    .venv/bin/python bench/devsets.py [--devsets ../shared/devsets] [--json] [--reasoner deterministic]

Runs ``soc-agent eval --alerts … --labels …`` (``evals/labelled.py``) under
the shipped policy (no autonomy file: a supervised install) on:

* ``guide``: the GUIDE test split, after learning its history split;
* ``sigma``: the Sigma core and tp_extra sets together, with no history (every rule unseen);
* ``sigma strict``: the same without the ``tactic_mismatch`` true positives.

Each set runs in a fresh workdir. The columns are the dev sets' scorer's
(macro-F1, TPR, FPR, ECE, undetermined share) plus the two counts a SOC lead
asks for first: true positives closed without a person, and true positives
called benign or false positive.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from evals.labelled import read_labels, run_labelled, score  # noqa: E402
from soc_agent.config import Settings  # noqa: E402

_DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "devsets"


def _sets(root: Path) -> dict[str, dict[str, list[Path]]]:
    guide, sigma = root / "guide", root / "sigma"
    return {
        "guide": {"alerts": [guide / "test.jsonl"], "labels": [guide / "test_labels.jsonl"],
                  "learn_alerts": [guide / "history.jsonl"], "learn_labels": [guide / "history_labels.jsonl"]},
        "sigma": {"alerts": [sigma / "alerts.jsonl", sigma / "tp_extra_alerts.jsonl.gz"],
                  "labels": [sigma / "labels.jsonl", sigma / "tp_extra_labels.jsonl.gz"]},
    }


def _strict_ids(labels: list[Path]) -> set[str]:
    """Alert ids whose label is not a ``tactic_mismatch`` true positive."""
    keep = set()
    for path in labels:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt") as fh:
            for line in fh:
                if line.strip():
                    row = json.loads(line)
                    if "tactic_mismatch" not in str(row.get("label_source", "")):
                        keep.add(str(row["alert_id"]))
    return keep


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devsets", type=Path, default=_DEFAULT)
    parser.add_argument("--reasoner", default="deterministic")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="soc-devsets-") as tmp:
        for name, files in _sets(args.devsets).items():
            if not all(p.exists() for ps in files.values() for p in ps):
                print(f"{name}: not found under {args.devsets}", file=sys.stderr)
                continue
            settings = Settings(workdir=Path(tmp) / name, reasoner=args.reasoner)
            run = run_labelled(settings, files["alerts"], files["labels"], files.get("learn_alerts", []),
                               files.get("learn_labels", []))
            rows[name] = run.results
            if name == "sigma":
                # The strict reading: the same decisions scored without the tactic_mismatch true positives.
                keep = _strict_ids(files["labels"])
                gold = {k: v for k, v in read_labels(files["labels"]).items() if k in keep}
                rows["sigma strict"] = score(gold, run.decisions, run.closed)
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    show = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
    print(f"{'set':14} {'alerts':>6} {'macro-F1':>8} {'TPR':>6} {'FPR':>6} {'ECE':>6} {'und':>6} "
          f"{'TP closed w/o person':>20} {'TP called BP/FP':>15}")
    for name, r in rows.items():
        print(f"{name:14} {r['alerts']:>6} {show(r['macro_f1']):>8} {show(r['tpr']):>6} {show(r['fpr']):>6} "
              f"{show(r['ece']):>6} {show(r['undetermined']):>6} {r['true_positives_closed_without_a_person']:>20} "
              f"{r['true_positives_called_non_malicious']:>15}")


if __name__ == "__main__":
    main()
