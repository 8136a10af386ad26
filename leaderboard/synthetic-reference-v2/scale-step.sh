#!/usr/bin/env bash
# The scale step of issue 27 (docs/fidelity.md, "Data or scale"): five methods one step up
# in network size and training budget, fold 0 of the synthetic default v2, beside the
# board's fold 0 at the reference scale (reproduce.sh here), so the two differ in scale only.
#   diffusion trio: UNet base width 16 -> 32 (conv FLOPs x4, 0.33 M -> 1.32 M parameters),
#                   epochs 40 -> 80 (cDDPM's pre-training 10 -> 20)
#   AE:  base_filters 16 -> 32, max_filters 64 -> 128, epochs 150 -> 300
#   DAE: wf 3 -> 4 (widths x2), epochs 150 -> 300
# Budget (measured CPU-seconds per step and per volume at these sizes, 2026-12-06; see
# docs/fidelity.md): about 7 CPU-hours for the 10 parts. Run from the repository root:
#   bash leaderboard/synthetic-reference-v2/scale-step.sh
# Two lanes, one thread each; they wait for free cores (benchmark.cpu) if the board runs.
set -euo pipefail
PY=${PYTHON:-python}
HERE=leaderboard/synthetic-reference-v2
RUNS=$HERE/runs
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
common=(--profile reference --synthetic-version 2 --folds 0 --out "$RUNS" --no-progress --resume)
mkdir -p "$RUNS"
if [ "${ONLY:-}" != "leaderboard" ]; then
  "$PY" -m benchmark run --methods cddpm,pddpm,ddpm --run-id scale-diffusion "${common[@]}" \
    --set cddpm.base_channels=32 --set pddpm.base_channels=32 --set ddpm.base_channels=32 \
    --epochs main=80,pretrain=20 > "$RUNS/scale-diffusion.log" 2>&1 &
  one=$!
  "$PY" -m benchmark run --methods ae,dae --run-id scale-recon "${common[@]}" \
    --set ae.base_filters=32 --set ae.max_filters=128 --set dae.wf=4 --epochs 300 \
    > "$RUNS/scale-recon.log" 2>&1 &
  two=$!
  status=0
  wait "$one" || { echo "scale-diffusion failed: see $RUNS/scale-diffusion.log" >&2; status=1; }
  wait "$two" || { echo "scale-recon failed: see $RUNS/scale-recon.log" >&2; status=1; }
  [ "$status" -eq 0 ] || exit "$status"
fi
"$PY" -m benchmark leaderboard "$RUNS"/scale-diffusion "$RUNS"/scale-recon --out "$HERE/scale-step" \
  --paired volume
