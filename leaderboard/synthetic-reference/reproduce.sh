#!/usr/bin/env bash
# Regenerates leaderboard/synthetic-reference/: every registered method on the embedded
# synthetic default, reference profile (3 folds, learning curves), seed 3141.
# Run from the repository root:   bash leaderboard/synthetic-reference/reproduce.sh
#
# Two lanes side by side, one CPU thread each (the reference machine has 2 cores):
#   lane "diffusion": cddpm, pddpm, ddpm (the headline method first)       lane "baselines": the other eleven
# Each lane runs fold 0 of all its methods, then fold 1, then fold 2: ordinary
# `python -m benchmark run ... --resume` commands into a run directory under runs/ here.
# Parts finish one at a time and are complete on disk when done.json appears, so the run
# can stop anywhere (a crash, the end of a working day) and a re-run continues; the
# parts' small records (CSVs, JSON) are committed, checkpoints and maps are not
# (.gitignore), so a fresh clone resumes too.  ONLY=leaderboard skips training.
set -euo pipefail
PY=${PYTHON:-python}
HERE=leaderboard/synthetic-reference
RUNS=$HERE/runs
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
# the first board ran on synthetic generator version 1 (the default is now 2: docs/synthetic.md)
common=(--profile reference --synthetic-version 1 --out "$RUNS" --no-progress --resume)

lane() {  # lane <run-id> <methods> [a command to run after each fold, given the fold]
  for fold in 0 1 2; do
    "$PY" -m benchmark run --methods "$2" --folds "$fold" --run-id "$1" "${common[@]}"
    if [ -n "${3:-}" ]; then "$3" "$fold"; fi
  done
}

# docs/claims.md claim 4 (SSL): cDDPM (T2, then T1) without its encoder pre-training,
# after each fold of the diffusion lane, tested per volume against the board's cDDPM (same
# seed, data and budget otherwise). The diffusion lane is the shorter one (budget.md), so
# this costs no wall time.
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

# 3 folds: tests pair per-volume values across the folds (fold-level tests with n=3
# cannot reach p < 0.125)
lanes=("$RUNS"/baselines "$RUNS"/diffusion)
# the SSL ablation's entry (cddpm [ssl=False]) once it has a finished part
if ls "$RUNS"/ablation-ssl/*/*/fold*/done.json > /dev/null 2>&1; then lanes+=("$RUNS"/ablation-ssl); fi
"$PY" -m benchmark leaderboard "${lanes[@]}" --out "$HERE" --paired volume
"$PY" -m benchmark experiment learning-curves "${lanes[@]}" --out "$HERE/plots"
# the committed page has no volume browser (it would need the runs' maps, which are not in
# git, and adds ~6 MB); where the maps are: python -m benchmark report DIR --slice-step 4
"$PY" -m benchmark report "$HERE" --browser-volumes 0
# CPU time per part and the projection for the whole board (budget.md)
"$PY" "$HERE/diagnostics/budget.py" > "$HERE/budget.md"
# the tables that README.md, this folder's README and docs/convergence.md quote
"$PY" "$HERE/diagnostics/sync_tables.py"
