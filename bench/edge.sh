#!/bin/sh
# Edge sensor vs fail2ban vs CrowdSec on the shared 1M-line log (see bench/edge.py). Needs root.
#   bench/edge.sh [--runs 2] [--trials 20] [--workdir DIR]
cd "$(dirname "$0")/.." && exec .venv/bin/python bench/edge.py "$@"
