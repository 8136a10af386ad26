#!/usr/bin/env bash
# Regenerates leaderboard/synthetic-quick/ : every registered method on the embedded
# synthetic default, quick profile, fold 0, seed 3141. Run from the repository root:
#     bash leaderboard/reproduce.sh            (PYTHON=... to pick the interpreter)
# Two lanes side by side, one CPU thread each (the reference machine has 2 cores):
#   lane 1: the feature baselines + thresholding, then the reconstruction baselines
#   lane 2: the diffusion models
# Each lane is an ordinary `python -m benchmark run`; --resume makes a re-run after a
# crash continue where it stopped. The leaderboard merges the three run directories.
set -euo pipefail
PY=${PYTHON:-python}
RUNS=${RUNS:-runs}
OUT=${OUT:-leaderboard/synthetic-quick}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
common=(--profile quick --synthetic-version 1 --out "$RUNS" --no-progress --resume)  # v1: this board's data

(
  "$PY" -m benchmark run --methods rd,fae,edc,pii,thresh --run-id reference-quick-feature "${common[@]}"
  "$PY" -m benchmark run --methods ae,vae,svae,dae,ra,phanes --run-id reference-quick-recon "${common[@]}"
) > "$RUNS.lane1.log" 2>&1 &
lane1=$!
"$PY" -m benchmark run --methods ddpm,pddpm,cddpm --run-id reference-quick-diffusion \
  "${common[@]}" > "$RUNS.lane2.log" 2>&1 &
lane2=$!
status=0
wait "$lane1" || { echo "lane 1 failed: see $RUNS.lane1.log" >&2; status=1; }
wait "$lane2" || { echo "lane 2 failed: see $RUNS.lane2.log" >&2; status=1; }
[ "$status" -eq 0 ] || exit "$status"

# quick has one fold, so the permutation tests pair per-volume values (fold tests need >1)
"$PY" -m benchmark leaderboard "$RUNS"/reference-quick-{feature,recon,diffusion} --out "$OUT" \
  --paired volume --qualitative Brats21:BraTS2021_00006 --qualitative ATLAS_v2:sub-r007s001
for lane in feature recon diffusion; do
  mkdir -p "$OUT/run-records/$lane"
  cp "$RUNS/reference-quick-$lane"/{config.json,environment.json,timings.csv} "$OUT/run-records/$lane/"
done
