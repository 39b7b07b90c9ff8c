#!/usr/bin/env bash
# The comparison behind the README's results (CartPole-v1 and Acrobot-v1, every arm, 10 seeds, 50k steps each).
# The two environments run side by side, one process each (2 cores); within each, runs go seed by seed so that
# a comparison stopped early leaves every arm with about the same number of seeds. Resumable: re-running it
# trains only the runs that have not finished. Finally copies the plots and summaries next to this script.
set -euo pipefail
cd "$(dirname "$0")/../.."
LABER=${LABER:-.venv/bin/laber}
ARMS=${ARMS:-uniform,uniform-large,per,laber-mean,laber-lazy,laber-max,per-laber}
SEEDS=${SEEDS:-10}
STEPS=${STEPS:-50000}
COMMON=(--arms "$ARMS" --seeds "$SEEDS" --steps "$STEPS" --eval-every 1000 --jobs 1 --no-progress --no-tensorboard)
"$LABER" compare --env CartPole-v1 "${COMMON[@]}" --out runs/cartpole &
"$LABER" compare --env Acrobot-v1 "${COMMON[@]}" --out runs/acrobot &
wait
for env in cartpole acrobot; do
  cp "runs/$env/curves.png" "docs/results/$env.png"
  cp "runs/$env/summary.md" "docs/results/$env.md"
done
