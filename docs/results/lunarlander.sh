#!/usr/bin/env bash
# LunarLander-v3 (gymnasium, box2d), the reference Double DQN, every arm, 10 seeds of 100k steps (issue 15).
# LunarLander does not saturate at this budget, unlike CartPole. Resumable: re-running trains only the runs
# that have not finished; runs go seed by seed, so an early stop leaves every arm with about the same seeds.
# Afterwards, every run's per-evaluation data is copied to docs/results/lunarlander/<arm>/seed<k>.csv
# (step, eval_return, train_seconds) with the summary and the plot, so the results can be re-analysed without
# re-running (`laber report` needs the run directories; the CSV files hold the same evaluation curves).
# The finished run directories are kept in docs/results/lunarlander/run-dirs/: on a fresh clone the script copies them
# to $OUT first, so the campaign goes on where it stopped. Needs the box2d extra: pip install ".[box2d]".
set -euo pipefail
cd "$(dirname "$0")/../.."
LABER=${LABER:-.venv/bin/laber}
ARMS=${ARMS:-uniform,uniform-large,per,laber-mean,laber-lazy,laber-max,per-laber,ger,laber-exact}
SEEDS=${SEEDS:-10}
STEPS=${STEPS:-100000}
JOBS=${JOBS:-2}
OUT=${OUT:-runs/lunarlander}
KEEP=docs/results/lunarlander/run-dirs  # the finished run directories, committed so that a fresh clone resumes
if [ ! -e "$OUT" ] && [ -d "$KEEP" ]; then
  mkdir -p "$(dirname "$OUT")"
  cp -a "$KEEP" "$OUT"
fi
"$LABER" compare --env LunarLander-v3 --arms "$ARMS" --seeds "$SEEDS" --steps "$STEPS" \
  --hidden 128,128 --lr 5e-4 --learning-starts 5000 --eps-decay-steps 20000 --target-update 1000 \
  --eval-every 5000 --eval-episodes 5 --jobs "$JOBS" --no-progress --no-tensorboard --out "$OUT"
DEST=docs/results/lunarlander
for run in "$OUT"/*/seed*/; do
  [ -f "$run/result.json" ] || continue
  arm=$(basename "$(dirname "$run")")
  mkdir -p "$DEST/$arm"
  cp "$run/eval.csv" "$DEST/$arm/$(basename "$run").csv"
  mkdir -p "$KEEP/$arm"
  cp -a "${run%/}" "$KEEP/$arm/"
done
cp "$OUT/compare.json" "$OUT/.laber-run" "$KEEP/"
cp "$OUT/curves.png" docs/results/lunarlander.png
cp "$OUT/summary.md" docs/results/lunarlander.md
cp "$OUT/summary.json" "$DEST/summary.json"
