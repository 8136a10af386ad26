"""``python -m benchmark predict``: a trained model on new raw scans, results on their own grids.

Per input scan ``<name>.nii.gz`` the output folder gets:

    <name>_anomaly.nii.gz   the post-processed anomaly map (what the threshold applies to),
                            float32, on the input's grid: its exact shape and affine
    <name>_lesions.nii.gz   the binary lesion mask at the threshold (uint8, same grid)
    <name>_overlay.png      a montage of axial slices: scan, map, lesion outline
    <name>.json             model identity, threshold and its source, preparation steps,
                            prepare's record, timings
    work/<name>/            the prepared scan (prepare's one-subject data root, the model's
                            input on its grid, and the maps on that grid)

The path is the benchmark's own: ``data prepare`` with the training data's settings
(:mod:`.native`), the loader's normalisation, ``method.predict_volume`` through
:func:`benchmark.inference.volume_output`, the part's post-processing, a threshold chosen on
healthy validation data (fpr5 unless told), then the inverse registration.
"""
from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import torch

from ..data.layout import VolumeRecord
from ..data.loader import load_volume
from ..inference import to_volume, volume_output
from ..postprocess import PostProcess
from ..thresholds import SOURCES
from .model import HEALTHY_SOURCES, TrainedModel
from .native import PreparedScan, prepare_scan, read_scan, to_native
from .overlay import write_overlay


@dataclass(frozen=True)
class PredictOptions:
    threshold: str = "fpr5"          # a healthy-data source or a number
    device: str = "cpu"
    fast: bool = False               # coarse registration + short N4 (previews, tests)
    skull_strip: str | None = None   # None: the training data's choice (or --mask)
    seed: int = 3141                 # torch's RNG before each scan (diffusion noise)
    batch_size: int = 50
    check_sequence: bool = True      # prepare's sequence check: a mismatch is an error


def scan_name(path: Path) -> str:
    """``patient07_T1.nii.gz`` -> ``patient07_T1``."""
    name = re.sub(r"\.nii(\.gz)?$", "", Path(path).name, flags=re.IGNORECASE)
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)


def resolve_threshold(model: TrainedModel, text: str) -> dict:
    """{"source", "value", "description"}: a healthy-data source of the model's records, or
    a number given by the user (source "user")."""
    if text in model.thresholds:
        return {"source": text, "value": model.thresholds[text],
                "description": SOURCES[text].describe()}
    try:
        value = float(text)
    except ValueError:
        have = ", ".join(model.thresholds) or "none"
        raise ValueError(f"--threshold {text!r}: expected one of the model's healthy-data "
                         f"thresholds ({have}; possible: {', '.join(HEALTHY_SOURCES)}) or a "
                         "number") from None
    if not np.isfinite(value):
        raise ValueError(f"--threshold {text!r}: not a finite number")
    return {"source": "user", "value": value, "description": "given with --threshold"}


def check_inputs(scans: list[Path], mask: list[Path] | None) -> None:
    """Missing files and ambiguous names, before anything runs."""
    for path in [*scans, *(mask or [])]:
        if not Path(path).is_file():
            raise FileNotFoundError(f"input not found: {path}")
        if not re.search(r"\.nii(\.gz)?$", str(path), re.IGNORECASE):
            raise ValueError(f"{path}: expected a NIfTI file (.nii or .nii.gz)")
    if mask is not None and len(mask) != len(scans):
        raise ValueError(f"--mask given {len(mask)} time(s) for {len(scans)} --input(s): give "
                         "one brain mask per input, in the same order, or none")
    names = [scan_name(s) for s in scans]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"several inputs are named {twice}: their outputs would collide; "
                         "predict them into different --out folders")


def predict_scan(model: TrainedModel, scan: Path, mask: Path | None, out: Path,
                 opts: PredictOptions) -> dict:
    """Prepare, run, threshold and map back one scan; writes its four outputs; returns
    what its JSON holds."""
    start = time.perf_counter()
    name = scan_name(scan)
    threshold = resolve_threshold(model, opts.threshold)
    prepared = prepare_scan(Path(scan), mask, model.preparation, out / "work" / name, name,
                            opts.skull_strip, opts.fast, opts.check_sequence)
    prepared_s = time.perf_counter() - start
    processed, binary = model_maps(model, prepared, threshold["value"], opts)
    post = PostProcess.from_string(model.scoring["postprocess"])
    _save_model_grid(prepared, processed, binary, out / "work" / name)
    native = read_scan(Path(scan), name)
    amap = to_native(processed, prepared, native)
    lesions = to_native(binary.astype(np.float32), prepared, native) >= 0.5
    meta = {"model": model.describe(), "threshold": threshold, "postprocess": str(post)}
    paths = {"anomaly": out / f"{name}_anomaly.nii.gz", "lesions": out / f"{name}_lesions.nii.gz",
             "overlay": out / f"{name}_overlay.png", "json": out / f"{name}.json"}
    reference = nib.load(str(scan))
    save_like(paths["anomaly"], amap.astype(np.float32), reference, "anomaly", meta)
    save_like(paths["lesions"], lesions.astype(np.uint8), reference, "lesions", meta)
    write_overlay(paths["overlay"], np.asarray(reference.dataobj, dtype=np.float32).reshape(
        amap.shape), amap, lesions, reference.affine, threshold["value"],
        f"{name}: {model.describe()} ({model.identity['source']}), threshold "
        f"{threshold['source']} = {threshold['value']:.4g}")
    record = {
        "input": str(scan), "mask": str(mask) if mask is not None else None,
        "outputs": {k: str(v) for k, v in paths.items()},
        "model": {k: v for k, v in model.identity.items() if k != "hparams"},
        "hparams": model.identity.get("hparams"), "threshold": threshold,
        "postprocess": str(post), "seed": opts.seed, "device": opts.device,
        "lesion_voxels": int(lesions.sum()), "lesion_voxels_model_grid": int(binary.sum()),
        "preparation": preparation_record(model, prepared, opts),
        "seconds": {"prepare": round(prepared_s, 2),
                    "total": round(time.perf_counter() - start, 2)},
    }
    paths["json"].write_text(json.dumps(record, indent=2, default=str))
    return record


def model_maps(model: TrainedModel, prepared: PreparedScan, threshold: float,
               opts: PredictOptions) -> tuple[np.ndarray, np.ndarray]:
    """(post-processed map, binary lesion mask), both (H, W, D) on the model's grid: the
    loader's reading and normalisation, the method, the part's post-processing."""
    smoothing = model.preparation.smoothing  # the run's data option, where it has one
    extra = {"smoothing": smoothing} if smoothing != "none" else {}
    record = VolumeRecord(prepared.name, "predict", model.sequence, prepared.image,
                          prepared.mask, None, **extra)
    # uncached: a later scan of the same name in this process must not get this one back
    volume = load_volume.__wrapped__(record)
    device = torch.device(opts.device)
    method = model.method.to(device).eval()
    torch.manual_seed(opts.seed)
    output = volume_output(method, volume.slices().to(device), prepared.name, opts.batch_size)
    post = PostProcess.from_string(model.scoring["postprocess"])
    processed = post.apply(to_volume(output.anomaly_map), volume.mask)
    return processed, post.binarize(processed, threshold)


def _save_model_grid(prepared: PreparedScan, processed: np.ndarray, binary: np.ndarray,
                     work: Path) -> None:
    """The maps on the model's grid, beside the model's input (for checking the prepared
    scan and its map in a viewer)."""
    affine = nib.load(str(prepared.image)).affine
    nib.save(nib.Nifti1Image(processed.astype(np.float32), affine), work / "anomaly_model-grid.nii.gz")
    nib.save(nib.Nifti1Image(binary.astype(np.uint8), affine), work / "lesions_model-grid.nii.gz")


def save_like(path: Path, array: np.ndarray, reference, intent: str, meta: dict) -> None:
    """``array`` (the reference's voxel grid) as a NIfTI with the reference's header and
    affine; the model and threshold in ``descrip`` (short) and a JSON comment extension."""
    header = reference.header.copy()
    header.set_data_dtype(array.dtype)
    image = type(reference)(array, reference.affine, header=header)
    image.header.set_slope_inter(1.0, 0.0)
    thr = meta["threshold"]
    image.header["descrip"] = (f"uad-bench {meta['model']} {thr['source']}="
                               f"{thr['value']:.6g}")[:79].encode()
    image.header["intent_name"] = intent[:15].encode()
    image.header.extensions.clear()
    image.header.extensions.append(nib.nifti1.Nifti1Extension(
        "comment", json.dumps({"uad_bench": meta}, default=str).encode()))
    nib.save(image, str(path))


def preparation_record(model: TrainedModel, prepared: PreparedScan,
                       opts: PredictOptions) -> dict:
    """The steps the scan went through, in words, with prepare's own record."""
    rec, settings = prepared.record, prepared.settings
    template = settings.template or "nilearn MNI152 2009a (default)"
    steps = [
        f"shift intensities so that 'no signal' is 0 (subtracted {rec.get('intensity_zero')})",
        "reorient to LPS and resample to 1 mm (B-spline)",
        f"skull strip: {rec['skull_strip']} (brain mask from {rec.get('mask_from')})",
        f"affine registration to the template {template}",
        "crop to the brain, N4 bias correction: " + str(rec.get("n4")),
        "pad to 192x192x160 mm, downsample to 2 mm, keep the central 50 axial slices (96x96x50)",
    ]
    if model.preparation.grid is not None:
        steps.append("resample onto the training data's fixed grid "
                     f"{list(model.preparation.grid.shape)} (B-spline; mask nearest)")
    if model.preparation.smoothing != "none":
        steps.append(f"loader: {model.preparation.smoothing} smoothing on reading (the run's "
                     "data option)")
    steps += [("loader: intensities rescaled to [0, 1] between the 1st and 99th percentile "
               "inside the brain mask (as in training)"),
              (f"{model.identity['method']}: anomaly map per axial slice; post-processing "
               f"{model.scoring['postprocess']}"),
              ("back to the input's grid through the inverse registration (linear; lesion "
               "mask: linear then >= 0.5)")]
    notes = list(model.preparation.notes)
    if prepared.skull_strip_note:
        notes.append(prepared.skull_strip_note)
    if opts.fast:
        notes.append("--fast: coarse registration and short N4 (previews, not for results)")
    keep = ("skull_strip", "mask_from", "n4", "intensity_zero", "warnings", "brain_bbox_1mm",
            "brain_fits", "seconds", "cpu_seconds", "settings", "tools", "transforms", "files")
    return {"kind": model.preparation.kind, "steps": steps, "notes": notes,
            "training_skull_strip": model.preparation.training_skull_strip,
            "prepare_record": {k: rec[k] for k in keep if k in rec},
            "model_input": {"image": str(prepared.image), "mask": str(prepared.mask)}}
