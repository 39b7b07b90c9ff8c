#!/usr/bin/env bash
# LunarLander-v3 (gymnasium, box2d), the reference Double DQN, every arm, 10 seeds of 100k steps (issue 15).
# LunarLander does not saturate at this budget, unlike CartPole. Resumable run by run; finished runs are
# published under docs/results/lunarlander/ (see campaign.sh). Needs the box2d extra: pip install ".[box2d]".
set -euo pipefail
cd "$(dirname "$0")/../.."
bash docs/results/campaign.sh lunarlander --env LunarLander-v3 \
  --arms "${ARMS:-uniform,uniform-large,per,laber-mean,laber-lazy,laber-max,per-laber,ger,laber-exact}" \
  --seeds "${SEEDS:-10}" --steps "${STEPS:-100000}" \
  --hidden 128,128 --lr 5e-4 --learning-starts 5000 --eps-decay-steps 20000 --target-update 1000 \
  --eval-every 5000 --eval-episodes 5
