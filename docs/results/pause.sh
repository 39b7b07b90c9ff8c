#!/usr/bin/env bash
# Pause the campaigns: stop every running `laber compare` of the campaigns below, then publish what they have,
# finished runs and the unfinished runs' mid-run checkpoints (campaign.sh with PUBLISH_ONLY=1 KEEP_UNFINISHED=1),
# so that a commit of docs/results/ lets a fresh clone continue each unfinished run where it stopped: run the
# campaign's script again (docs/results/minatar.sh, sac-hopper.sh). Then `make results` updates the README block.
# A campaign with nothing under runs/<name> is skipped. Environment: LABER (default .venv/bin/laber).
set -euo pipefail
cd "$(dirname "$0")/../.."
NAMES=${NAMES:-minatar-breakout minatar-spaceinvaders sac-hopper}
for name in $NAMES; do
  for pid in $(pgrep -f -- "compare .*--out runs/$name\$" || true); do
    pkill -P "$pid" 2>/dev/null || true  # its worker processes (--jobs > 1) first: they would train on
    kill "$pid" 2>/dev/null || true
  done
done
sleep 3  # the killed runs' last checkpoint stays as it was; a checkpoint being written is renamed in whole or not
for name in $NAMES; do
  [ -d "runs/$name" ] || continue
  echo "pause: $name"
  PUBLISH_ONLY=1 KEEP_UNFINISHED=1 bash docs/results/campaign.sh "$name"
done
