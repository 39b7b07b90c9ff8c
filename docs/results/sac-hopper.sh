#!/usr/bin/env bash
# Soft Actor-Critic on Hopper-v5 (issue 15): arms uniform and laber-mean (the authors' recipe: each critic
# sub-samples its own B rows from the shared large batch by its own |TD|; the actor trains on a uniform B-subset),
# 3 seeds of 200,000 steps, laber.agents.sac.SACConfig's defaults otherwise. Two runs at a time (2 cores), seed by
# seed; resumable run by run; finished runs are published under docs/results/sac-hopper/ (see campaign.sh).
# Needs the mujoco extra.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash docs/results/campaign.sh sac-hopper --agent sac --env Hopper-v5 --arms "${ARMS:-uniform,laber-mean}" \
  --seeds "${SEEDS:-3}" --steps "${STEPS:-200000}"
