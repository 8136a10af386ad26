"""Synthetic cohorts and subjects: who is generated, at which site, and how one is rendered.

Every subject is a pure function of (global seed, cohort, index): its random streams are
spawned from ``SeedSequence((seed, cohort_code, index))``, one stream each for anatomy,
lesion and every sequence. Hence the ``smoke`` subjects are the first ``quick`` subjects,
which are the first ``paper`` subjects, and a subject rendered without its lesion has
exactly the same anatomy, bias field and noise as with it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from benchmark.data.synth import lesions as synth_lesions
from benchmark.data.synth.anatomy import Anatomy, random_warp, reference_anatomy, warp_anatomy
from benchmark.data.synth.lesion_models import lesion_model
from benchmark.data.synth.render import (
    SEQUENCES,
    Acquisition,
    get_site,
    subject_intensities,
    tissue_image,
)

MIN_LESION_VOXELS = 10  # 80 mm^3; smaller lesion loads would be below the 2 mm grid's reach


@dataclass(frozen=True)
class Cohort:
    """One data set folder: Train/ixi or Test/<name>, in the authors' naming."""

    name: str  # folder under Data/Train or Data/Test
    split_prefix: str  # Data/splits/<prefix>_{val,test}.csv
    pathology: str | None  # one of synth_lesions.PATHOLOGIES, None = healthy
    sequences: tuple[str, ...]
    sites: tuple[str, ...]
    site_weights: tuple[float, ...]
    ages: tuple[float, float]
    code: int  # seed component; never reuse a code
    subject_format: str  # name of subject i: {i}, {n} = i + 1, {ixi} = i + 2, {k}, {site}

    def subject(self, index: int, seed: int, version: str = "1",
                anatomy: tuple[str, str] | None = None) -> SubjectSpec:
        rng = np.random.default_rng((seed, self.code, index, 7))
        site = self.sites[int(rng.choice(len(self.sites), p=self.site_weights))]
        age = float(np.round(rng.uniform(*self.ages), 1))
        name = self.subject_format.format(i=index, n=index + 1, site=site,
                                          k=(828 + 37 * index) % 10000, ixi=index + 2)
        return SubjectSpec(name=name, cohort=self, site=site, age=age,
                           entropy=(seed, self.code, index), version=version,
                           anatomy=anatomy)


IXI = Cohort("ixi", "IXI", None, ("t1", "t2"), ("Guys", "HH", "IOP"), (0.55, 0.3, 0.15),
             (20.0, 86.0), 0, "IXI{ixi:03d}-{site}-{k:04d}")
UNHEALTHY = {
    "Brats21": Cohort("Brats21", "Brats21", "tumour", ("t2",), ("BraTS-A", "BraTS-B"),
                      (0.5, 0.5), (30.0, 80.0), 1, "BraTS2021_{i:05d}"),
    "MSLUB": Cohort("MSLUB", "MSLUB", "ms", ("t2",), ("Ljubljana",), (1.0,),
                    (25.0, 60.0), 2, "MSLUB_patient{n:02d}"),
    "ATLAS_v2": Cohort("ATLAS_v2", "ATLAS_v2", "stroke", ("t1",), ("ATLAS-A", "ATLAS-B"),
                       (0.5, 0.5), (40.0, 86.0), 3, "sub-r{n:03d}s001"),
    "WMH": Cohort("WMH", "WMH", "wmh", ("t1",), ("Utrecht", "Singapore", "Amsterdam"),
                  (0.34, 0.33, 0.33), (55.0, 86.0), 4, "WMH_{site}_{n:03d}"),
}


def healthy_variant(cohort: Cohort) -> Cohort:
    """The cohort's scanners and ages without lesions: the out-of-domain healthy set."""
    return dataclasses.replace(
        cohort, name=f"{cohort.name}_healthy", split_prefix=f"{cohort.split_prefix}_healthy",
        pathology=None, code=cohort.code + 10,
        subject_format="healthy_" + cohort.subject_format,
    )


HEALTHY_VARIANTS = {c.name: healthy_variant(c) for c in UNHEALTHY.values()}


@dataclass(frozen=True)
class SubjectSpec:
    name: str
    cohort: Cohort
    site: str
    age: float
    entropy: tuple[int, int, int]
    version: str = "1"  # the generator version (benchmark.data.synth.VERSIONS)
    # (prepared data root, scan name): an individual anatomy (synth.individual); None: the
    # warped MNI template (every generator version)
    anatomy: tuple[str, str] | None = None

    def template(self):
        """The tissue maps this subject's warp samples: None = the MNI template."""
        if self.anatomy is None:
            return None
        from benchmark.data.synth.individual import individual_template

        return individual_template(*self.anatomy)

    @property
    def label(self) -> int:
        return int(self.cohort.pathology is not None)

    @property
    def size_quantile(self) -> float:
        """Where this subject's lesion load sits in its cohort's size distribution (v2):
        the golden-ratio sequence over the subject index, so that any run of consecutive
        subjects (a split) spreads evenly over the distribution."""
        index = self.entropy[2]
        return float((0.5 + index * 0.6180339887498949) % 1.0) * 0.98 + 0.01


@dataclass
class Rendered:
    """images/healthy: sequence -> (H, W, D) int16; mask, seg: (H, W, D) uint8."""

    images: dict
    healthy: dict
    mask: np.ndarray
    seg: np.ndarray
    anatomy: Anatomy


def _streams(spec: SubjectSpec) -> dict[str, np.random.Generator]:
    children = np.random.SeedSequence(spec.entropy).spawn(2 + len(SEQUENCES))
    names = ("anatomy", "lesion", *SEQUENCES)
    return {n: np.random.default_rng(c) for n, c in zip(names, children)}


def _lesion_and_anatomy(spec: SubjectSpec, rng: dict):
    warp = random_warp(rng["anatomy"], spec.age)
    template = spec.template()
    pathology = spec.cohort.pathology
    if pathology is None:
        return None, warp_anatomy(warp, template)
    if pathology not in synth_lesions.PATHOLOGIES:
        raise ValueError(f"unknown pathology {pathology!r}; allowed: {synth_lesions.PATHOLOGIES}")
    model = lesion_model(spec.version)
    size = {"quantile": spec.size_quantile} if model.sized else {}
    if pathology == "tumour":
        centre, radius = model.plan_tumour(rng["lesion"], reference_anatomy(), **size)
        warp = dataclasses.replace(warp, mass_centre=tuple(centre), mass_radius=radius * 1.2,
                                   mass_strength=float(rng["lesion"].uniform(0.25, 0.55)))
        anatomy = warp_anatomy(warp, template)
        make = lambda: model.tumour(rng["lesion"], anatomy, centre, radius)
    else:
        anatomy = warp_anatomy(warp, template)
        make = lambda: model.generators[pathology](rng["lesion"], anatomy, **size)
    for _ in range(20):  # an unhealthy subject must have a visible lesion: redraw tiny ones
        lesion = make()
        if lesion.region(anatomy).sum() >= MIN_LESION_VOXELS:
            return lesion, anatomy
    raise RuntimeError(f"could not place a {pathology} lesion in {spec.name}")


def _acquisitions(spec: SubjectSpec):
    """The subject's lesion (None if healthy), anatomy and, per sequence, its tissue
    intensities, the lesion-free image before acquisition and the acquisition draws."""
    rng = _streams(spec)
    lesion, anatomy = _lesion_and_anatomy(spec, rng)
    site = get_site(spec.site)
    per_seq = {}
    for seq in spec.cohort.sequences:  # each sequence draws from its own stream
        intensities = subject_intensities(rng[seq], site, seq)
        clean = tissue_image(rng[seq], anatomy, intensities, site.blur)
        acq = Acquisition.draw(rng[seq], site, peak=max(intensities.values()))
        per_seq[seq] = (intensities, clean, acq)
    return lesion, anatomy, per_seq


def render_subject(spec: SubjectSpec, draws=None) -> Rendered:
    """Render every sequence of a subject, with and without its lesion.

    The label is computed, not assumed: seg = voxels whose stored integer value differs
    between the lesioned and the healthy rendering (same anatomy, bias and noise draws).
    draws: the subject's :func:`_acquisitions`, if already made.
    """
    lesion, anatomy, per_seq = draws or _acquisitions(spec)
    mask = anatomy.mask
    images, healthy = {}, {}
    seg = np.zeros(mask.shape, dtype=bool)
    for seq, (intensities, clean, acq) in per_seq.items():
        healthy[seq] = acq.apply(clean, mask)
        if lesion is None:
            images[seq] = healthy[seq]
        else:
            images[seq] = acq.apply(lesion.insert(clean, anatomy, intensities), mask)
            seg |= images[seq] != healthy[seq]
    return Rendered(images, healthy, mask.astype(np.uint8), seg.astype(np.uint8), anatomy)


def expected_healthy(spec: SubjectSpec) -> tuple[Rendered, dict]:
    """The subject rendered (:func:`render_subject`) and, per sequence, the noise-free
    mean of its healthy twin (float, on the stored intensity scale): the reconstruction a
    perfect model of healthy anatomy would return for it (render.Acquisition.expected)."""
    draws = _acquisitions(spec)
    _, anatomy, per_seq = draws
    expected = {seq: acq.expected(clean, anatomy.mask)
                for seq, (_, clean, acq) in per_seq.items()}
    return render_subject(spec, draws), expected
