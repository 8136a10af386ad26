"""The model card of a bundle (its README.md), generated from bundle.json alone: what the
model was trained on, its numbers from the part's records, its thresholds, its limits."""
from __future__ import annotations

import json
from typing import Any

import pandas as pd

CPU_PROFILES = ("quick", "reference", "smoke")


def _pct(value: Any) -> str:
    return "n/a" if value is None or pd.isna(value) else f"{100 * float(value):.2f}"


def results_table(results: list[dict]) -> str:
    """One row per labelled test set: pooled AUPRC beside its chance level, AUROC, Dice."""
    frame = pd.DataFrame(results)
    if frame.empty:
        return "(the part recorded no results)"
    rows = [("| test set | volumes | AUPRC % | chance % | AUROC % | Dice [fpr5] % | "
            "Dice [oracle] % (upper bound) |"), "|---|---:|---:|---:|---:|---:|---:|"]
    for dataset, group in frame.groupby("dataset", sort=True):
        def get(metric, source="none", group=group):
            hit = group[(group["metric"] == metric) & (group["threshold_source"] == source)]
            return hit["value"].iloc[0] if len(hit) else None

        if get("auprc_pooled") is None:
            continue
        n = int(group["n_volumes"].max())
        rows.append(f"| {dataset} | {n} | {_pct(get('auprc_pooled'))} | "
                    f"{_pct(get('prevalence'))} | {_pct(get('auroc_pooled'))} | "
                    f"{_pct(get('dice_pooled', 'fpr5'))} | {_pct(get('dice_pooled', 'oracle'))} |")
    healthy = frame[frame["metric"].isin(["healthy_fpr", "ssim_mean"])]
    if not healthy.empty:
        rows.append("")
        for r in healthy.itertuples():
            what = ("share of healthy test brain voxels flagged at " + r.threshold_source
                    if r.metric == "healthy_fpr" else "SSIM of the reconstructions")
            rows.append(f"- {r.dataset} ({r.n_volumes} healthy test volumes): {what}: "
                        f"{_pct(r.value) + ' %' if r.metric == 'healthy_fpr' else f'{r.value:.3f}'}")
    return "\n".join(rows)


def limits(doc: dict) -> list[str]:
    """What the model cannot do, from what bundle.json says about it."""
    data, part, tags = doc["training_data"], doc["part"], doc["method"]["tags"]
    seq = data["sequence"].upper()
    out = []
    if str(data.get("data_source", "")).startswith("synthetic"):
        out.append("Trained and tested on the synthetic default only (docs/synthetic.md): its "
                   "numbers say nothing about real scans. On a real scan expect a domain shift: "
                   "its healthy brain may score higher than the synthetic validation brains, so "
                   "a threshold flags more than its nominal share.")
    else:
        out.append(f"Trained on {data['n_train']} healthy subjects of one data root: scanners, "
                   "protocols and ages outside it are not covered.")
    if part.get("profile") in CPU_PROFILES:
        out.append(f"Trained in the `{part['profile']}` profile (CPU-sized network and "
                   "training), not with the paper's settings.")
    out += [
        (f"One model: fold {data['fold']} of its run. How much a retrained model differs is "
         "not known from this bundle."),
        f"{seq} scans only; a scan of another sequence gives a meaningless map.",
        ("The map covers the central 100 mm of the brain axially (the benchmark's crop): "
         "lesions above or below are not seen."),
        ("Thresholds come from the training data's healthy validation scans: on other "
         "scanners the share of healthy brain they flag can differ from their nominal rate."),
    ]
    if tags:
        out.append(f"Result tags {json.dumps(tags)}: see the method's README for what they "
                   "change (e.g. `pretrained=False`: a random backbone).")
    out.append("Research software, not a medical device: not for diagnosis.")
    return out


def model_card(doc: dict) -> str:
    """README.md of a bundle (Markdown)."""
    m, part, data, prep = doc["method"], doc["part"], doc["training_data"], doc["preparation"]
    timings, exported = doc.get("timings", {}), doc["exported"]
    seq = data["sequence"].upper()
    manifest = data.get("manifest") or {}
    lines = [
        f"# {m['name']} for {seq} brain MRI: a UAD-Bench model ({part['part']})", "",
        (f"{m['name']} ({m['family']}; {m['paper']}), {m['n_params']:,} parameters, trained by "
         f"UAD-Bench in the `{part.get('profile')}` profile (run `{part.get('run_id')}`, commit "
         f"`{part.get('git_commit')}`); exported {exported['at']} by uad-bench "
         f"{exported['uad_bench']}."), "",
        "## Trained on", "",
        (f"- healthy {data['cohort']} {seq} scans only: {data['n_train']} training and "
         f"{data['n_val']} validation subjects of fold {data['fold']} ({data['fold_scheme']} "
         f"folds), data source `{data['data_source']}`"),
        (f"- data root manifest: `{manifest.get('file')}` sha256 `{manifest.get('sha256')}`; "
         f"training subjects (sorted list) sha256 `{data['train_subjects_sha256']}`"),
        (f"- training: {timings.get('epochs', '?')} epochs, {timings.get('train_seconds', 0):.0f} s"
         f" on {timings.get('hardware', '?')}; checkpoint chosen by "
         f"{timings.get('checkpoint_selected_by', 'val_loss')}"), "",
        "## Its numbers (the part's own records)", "",
        results_table(doc.get("results") or []), "",
        ("Pooled over each test set's voxels inside the brain; chance = lesion prevalence (the "
         "AUPRC of a random map). [oracle] picks the threshold on the test set itself: an "
         "upper bound, not a result."), "",
        "## Thresholds (healthy validation scans, no labels)", "",
        (f"Chosen on {data.get('n_threshold_volumes', '?')} healthy validation volumes of the "
         "training data's fold."), "",
        "| source | value | meaning |", "|---|---:|---|",
        *[f"| {s} | {t['value']:.6g} | {t['description']} |" for s, t in doc["thresholds"].items()],
        "", f"They apply to the map after post-processing `{doc['scoring']['postprocess']}`.", "",
        "## Use", "",
        "```bash",
        "python -m benchmark predict --model THIS_FOLDER --input scan.nii.gz --out out/",
        "python -m benchmark evaluate THIS_FOLDER --data-root ROOT   # its test sets on ROOT",
        "```", "",
        f"Inputs are prepared as its training data was (`{prep['kind']}`: `data prepare`"
        + (", then the synthetic grid" if prep.get("grid") else "") + "); "
        + " ".join(prep.get("notes") or []), "",
        "## Limits", "", *[f"- {x}" for x in limits(doc)], "",
        "## Hyperparameters", "", "```json", json.dumps(m["hparams"], indent=2), "```", "",
    ]
    return "\n".join(lines)
