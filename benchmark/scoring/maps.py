"""A part's cached anomaly maps (written by benchmark.inference), read for scoring.

The maps of a (dataset, split) are read once, post-processed once and kept until the
data set is dropped. Test maps of a contrast-shifted input (domain shift) are read from
the part's ``contrast<cl>/maps/``; validation maps (thresholds) always from the part's own.
A missing or unreadable maps file of a split that has volumes is an error naming the file:
scoring never drops rows silently.
"""
from __future__ import annotations

import numpy as np

from ..data.layout import VolumeRecord
from ..data.loader import load_volume
from ..postprocess import erode_brain_mask
from . import ScoringOptions, Sets


class MapsError(ValueError):
    """A cached maps file that is missing, unreadable or lacks volumes; names the file."""


class PartMaps:
    """Processed maps of one part, loaded lazily per (dataset, split) and kept until dropped.

    part: a benchmark.rundir.Part; contrast: the test inputs were x ** contrast.
    """

    def __init__(self, sets: Sets, opts: ScoringOptions, part, contrast: float = 1.0):
        self.sets, self.opts, self.part, self.contrast = sets, opts, part, contrast
        self._cache: dict[tuple[str, str], tuple] = {}

    def records(self, dataset: str, split: str) -> list[VolumeRecord]:
        return list(self.sets.get(dataset, {}).get(split) or [])

    def raw(self, dataset: str, split: str,
            keys=("anomaly", "reconstruction")) -> dict[str, np.ndarray] | None:
        """The cached arrays ``keys`` (those present), (V, H, W, D) in ``records`` order;
        None for a split without volumes."""
        recs = self.records(dataset, split)
        if not recs:
            return None
        path = self.part.maps_path(dataset, split, self.contrast if split == "test" else 1.0)
        if not path.is_file():
            raise MapsError(f"cached maps missing: {path} ({len(recs)} {dataset}/{split} "
                            "volumes have no maps)")
        try:
            with np.load(path, allow_pickle=False) as f:  # only the arrays asked for
                names = [str(n) for n in f["names"]]
                index = {n: i for i, n in enumerate(names)}
                missing = [r.name for r in recs if r.name not in index]
                if missing:
                    raise MapsError(f"{path} lacks maps for {len(missing)} volume(s), e.g. "
                                    f"{missing[:3]}")
                order = [index[r.name] for r in recs]
                identity = order == list(range(len(names)))
                return {k: (f[k] if identity else f[k][order]) for k in keys if k in f.files}
        except MapsError:
            raise
        except Exception as err:  # noqa: BLE001 - truncated, a flipped byte: BadZipFile (CRC),
            # zlib.error (inflate), ValueError or tokenize.TokenError (array header), ...
            raise MapsError(f"cannot read cached maps {path}: {type(err).__name__}: {err}") \
                from None

    def get(self, dataset: str, split: str):
        """(processed maps, labels or None, brain masks): lists, one (H, W, D) per volume."""
        key = (dataset, split)
        if key not in self._cache:
            raw = self.raw(dataset, split, keys=("anomaly",))
            if raw is None:
                return None
            vols = [load_volume(r) for r in self.records(dataset, split)]
            pp, backend = self.opts.postprocess, self.opts.median_backend
            for v in vols:  # loading checks the default erosion; these settings may differ
                if pp.brain_mask and not erode_brain_mask(v.mask, pp.erode_iterations,
                                                          pp.erode_mode).any():
                    raise MapsError(f"{v.record.mask}: the brain mask of {v.name} is empty "
                                    f"after the post-processing's erosion ({pp})")
            maps = [pp.apply(a.astype(np.float32), v.mask, backend)
                    for a, v in zip(raw.pop("anomaly"), vols)]
            labels = None if vols[0].seg is None else [v.seg for v in vols]
            self._cache[key] = (maps, labels, [v.mask for v in vols])
        return self._cache[key]

    def drop(self, dataset: str) -> None:
        for key in [k for k in self._cache if k[0] == dataset]:
            del self._cache[key]
