#!/usr/bin/env bash
# The real-data run of datasets/real-mini.md: 60 real IXI T1 scans (with skull, 2 mm) as the
# healthy training set, prepared twice (deepbet masks / DLMUSE label maps as masks), the T1
# methods trained in the quick profile, tested on one real MS patient (T1).
#
#   bash datasets/real-mini/run.sh [SAMPLES] [WORK]     (from the repository root)
#
# SAMPLES: the shared real samples (default ../shared/data/real-samples); WORK: where the
# prepared data and the runs go (default /tmp/real-mini). One worker and one thread per
# process: ~40 CPU-minutes of preparation per variant, then the training.
set -euo pipefail
SAMPLES=${1:-../shared/data/real-samples}
WORK=${2:-/tmp/real-mini}
METHODS=${METHODS:-thresh,ae,vae,fae,ddpm,pddpm,cddpm}
export OMP_NUM_THREADS=1

for variant in deepbet dlmuse; do
  # the test patient: skull-stripped and bias-corrected already -> 'nonzero' mask, N4 as
  # for the training scans (one pipeline for all)
  python -m benchmark data prepare --cohort mslub --raw "$SAMPLES/ms_patient07" \
      --sequence t1 --out "$WORK/$variant"
done
python -m benchmark data prepare --cohort ixi --raw "$SAMPLES/ixi_t1_cohort" --sequence t1 \
    --skull-strip deepbet --out "$WORK/deepbet"
python -m benchmark data prepare --cohort ixi --raw "$SAMPLES/ixi_t1_cohort" --sequence t1 \
    --skull-strip mask --mask-dir "$SAMPLES/ixi_t1_cohort" --out "$WORK/dlmuse"

for variant in deepbet dlmuse; do
  python -m benchmark data verify "$WORK/$variant"
  python -m benchmark run --methods "$METHODS" --profile quick --sequences t1 \
      --data-root "$WORK/$variant" --out "$WORK/runs" --run-id "real-mini-$variant" \
      --no-progress
done
