#!/usr/bin/env bash
# MinAtar (issue 15): the paper's MinAtar DQN (--config minatar-paper: conv 16@3x3 + 128 units, centred RMSprop,
# B = 32, 1-step targets, a training step every frame) on Breakout-v1 and SpaceInvaders-v1, arms uniform,
# uniform-large and laber-mean (m = 4), 3 seeds of 500,000 frames (the paper: 5M frames, more seeds; see
# docs/results/minatar-breakout/notes.md). The two games train side by side, one run at a time each (2 cores),
# each seed by seed, so that a stop leaves both games with about the same seeds. Resumable run by run; every
# finished run is published under docs/results/minatar-<game>/ (see campaign.sh). Needs the minatar extra.
set -euo pipefail
cd "$(dirname "$0")/../.."
SEEDS=${SEEDS:-3}
STEPS=${STEPS:-500000}
ARMS=${ARMS:-uniform,uniform-large,laber-mean}
GAMES=${GAMES:-Breakout SpaceInvaders}
for game in $GAMES; do
  name=minatar-$(echo "$game" | tr '[:upper:]' '[:lower:]')
  JOBS=1 bash docs/results/campaign.sh "$name" --env "MinAtar/$game-v1" --config minatar-paper \
    --arms "$ARMS" --seeds "$SEEDS" --steps "$STEPS" &
done
wait
