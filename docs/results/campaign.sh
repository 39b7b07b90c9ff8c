#!/usr/bin/env bash
# One results campaign, run or resumed: docs/results/campaign.sh NAME [laber compare arguments, --out excepted]
#
# Trains every arm x seed that has not finished into runs/NAME (laber compare resumes run by run; runs go seed by
# seed, so an early stop leaves every arm with about the same seeds), then publishes what has finished:
#   docs/results/NAME/run-dirs/<arm>/seed<k>/  every finished run directory (committed: a fresh clone resumes from
#                                              them, and `laber report` re-analyses them without re-running)
#   docs/results/NAME/<arm>/seed<k>.csv        each run's evaluation curve (step, eval_return, train_seconds)
#   docs/results/NAME/summary.json, NAME.png   the summary and the curves of every finished run
#   docs/results/NAME.md                       docs/results/NAME/notes.md (hand-written: what the campaign is, its
#                                              caveats), then the generated summary
#   docs/results/NAME/run-dirs/costs.json      when measured (`laber cost docs/results/NAME/run-dirs`): the arms'
#                                              matched-load costs, which the equal-time comparisons then use
# On a fresh clone the committed run directories are copied to runs/NAME first. Environment: LABER (the laber
# command, default .venv/bin/laber), JOBS (runs at a time, default 2), OUT (default runs/NAME).
# PUBLISH_ONLY=1 skips the training and publishes the finished runs only; with it, KEEP_UNFINISHED=1 also keeps
# the unfinished runs' mid-run checkpoints (<arm>/seed<k>.partial/, see laber.agents.resume) under run-dirs/, so
# that a fresh clone continues them (stop the campaign first: a checkpoint being written is not copied whole).
# A run that has finished drops its kept .partial.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ $# -lt 1 ]; then
  echo "usage: docs/results/campaign.sh NAME [laber compare arguments]" >&2
  exit 2
fi
NAME=$1
shift
LABER=${LABER:-.venv/bin/laber}
JOBS=${JOBS:-2}
OUT=${OUT:-runs/$NAME}
DEST=docs/results/$NAME
KEEP=$DEST/run-dirs
if [ ! -e "$OUT" ] && [ -d "$KEEP" ]; then
  mkdir -p "$(dirname "$OUT")"
  cp -a "$KEEP" "$OUT"
fi
# costs.json (`laber cost`: matched-load costs for the equal-time comparisons): the committed one, in run-dirs/,
# is the campaign's; one measured into OUT is kept only where run-dirs/ has none
if [ -f "$KEEP/costs.json" ] && [ -d "$OUT" ]; then
  cp "$KEEP/costs.json" "$OUT/"
fi
if [ "${PUBLISH_ONLY:-0}" != 1 ]; then
  "$LABER" compare "$@" --jobs "$JOBS" --no-progress --no-tensorboard --out "$OUT"
elif ! "$LABER" report --out "$OUT"; then
  reported=0  # no finished run yet: only the unfinished runs' checkpoints are kept
fi
mkdir -p "$KEEP"
for run in "$OUT"/*/seed*/; do
  [ -f "$run/result.json" ] || continue
  arm=$(basename "$(dirname "$run")")
  mkdir -p "$DEST/$arm" "$KEEP/$arm"
  cp "$run/eval.csv" "$DEST/$arm/$(basename "$run").csv"
  cp -a "${run%/}" "$KEEP/$arm/"
done
for partial in "$KEEP"/*/seed*.partial/; do
  [ -d "$partial" ] || continue
  arm=$(basename "$(dirname "$partial")")
  seed=$(basename "$partial" .partial)
  if [ -f "$OUT/$arm/$seed/result.json" ] || [ "${KEEP_UNFINISHED:-0}" = 1 ]; then
    rm -rf "${partial%/}"
  fi
done
if [ "${KEEP_UNFINISHED:-0}" = 1 ]; then
  for partial in "$OUT"/*/seed*.partial/; do
    [ -d "$partial/resume/state" ] || continue
    arm=$(basename "$(dirname "$partial")")
    mkdir -p "$KEEP/$arm"
    cp -a "${partial%/}" "$KEEP/$arm/"
    rm -rf "$KEEP/$arm/$(basename "$partial")/tb"
  done
fi
cp "$OUT/compare.json" "$OUT/.laber-run" "$KEEP/"
if [ -f "$OUT/costs.json" ] && [ ! -f "$KEEP/costs.json" ]; then
  cp "$OUT/costs.json" "$KEEP/"
fi
[ "${reported:-1}" = 1 ] || exit 0
cp "$OUT/curves.png" "docs/results/$NAME.png"
cp "$OUT/summary.json" "$DEST/summary.json"
{
  if [ -f "$DEST/notes.md" ]; then
    cat "$DEST/notes.md"
    echo
  fi
  cat "$OUT/summary.md"
} > "docs/results/$NAME.md"
