"""``python -m benchmark evaluate BUNDLE``: a bundle's model on a data root's test sets.

The bundle's part is rebuilt as a run directory of one part (``<out>/<run-id>/<method>/
<seq>/fold<k>/``): the same inference (:func:`benchmark.inference.infer`) and scoring
(:func:`benchmark.scoring.write_part_results`) as ``run``, thresholds from that data root's
healthy validation split of the bundle's fold, a weights-only checkpoint, done.json. So
``leaderboard`` and ``evaluate RUN`` read it like any run. Without ``--data-root`` a bundle
trained on the synthetic default is evaluated on the synthetic data of its size.
"""
from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import torch

from ..checkpoint import save
from ..environment import hardware
from ..inference import infer
from ..profiles import get_profile
from ..rundir import RunDir, new_run_id
from ..scoring import ScoringOptions, write_part_results
from ..tags import tag_columns
from .bundle import load_bundle
from .recipe import data_root_kind

log = logging.getLogger(__name__)


def _data_root(training: dict, data_root: Path | None) -> tuple[Path, str]:
    source = str(training.get("data_source", "user"))
    if data_root is not None:
        if not Path(data_root).exists():
            raise FileNotFoundError(f"--data-root {data_root} does not exist")
        return Path(data_root), "user"
    if source.startswith("synthetic-"):
        from ..data.synth import ensure_synthetic

        return ensure_synthetic(size=source.split("-", 1)[1], progress=False), source
    raise ValueError("evaluating a bundle trained on user data needs --data-root (the data "
                     "root to score it on, prepared as its training data)")


def evaluate_bundle(bundle: Path, data_root: Path | None, out: Path, run_id: str | None,
                    profile: str, opts: ScoringOptions) -> RunDir:
    """Infer and score the bundle's model on ``data_root``; returns the new run."""
    from ..data.options import DataOptions
    from ..runconfig import RunConfig

    model = load_bundle(bundle)
    ident, training = model.identity, model.training_data
    root, source = _data_root(training, data_root)
    kind, _ = data_root_kind(root)
    if kind != model.preparation.kind:
        log.warning("%s was prepared as %s, the bundle's training data as %s: its scores may "
                    "reflect the difference in preparation (orientation, grid, template)",
                    root, kind or "unknown (no manifest saying how)", model.preparation.kind)
    prof = get_profile(profile)
    run = RunDir(Path(out) / (run_id or new_run_id(f"eval-{ident['method']}")))
    if run.exists():
        raise FileExistsError(f"{run.path} already holds a run; choose another --run-id")
    # the loader's smoothing (a data option) as in training
    options = DataOptions(smoothing=model.preparation.smoothing)
    cfg = RunConfig(methods=[ident["method"]], profile=prof, data_root=root, run_dir=run.path,
                    sequences=[model.sequence], folds=[int(ident["fold"])], data_source=source,
                    fold_scheme=training.get("fold_scheme", "disjoint"), data_options=options,
                    bundle={"path": str(bundle), **ident})
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    with run.launch_lock():
        run.write_records(cfg)
        part = run.part(ident["method"], model.sequence, int(ident["fold"]))
        with part.claim():
            sets = run.evaluation_sets(part)
            timing = infer(model.method, sets, part, device, prof.eval_batch_size)
            tags = dict(ident.get("tags") or {})
            ids = part.ids(profile=prof.name, data_source=source, **tag_columns(tags))
            write_part_results(part, sets, ids, opts)
            checkpoint = save(model.method, part.best_checkpoint())
            part.write_hparams(dict(ident.get("hparams") or {}))
            row = {**part.ids(), "device": device.type, "hardware": hardware(),
                   "n_params": model.method.n_params(), **timing}
            part.write_table("timings.csv", pd.DataFrame([{**row, **tag_columns(tags)}]))
            part.mark_done(checkpoint, tags, **row, bundle=str(bundle))
        run.collect()
    return run


def main(args, opts: ScoringOptions) -> int:
    """The ``evaluate`` command for a bundle (benchmark.scoring.rescore hands it over)."""
    from ..runner import summary_table

    run = evaluate_bundle(Path(args.run_dir), args.data_root, args.out, args.run_id,
                          args.profile, opts)
    table = summary_table(run.path)
    if not table.empty:
        print(table.to_string())
    print(f"\nevaluated bundle {args.run_dir} -> {run.path} (per_volume.csv, per_dataset.csv)")
    return 0
