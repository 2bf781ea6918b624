"""Resident memory of one libnftables context: soc-agent's binding against Debian's (PyPI ``pip-nftables``).

The edge sensor keeps one context open for its life, so what the binding costs is
part of the sensor's footprint (fail2ban's, measured by ``bench/edge.py``, is the bar).
Each figure is the median VmRSS of fresh interpreters that import the binding, open a
context and list tables; a bare interpreter is measured beside them in the same run.

    python -m venv /tmp/nftvenv && /tmp/nftvenv/bin/pip install pip-nftables
    python bench/nft_memory.py --python /tmp/nftvenv/bin/python [--runs 7]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_RSS = "; print([l for l in open('/proc/self/status') if l.startswith('VmRSS')][0].split()[1])"
CASES = {
    "soc_agent.libnft": f"import sys; sys.path.insert(0, {str(ROOT)!r}); from soc_agent.libnft import LibNft; "
                        "LibNft().run('list tables', check=False)",
    "pip-nftables": "import nftables; nftables.Nftables().cmd('list tables')",
    "bare interpreter": "pass",
}


def main() -> None:
    """Print the median RSS of each case, interleaved run by run."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--python", required=True, help="an interpreter that has pip-nftables installed")
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    samples: dict[str, list[int]] = {name: [] for name in CASES}
    for _ in range(args.runs):
        for name, code in CASES.items():
            samples[name].append(int(subprocess.check_output([args.python, "-c", code + _RSS])))
    for name, kib in samples.items():
        print(f"{name:18s} median RSS {statistics.median(kib) / 1024:.1f} MiB over {args.runs} runs")


if __name__ == "__main__":
    main()
