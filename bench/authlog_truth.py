"""sshd auth logs through the authlog connector and the threshold detector, scored against ground truth.

    .venv/bin/python ../shared/bench/edge/gen_sshd_log.py -n 200000 -o /tmp/auth.log --truth /tmp/truth.json
    .venv/bin/python bench/authlog_truth.py /tmp/auth.log /tmp/truth.json

Reports the failed attempts the detector counted against the generator's
count, and the sources whose brute-force threshold crossed: caught, missed
and extra (flagged though the truth never crosses). The generator counts an
attempt once whatever lines sshd writes for it; so must we.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from connectors import MappingError, parse_record  # noqa: E402
from soc_agent.config import REPO_ROOT  # noqa: E402
from soc_agent.detect import ThresholdDetector  # noqa: E402

_RULE = "brute_force_threshold"


def _canon(ip: str) -> str:
    try:
        return str(ipaddress.ip_address(ip))
    except ValueError:
        return ip


def score(log: Path, truth_path: Path) -> dict:
    """Counted failures and crossing sources for ``log``, against ``truth_path``."""
    truth = json.loads(truth_path.read_text())
    detector = ThresholdDetector.from_file(REPO_ROOT / "playbooks" / "detectors.yml")
    failure_lines = lines = unmapped = 0
    flagged: set[str] = set()
    with log.open("rb") as handle:
        for line in handle:
            lines += 1
            try:
                event = parse_record(line.rstrip(b"\n"), "authlog")
            except MappingError:
                unmapped += 1  # not a login attempt line (sudo, CRON, session opened...)
                continue
            failure_lines += event.rule_id in ("auth_failure", "auth_invalid_user")
            for alert in detector.observe(event):
                if alert.rule_id == _RULE:
                    flagged.add(_canon(alert.attributes["group_key"].split(":", 1)[1]))
    crossing = {_canon(r["ip"]) for r in truth["crossing"]}
    return {
        "lines": lines, "attempt_lines": lines - unmapped, "failure_lines": failure_lines,  # failed or invalid-user
        "failures_counted": failure_lines - detector.epilogues, "failures_truth": truth["summary"]["failure_events"],
        "sources_flagged": len(flagged), "sources_truth": len(crossing),
        "caught": len(flagged & crossing), "missed": len(crossing - flagged), "extra": len(flagged - crossing),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("log", type=Path)
    parser.add_argument("truth", type=Path)
    args = parser.parse_args()
    print(json.dumps(score(args.log, args.truth)))


if __name__ == "__main__":
    main()
