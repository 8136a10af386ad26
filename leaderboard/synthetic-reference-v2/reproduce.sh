#!/usr/bin/env bash
# Regenerates leaderboard/synthetic-reference-v2/: every registered method on the synthetic
# default's generator version 2 (lesions calibrated to measured real statistics:
# docs/synthetic.md, docs/fidelity.md), reference profile (3 folds, learning curves), seed
# 3141: the same settings as leaderboard/synthetic-reference/ (version 1), so that the two
# boards differ only in their lesions (the healthy IXI data of v1 and v2 are identical).
# Run from the repository root:   bash leaderboard/synthetic-reference-v2/reproduce.sh
#
# Two lanes side by side, one CPU thread each (the reference machine has 2 cores):
#   lane "diffusion": cddpm, pddpm, ddpm (then, per fold, the SSL ablation: cddpm without
#   pre-training, run id ablation-ssl)     lane "baselines": the other eleven
# Each lane runs fold 0 of all its methods, then fold 1, then fold 2: ordinary
# `python -m benchmark run ... --resume` commands into a run directory under runs/ here.
# A part is complete on disk when its done.json appears, so the run can stop anywhere and a
# re-run continues; the parts' small records (CSVs, JSON) are committed, checkpoints and
# maps are not (.gitignore), so a fresh clone resumes too.  ONLY=leaderboard skips training;
# FOLDS="0" runs fold 0 only.
set -euo pipefail
PY=${PYTHON:-python}
HERE=leaderboard/synthetic-reference-v2
RUNS=$HERE/runs
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
common=(--profile reference --synthetic-version 2 --out "$RUNS" --no-progress --resume)

lane() {  # lane <run-id> <methods> [a command to run after each fold, given the fold]
  for fold in ${FOLDS:-0 1 2}; do
    "$PY" -m benchmark run --methods "$2" --folds "$fold" --run-id "$1" "${common[@]}"
    if [ -n "${3:-}" ]; then "$3" "$fold"; fi
  done
}

# docs/claims.md claim 4 (SSL), as on the first board: cDDPM without its encoder
# pre-training, after each fold of the diffusion lane (the shorter lane, budget.md)
ssl_ablation() {  # ssl_ablation <fold>
  "$PY" -m benchmark run --methods cddpm --sequences t2,t1 --folds "$1" --run-id ablation-ssl \
    --set cddpm.pretrain=false "${common[@]}"
}

if [ "${ONLY:-}" != "leaderboard" ]; then
  mkdir -p "$RUNS"
  lane baselines thresh,ae,vae,dae,svae,ra,phanes,rd,fae,edc,pii > "$RUNS/baselines.log" 2>&1 &
  one=$!
  lane diffusion cddpm,pddpm,ddpm ssl_ablation > "$RUNS/diffusion.log" 2>&1 &
  two=$!
  status=0
  wait "$one" || { echo "lane baselines failed: see $RUNS/baselines.log" >&2; status=1; }
  wait "$two" || { echo "lane diffusion failed: see $RUNS/diffusion.log" >&2; status=1; }
  [ "$status" -eq 0 ] || exit "$status"
fi

lanes=("$RUNS"/baselines "$RUNS"/diffusion)
# the SSL ablation's entry (cddpm [ssl=False]) once it has a finished part
if ls "$RUNS"/ablation-ssl/*/*/fold*/done.json > /dev/null 2>&1; then lanes+=("$RUNS"/ablation-ssl); fi
"$PY" -m benchmark leaderboard "${lanes[@]}" --out "$HERE" --paired volume
"$PY" -m benchmark experiment learning-curves "${lanes[@]}" --out "$HERE/plots"
"$PY" -m benchmark report "$HERE" --browser-volumes 0
# agreement of this board's ranking with the paper's Table 2 (docs/rank-agreement.md)
"$PY" -m benchmark experiment rank-agreement "$HERE" --out "$HERE/rank_agreement.csv" \
  > "$HERE/rank_agreement.txt"
# CPU time per part (the first board's script, pointed at these runs)
"$PY" leaderboard/synthetic-reference/diagnostics/budget.py "$RUNS" > "$HERE/budget.md"
# copy the generated Table 2 into the pages that quote it (README.md, this board's README)
"$PY" leaderboard/synthetic-reference/diagnostics/sync_tables.py
