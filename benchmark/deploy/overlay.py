"""A PNG montage of a prediction: axial slices of the scan, the anomaly map over it (its
upper half: scores above the brain's median) and the outline of the binary lesion mask, on
the scan's own grid (shown in RAS orientation: patient's right on the right, anterior up)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from nibabel.orientations import apply_orientation, axcodes2ornt, io_orientation, ornt_transform


def _ras(array: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """A voxel array (X, Y, Z) re-ordered/flipped to the closest RAS axes (no resampling)."""
    ornt = ornt_transform(io_orientation(affine), axcodes2ornt("RAS"))
    return apply_orientation(array, ornt)


def _ras_zooms(affine: np.ndarray) -> np.ndarray:
    ornt = io_orientation(affine)
    zooms = np.sqrt((np.asarray(affine)[:3, :3] ** 2).sum(axis=0))
    out = np.empty(3)
    out[ornt[:, 0].astype(int)] = zooms
    return out


def slice_indices(region: np.ndarray, n: int) -> list[int]:
    """``n`` axial slices spread over the slices where ``region`` (X, Y, Z) is non-zero."""
    zs = np.flatnonzero(region.any(axis=(0, 1)))
    if zs.size == 0:
        zs = np.arange(region.shape[2])
    lo, hi = zs.min(), zs.max()
    return sorted({round(z) for z in np.linspace(lo + 0.1 * (hi - lo), hi - 0.1 * (hi - lo), n)})


def write_overlay(path: Path, scan: np.ndarray, anomaly: np.ndarray, lesions: np.ndarray,
                  affine: np.ndarray, threshold: float, title: str, n_slices: int = 8) -> Path:
    """scan, anomaly, lesions: (X, Y, Z) on the scan's grid with ``affine`` -> PNG at ``path``:
    per slice the scan alone, then the map over it with the lesion mask's outline."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scan, anomaly, lesions = (_ras(a, affine) for a in (scan, anomaly, lesions > 0))
    dx, dy, _ = _ras_zooms(affine)
    region = anomaly > 0
    zs = slice_indices(region, n_slices)
    brain = scan[region] if region.any() else scan[scan != 0]
    lo, hi = np.percentile(brain, [1, 99]) if brain.size else (0.0, 1.0)
    values = anomaly[region]
    top = max(float(np.percentile(values, 99.5)) if values.size else 1.0, 1.2 * threshold, 1e-6)
    # the upper half of the brain's scores in colour: the scan stays visible under the rest
    low = min(float(np.median(values)) if values.size else 0.0, 0.9 * threshold)
    pairs = 2  # slices per row, two panels each
    rows = int(np.ceil(len(zs) / pairs))
    fig, axes = plt.subplots(rows, 2 * pairs, figsize=(3.0 * 2 * pairs, 3.2 * rows),
                             squeeze=False)
    shown = None
    for i, z in enumerate(zs):
        plain, over = axes[i // pairs, 2 * (i % pairs)], axes[i // pairs, 2 * (i % pairs) + 1]
        for ax in (plain, over):
            ax.imshow(scan[:, :, z].T, cmap="gray", origin="lower", vmin=lo, vmax=hi,
                      aspect=dy / dx, interpolation="nearest")
        heat = np.ma.masked_where(anomaly[:, :, z] <= max(low, 0.0), anomaly[:, :, z])
        shown = over.imshow(heat.T, cmap="inferno", origin="lower", vmin=low, vmax=top,
                            alpha=0.6, aspect=dy / dx, interpolation="nearest")
        if lesions[:, :, z].any():
            over.contour(lesions[:, :, z].T.astype(float), levels=[0.5], colors="cyan",
                         linewidths=0.8)
        plain.set_title(f"axial slice {z}", fontsize=8)
        over.set_title("map (upper half), lesion mask", fontsize=8)
    for ax in axes.ravel():
        ax.set_axis_off()
    if shown is not None:
        bar = fig.colorbar(shown, ax=axes.ravel().tolist(), shrink=0.6, pad=0.02)
        bar.ax.axhline(threshold, color="cyan", linewidth=1.5)
        bar.set_label("anomaly score (cyan line: threshold)")
    fig.suptitle(title + "\ncyan outline: lesion mask; patient's right on the right, anterior up",
                 fontsize=9)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
