#!/usr/bin/env bash
# Issue 27, "data or scale": does the synthetic board's anatomy decide its ranking?
#
# The v2 board's subjects are the MNI ICBM152 template (an average of 152 brains) seen
# through random warps: smoother than any one brain. This renders the same data set (v2
# lesions, sites, contrasts, noise, seeds, sizes) with each subject's tissue maps taken
# from one real healthy IXI T1 scan instead (benchmark/data/synth/individual.py: training
# subjects from 40 scans, every test subject from the other 20), then trains the methods
# exactly as the board's fold 0 (reference profile). The two runs differ in the anatomy
# only, so the change in rank agreement with the paper measures the anatomy's share.
#
#   bash leaderboard/synthetic-reference-v2/diagnostics/anatomy_swap.sh [SAMPLES] [WORK]
#
# SAMPLES: the shared real samples (default ../shared/data/real-samples; the scans are not
# part of the project). WORK: prepared data (default /tmp/anatomy-swap). The parts' small
# records go to leaderboard/synthetic-reference-v2/runs/anatomy-swap and --resume continues
# them. Cost on the 2-core machine: ~35 CPU-min to prepare the 60 scans, ~1 min to render,
# then a part costs what the board's fold-0 part costs (~2.5 h for T2's 14 methods).
# SEQUENCES (default t2) and METHODS choose the parts, RUN_ID the run (default anatomy-swap;
# one launch at a time per run: a second sequence in parallel needs its own run id).
set -euo pipefail
PY=${PYTHON:-python}
SAMPLES=${1:-../shared/data/real-samples}
WORK=${2:-/tmp/anatomy-swap}
SEQUENCES=${SEQUENCES:-t2}
METHODS=${METHODS:-thresh,ae,vae,dae,ddpm,pddpm,cddpm,ra,svae,phanes,pii,edc,fae,rd}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1

# 1. the real healthy anatomies: 60 IXI T1, skull-stripped with their DLMUSE label maps,
#    N4-corrected, registered to the MNI template (the same pipeline as datasets/real-mini)
"$PY" -m benchmark data prepare --cohort ixi --raw "$SAMPLES/ixi_t1_cohort" --sequence t1 \
    --skull-strip mask --mask-dir "$SAMPLES/ixi_t1_cohort" --out "$WORK/ixi-prepared"
# 2. the board's data set (quick size, v2, seed 0) with those anatomies
"$PY" -m benchmark data synth --size quick --version 2 \
    --anatomy-from "$WORK/ixi-prepared" --out "$WORK/v2-individual"
# the committed runs were trained on the data set of anatomy_swap.manifest.json: a resume on
# another machine must regenerate exactly those bytes (prepare's registration is part of it)
MANIFEST=leaderboard/synthetic-reference-v2/diagnostics/anatomy_swap.manifest.json
if [ -f "$MANIFEST" ]; then
  "$PY" - "$MANIFEST" "$WORK/v2-individual/manifest.json" <<'PY'
import json, sys
old, new = (json.load(open(p))["files"] for p in sys.argv[1:])
if old != new:
    bad = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    sys.exit(f"the regenerated data differ from those of the committed runs in {len(bad)} "
             f"files (first: {bad[0]}); resume with the same data or use another --run-id")
PY
fi
# 3. the board's fold 0, reference profile, on that data
"$PY" -m benchmark run --methods "$METHODS" --sequences "$SEQUENCES" --profile reference \
    --folds 0 --data-root "$WORK/v2-individual" --out leaderboard/synthetic-reference-v2/runs \
    --run-id "${RUN_ID:-anatomy-swap}" --resume --no-progress
