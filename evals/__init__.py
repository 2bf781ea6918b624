"""Evaluation data for soc-agent: a deterministic synthetic alert stream and its labels.

``evals.generate`` builds the stream (``evals/demo_alerts.jsonl``, native
alert format) and the ground truth (``evals/demo_labels.jsonl``) against the
demo environment in ``demo/data/*.yml``.
"""
