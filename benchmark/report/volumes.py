"""The report's volume browser: a few test volumes of runs whose cached maps are present.

For each chosen test volume: the input and ground truth (from the run's data root,
through the one loader), and per leaderboard entry the reconstruction, the raw anomaly
map and the binarised map at each threshold source, exactly as the protocol made it:
the run's post-processing (per_volume.csv `postprocess`) applied to the cached map, then
`>= threshold` of that source (per_volume.csv `threshold`) and the component filter.
Slices are small PNGs in data URIs: grey input/reconstruction on the [0, 1] scale, the
anomaly map in inferno scaled per entry and volume, the binarised map coloured
green = lesion found, red = false positive, blue = lesion missed. No model is run.
"""
from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..data.layout import HEALTHY_COHORT
from ..rundir import RunDir

# binarised map colours: background, true positive, false positive, false negative
BINARY_PALETTE = [(0, 0, 0), (40, 200, 80), (230, 50, 50), (60, 110, 255)]


@dataclass(frozen=True)
class BrowserOptions:
    """volumes: per data set, picked across the range of lesion sizes; fold: whose maps;
    slice_step: every k-th axial slice inside the brain."""

    volumes: int = 1
    fold: int = 0
    slice_step: int = 2

    def __post_init__(self):
        if self.volumes < 0 or self.slice_step < 1:
            raise ValueError(f"browser volumes must be >= 0 and slice step >= 1, got "
                             f"{self.volumes}, {self.slice_step}")


def png_uri(img: np.ndarray, palette: list[tuple[int, int, int]] | None = None) -> str:
    """(H, W) uint8 (grey, or palette indices) or (H, W, 3) uint8 -> data:image/png URI."""
    from PIL import Image

    im = Image.fromarray(np.ascontiguousarray(img))
    if palette is not None:
        im = im.convert("P")
        im.putpalette([c for rgb in palette for c in rgb])
    buf = io.BytesIO()
    im.save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _view(slice_2d: np.ndarray) -> np.ndarray:
    """(H, W) array slice -> image rows/columns as the qualitative grids show it."""
    return np.flipud(np.asarray(slice_2d).T)


def _grey(x: np.ndarray) -> np.ndarray:
    return (np.clip(x, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)


def inferno_palette() -> list[tuple[int, int, int]]:
    """matplotlib's inferno as a 256-colour PNG palette (a third of the bytes of RGB)."""
    from matplotlib import colormaps

    rgb = (colormaps["inferno"](np.linspace(0, 1, 256))[:, :3] * 255 + 0.5).astype(int)
    return [tuple(int(c) for c in x) for x in rgb]


def _levels(a: np.ndarray, vmax: float) -> np.ndarray:
    """Anomaly scores -> palette indices 0..255 on [0, vmax]."""
    scaled = np.clip(a / vmax, 0.0, 1.0) if vmax > 0 else np.zeros_like(a)
    return (scaled * 255 + 0.5).astype(np.uint8)


def _binary_codes(pred: np.ndarray, seg: np.ndarray) -> np.ndarray:
    return np.select([pred & seg, pred & ~seg, ~pred & seg], [1, 2, 3], 0).astype(np.uint8)


def find_parts(run_dirs: list[Path], fold: int) -> pd.DataFrame:
    """Cached test maps: one row per (run, method, sequence, dataset) of the fold."""
    rows = []
    for run in run_dirs:
        for part in RunDir(run).find_parts(fold=fold):
            for dataset in part.cached_datasets("test"):
                rows.append({"run": Path(run), "method": part.method, "sequence": part.sequence,
                             "dataset": dataset, "path": part.maps_path(dataset, "test")})
    return pd.DataFrame(rows, columns=["run", "method", "sequence", "dataset", "path"])


def pick_volumes(lesion_voxels: pd.Series, n: int) -> list[str]:
    """n volume names spread over the range of lesion sizes (n = 1: the median one).
    lesion_voxels: indexed by volume name."""
    ordered = lesion_voxels.sort_values(kind="stable")
    if n <= 0 or ordered.empty:
        return []
    at = sorted({int((i + 0.5) / n * len(ordered)) for i in range(n)})
    return [str(ordered.index[min(i, len(ordered) - 1)]) for i in at]


def browser_volumes(run_dirs: list[Path], options: BrowserOptions | None = None
                    ) -> tuple[list[dict], list[str]]:
    """The browser's data (one dict per volume, JSON-ready) and notes on what is not shown."""
    from ..leaderboard.load import load_run

    options = options or BrowserOptions()
    notes, volumes = [], []
    parts = find_parts(run_dirs, options.fold)
    if options.volumes == 0:
        return [], ["volume browser switched off (--browser-volumes 0)"]
    if parts.empty:
        where = ", ".join(str(r) for r in run_dirs) or "no run directory given or found"
        return [], [(f"no cached maps (<run>/<method>/<seq>/fold{options.fold}/maps/*_test.npz)"
                    f" in: {where}")]
    tables, configs = {}, {}
    for run in parts["run"].unique():
        config = RunDir(run).run_config() if RunDir(run).exists() else None
        root = str(config.data_root) if config is not None else None
        if not root or not Path(root).exists():
            notes.append(f"{run}: data root {root!r} (config.json) is not on this machine; "
                         "its maps are not shown")
            continue
        configs[run] = config
        tables[run] = load_run(run).table("per_volume.csv")
    parts = parts[parts["run"].isin(list(configs))]
    for dataset, group in parts.groupby("dataset", sort=True):
        pv = pd.concat([tables[r] for r in group["run"].unique()], ignore_index=True)
        pv = pv[(pv["dataset"] == dataset) & (pv["fold"] == options.fold)]
        if pv.empty:  # the healthy test set has maps but no labels: nothing to browse
            if dataset != HEALTHY_COHORT:
                notes.append(f"{dataset}: cached maps but no per_volume.csv rows; not shown")
            continue
        sizes = pv.drop_duplicates("volume").set_index("volume")["lesion_voxels"]
        for name in pick_volumes(sizes, options.volumes):
            volumes.append(_volume(dataset, name, group, pv, configs, options))
    return volumes, notes


def _record(config, dataset: str, volume: str, sequence: str, fold: int):
    """The test record of ``volume`` as the run (a RunConfig) read it: the slices and
    smoothing its maps were made with."""
    from ..data.layout import unhealthy_split
    from ..data.module import BenchmarkDataModule

    for rec in unhealthy_split(config.data_root, dataset, "test"):
        if rec.name == volume:
            return BenchmarkDataModule.as_configured(config.data_config(sequence, fold),
                                                     [rec])[0]
    raise ValueError(f"volume {volume!r} is not in {dataset}/test of {config.data_root}")


def _volume(dataset: str, name: str, parts: pd.DataFrame, pv: pd.DataFrame,
            configs: dict, options: BrowserOptions) -> dict:
    from ..data.loader import load_volume
    from ..leaderboard.qualitative import lesion_slice

    first = parts.iloc[0]
    vol = load_volume(_record(configs[first["run"]], dataset, name, str(first["sequence"]),
                              options.fold))
    inside = np.flatnonzero(vol.mask.reshape(-1, vol.mask.shape[-1]).any(0))
    zs = list(range(int(inside.min()), int(inside.max()) + 1, options.slice_step)) \
        if inside.size else list(range(0, vol.mask.shape[-1], options.slice_step))
    z_lesion = lesion_slice(vol.seg)
    start = int(np.argmin([abs(z - z_lesion) for z in zs]))
    out = {"dataset": dataset, "volume": name, "sequence": str(first["sequence"]),
           "fold": options.fold, "runs": sorted({str(r) for r in parts["run"]}),
           "slices": zs, "start": start, "lesion_voxels": int(vol.seg.sum()),
           "input": [png_uri(_view(_grey(vol.image[..., z]))) for z in zs],
           "truth": [png_uri(_view(vol.seg[..., z].astype(np.uint8)),
                             BINARY_PALETTE[:1] + [(255, 255, 255)]) for z in zs],
           "entries": []}
    for part in parts.itertuples(index=False):
        rows = pv[(pv["method"] == part.method) & (pv["volume"] == name)
                  & (pv["sequence"].astype(str) == part.sequence)
                  & (pv["run_dir"] == str(part.run))]
        if rows.empty:
            continue
        out["entries"].append(_entry(part.path, name, rows, vol, zs))
    out["entries"].sort(key=lambda e: e["entry"])
    return out


def _entry(path: Path, name: str, rows: pd.DataFrame, vol, zs: list[int]) -> dict:
    from ..postprocess import PostProcess

    with np.load(path, allow_pickle=False) as maps:
        i = [str(n) for n in maps["names"]].index(name)
        anomaly = maps["anomaly"][i].astype(np.float32)
        recon = maps["reconstruction"][i] if "reconstruction" in maps.files else None
    pp = PostProcess.from_string(str(rows["postprocess"].iloc[0])) \
        if "postprocess" in rows.columns else PostProcess()
    processed = pp.apply(anomaly, vol.mask)
    inside = anomaly[vol.mask] if vol.mask.any() else anomaly.ravel()
    vmax = float(np.percentile(inside, 99.9)) if inside.size else 0.0
    thresholds = {str(s): float(t) for s, t in zip(rows["threshold_source"], rows["threshold"])
                  if s != "none" and np.isfinite(t)}
    binary = {}
    for source, thr in thresholds.items():
        codes = _binary_codes(pp.binarize(processed, thr), vol.seg)
        binary[source] = [png_uri(_view(codes[..., z]), BINARY_PALETTE) for z in zs]
    return {"entry": str(rows["entry"].iloc[0]), "thresholds": thresholds,
            "postprocess": str(pp),
            "recon": None if recon is None else
            [png_uri(_view(_grey(recon[..., z].astype(np.float32)))) for z in zs],
            "anomaly": [png_uri(_view(_levels(anomaly[..., z], vmax)), inferno_palette())
                        for z in zs],
            "binary": binary}
