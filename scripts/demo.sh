#!/usr/bin/env bash
# The README demo: set up .venv, train the SZT tanh network with IBMonitor, write plots + run log.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
out="${1:-runs/demo}"
.venv/bin/python examples/demo.py --out "$out"
echo
echo "Figures are in $out/figures; re-plot or report any time with:"
echo "  .venv/bin/ibhooks plot $out/demo.jsonl -o $out/replot"
echo "  .venv/bin/ibhooks report $out/demo.jsonl"
