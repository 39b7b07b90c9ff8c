#!/usr/bin/env bash
# The comparison behind the README's results table (CartPole-v1 and Acrobot-v1, every arm, 5 seeds).
# Resumable: re-running it trains only the runs that have not finished. Then copies the tables and plots here.
set -euo pipefail
cd "$(dirname "$0")/../.."
LABER=${LABER:-.venv/bin/laber}
ARMS=${ARMS:-uniform,uniform-large,per,laber-mean,laber-lazy,laber-max,per-laber}
COMMON=(--arms "$ARMS" --seeds 5 --steps 40000 --train-freq 2 --eval-every 2000 --jobs "${JOBS:-2}")
"$LABER" compare --env CartPole-v1 "${COMMON[@]}" --out runs/cartpole
"$LABER" compare --env Acrobot-v1 "${COMMON[@]}" --out runs/acrobot
for env in cartpole acrobot; do
  cp "runs/$env/curves.png" "docs/results/$env.png"
  cp "runs/$env/summary.md" "docs/results/$env.md"
done
