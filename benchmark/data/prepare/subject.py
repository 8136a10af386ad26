"""One subject through every preparation step; returns a record of what happened.

The record (also written as ``Data/.prepare/<cohort>/<sid>.json``, which makes runs
resumable) holds the output paths, their sha256, seconds per step, the skull-stripping
method used, lesion voxel counts before and after downsampling, the settings (so a new
scan can be prepared the same way: ``benchmark predict``) and, per sequence, the file of
the registration transform (``<sid>_<seq>.tfm`` beside the record, ITK text format). A
transform maps template points to the subject's raw scanner points (ITK's convention:
fixed -> moving, LPS millimetres), so results on the prepared grid can be resampled back
onto the subject's own scan with its inverse.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import SimpleITK as sitk

from benchmark.data.prepare import skull, steps
from benchmark.data.prepare.cohorts import Cohort, SubjectFiles, lesion_from_label
from benchmark.data.prepare.intensity import shift_to_zero
from benchmark.data.prepare.modality import modality_warning, tissue_contrast
from benchmark.data.prepare.output import relative_paths, write_nifti
from benchmark.data.prepare.steps import PrepareError, RegistrationSettings

RECORDS = ".prepare"
REGISTRATION_MARGIN_MM = 20.0  # > steps.TEMPLATE_MARGIN
TEMPLATE_WARNING = ("skull strip 'template' is a crude FALLBACK (template brain mask after "
                    "registration; may keep a rim of scalp): install deepbet "
                    "(pip install -e .[prepare]) or HD-BET, or pass --mask-dir")


@dataclass(frozen=True)
class PrepareSettings:
    """Everything that changes the output bytes (its fingerprint guards resumed runs)."""

    sequences: tuple[str, ...]
    skull_strip: str = "auto"
    template: str | None = None
    registration: RegistrationSettings = field(default_factory=RegistrationSettings)
    n4_shrink: int = 4
    n4_iterations: tuple[int, ...] = (50, 50, 50)
    n4_control_points: int = 5
    n4: bool = True  # False: the input is already bias-corrected (recorded)
    seed: int = 3141

    @classmethod
    def fast(cls, sequences: tuple[str, ...], **kw) -> PrepareSettings:
        """Coarse registration and short N4: previews and tests only."""
        return cls(sequences, registration=RegistrationSettings.fast(), n4_iterations=(20, 10),
                   n4_control_points=4, **kw)

    def to_record(self) -> dict:
        """Plain values (JSON), as written into every subject record."""
        return asdict(self)

    @classmethod
    def from_record(cls, record: dict) -> PrepareSettings:
        """Inverse of :meth:`to_record` (JSON lists back to tuples)."""
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in record.items()}
        reg = {k: tuple(v) if isinstance(v, list) else v
               for k, v in dict(values.pop("registration", {})).items()}
        return cls(registration=RegistrationSettings(**reg), **values)

    def fingerprint(self) -> str:
        """Settings + installed skull strippers (installing one changes what ``auto`` does)."""
        state = {**asdict(self), "tools": skull.available_tools()}
        return hashlib.sha256(json.dumps(state, sort_keys=True).encode()).hexdigest()[:16]


_TEMPLATES: dict[str, steps.Template] = {}


def template_for(path: str | None) -> steps.Template:
    """Load each template once per process."""
    key = path or ""
    if key not in _TEMPLATES:
        _TEMPLATES[key] = steps.load_template(path)
    return _TEMPLATES[key]


def record_path(data: Path, cohort: Cohort, sid: str) -> Path:
    """Keyed by set name (unique per data root: it names the split CSVs), so two cohorts of
    one's own (``--name``) with the same subject ids do not share records."""
    return data / RECORDS / cohort.set_name / f"{sid}.json"


def is_done(data: Path, cohort: Cohort, sid: str, settings: PrepareSettings,
            user_mask: bool = False) -> dict | None:
    """The saved record when this subject was prepared with the same settings, else None.
    ``user_mask``: a supplied mask exists now; ``auto`` must then have used it (records of
    versions that let a skull-stripping tool win over it are redone)."""
    path = record_path(data, cohort, sid)
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
        files_ok = all((data / rel.lstrip("/")).is_file() for rel in record["files"].values())
    except (ValueError, KeyError, TypeError, AttributeError):  # a damaged record: redo
        return None
    if user_mask and settings.skull_strip == "auto" and record.get("skull_strip") != "mask":
        return None
    return record if files_ok and record.get("fingerprint") == settings.fingerprint() else None


def _read_inputs(sub: SubjectFiles, cohort: Cohort, settings: PrepareSettings):
    missing = [s for s in settings.sequences if s not in sub.images]
    if missing:
        found = ", ".join(sorted(sub.images)) or "none"
        raise PrepareError(sub.sid, f"missing sequence {'/'.join(missing)} (found: {found})")
    if not cohort.healthy and cohort.label_patterns and sub.seg is None:
        raise PrepareError(sub.sid, "missing lesion label file")
    images = {s: steps.read_image(sub.images[s], sub.sid, s) for s in settings.sequences}
    ref = images[settings.sequences[0]]  # the raw grid: labels and masks are checked on it
    seg = None
    if sub.seg is not None:
        raw = steps.read_image(sub.seg, sub.sid, "lesion label")
        steps.check_same_grid(ref, raw, sub.sid, f"lesion label {sub.seg.name}")
        seg = sitk.GetImageFromArray(lesion_from_label(sitk.GetArrayFromImage(raw), cohort))
        seg.CopyInformation(raw)
    mask = skull.user_mask(sub.mask, sub.sid, ref) if sub.mask is not None else None
    return images, seg, mask


def _shift_images(images: dict[str, sitk.Image]) -> tuple[dict[str, sitk.Image], dict]:
    """Each image shifted so that "no signal" is 0 (see intensity.py); the values subtracted."""
    shifted, zeros = {}, {}
    for seq, image in images.items():
        shifted[seq], zeros[seq] = shift_to_zero(image)
    return shifted, zeros


def _native_mask(method: str, images: dict[str, sitk.Image], ref_seq: str,
                 user: sitk.Image | None, t1: sitk.Image | None, settings, sid: str):
    """Brain mask on the reference sequence's 1 mm grid (None: decided in template space)."""
    image = images[ref_seq]
    if method == "hdbet":
        return skull.hdbet_mask(image, sid)
    if method == "deepbet":
        if ref_seq == "t1":
            return skull.deepbet_mask(image, sid)
        # the T1's mask, carried to the reference sequence by their rigid registration
        rigid = steps.register_affine(t1, image, settings.registration, kind="rigid")
        t1_mask = skull.deepbet_mask(t1, sid)
        return steps.apply_transform(t1_mask, image, rigid, is_label=True)
    if method == "mask":
        return user  # None for a cohort-wide mask: applied in template space
    if method == "nonzero":
        return skull.nonzero_mask(image)
    return None


def _skull_strip(sub: SubjectFiles, images: dict[str, sitk.Image], user: sitk.Image | None,
                 cohort_mask: str | None, settings: PrepareSettings):
    """(method, brain mask on the reference's 1 mm grid or None, warnings for the record)."""
    ref_seq = settings.sequences[0]
    has_user = user is not None or cohort_mask is not None
    method = skull.resolve_skull_strip(settings.skull_strip, images[ref_seq],
                                       has_user_mask=has_user,
                                       has_t1="t1" in images or "t1" in sub.images)
    warnings = [TEMPLATE_WARNING] if method == "template" else []
    t1 = _subject_t1(sub, images) if method == "deepbet" else None
    mask = _native_mask(method, images, ref_seq, user, t1, settings, sub.sid)
    _check_mask(mask, sub.sid, f"skull stripping '{method}'")
    return method, mask, warnings


def _subject_t1(sub: SubjectFiles, images: dict[str, sitk.Image]) -> sitk.Image | None:
    """The subject's T1 at 1 mm (for deepbet), also when T1 is not a requested sequence."""
    if "t1" in images:
        return images["t1"]
    if "t1" not in sub.images:
        return None
    raw = steps.read_image(sub.images["t1"], sub.sid, "t1")
    return steps.reorient_resample(shift_to_zero(raw)[0], is_label=False)


def _check_mask(mask: sitk.Image | None, sid: str, where: str) -> None:
    if mask is not None and sitk.GetArrayViewFromImage(mask).max() == 0:
        raise PrepareError(sid, f"empty brain mask ({where})")


def _register(images, mask, template, settings, method):
    """Affine to the template for the reference sequence; others via a rigid intra-subject
    registration to the reference (same session), composed with the reference's affine."""
    ref_seq = settings.sequences[0]
    ref = images[ref_seq]
    if method == "template":
        affine = _register_head(ref, template, settings)
    else:
        # the brain alone, cropped to its box + a margin wider than the template's: the
        # metric sees the same voxels, ITK smooths and differentiates ~half the volume
        moving = ref if mask is None else steps.crop_around(sitk.Mask(ref, mask), mask,
                                                              REGISTRATION_MARGIN_MM)
        affine = steps.register_affine(moving, template.image, settings.registration)
    transforms = {ref_seq: affine}
    for seq in settings.sequences[1:]:
        rigid = steps.register_affine(images[seq], ref, settings.registration, kind="rigid")
        transforms[seq] = sitk.CompositeTransform([rigid, affine])  # affine applied first
    return transforms


def _register_head(head: sitk.Image, template, settings) -> sitk.Transform:
    """Whole head -> brain template (the ``template`` skull-strip fallback): vertex-aligned
    start, only the template's (dilated) brain in the metric. On the IXI samples the true
    brain mask then overlaps the template brain with Dice 0.92 / 0.84, against 0.67 / 0.78
    with moments initialisation; a second pass on the back-projected brain made it worse."""
    fixed_mask = sitk.BinaryDilate(template.mask, [4, 4, 4])
    start = steps.head_top_initializer(head, skull.foreground(head), template.mask)
    return steps.register_affine(head, template.image, settings.registration,
                                 fixed_mask=fixed_mask, initial=start)


def prepare_subject(sub: SubjectFiles, cohort: Cohort, settings: PrepareSettings, data: Path,
                    cohort_mask: str | None = None) -> dict:
    """Run steps 1-6 for one subject; raise :class:`PrepareError` naming it on bad input."""
    sid, timings, cpu = sub.sid, {}, {}
    clock = [time.perf_counter(), time.process_time()]

    def lap(step: str) -> None:
        # wall and CPU seconds: on a shared machine CPU time is the cost that transfers
        now = [time.perf_counter(), time.process_time()]
        timings[step] = round(timings.get(step, 0.0) + now[0] - clock[0], 3)
        cpu[step] = round(cpu.get(step, 0.0) + now[1] - clock[1], 3)
        clock[:] = now

    template = template_for(settings.template)
    lap("template")
    images, seg, user = _read_inputs(sub, cohort, settings)
    _check_mask(user, sid, f"supplied file {sub.mask}")
    images, zeros = _shift_images(images)
    images = {s: steps.reorient_resample(im, is_label=False) for s, im in images.items()}
    seg = steps.reorient_resample(seg, is_label=True) if seg is not None else None
    user = steps.reorient_resample(user, is_label=True) if user is not None else None
    lap("resample")
    ref_seq = settings.sequences[0]
    method, mask, warnings = _skull_strip(sub, images, user, cohort_mask, settings)
    lap("skull_strip")
    transforms = _register(images, mask, template, settings, method)
    lap("register")
    crops = _to_template(images, seg, mask, transforms, ref_seq, template, method,
                         cohort_mask, sid)
    lap("resample_to_template")
    if settings.n4:
        corrected = {s: steps.n4_correct(crops[s], crops["mask"], shrink=settings.n4_shrink,
                                         iterations=settings.n4_iterations,
                                         control_points=settings.n4_control_points)
                     for s in images}
    else:
        corrected = {s: crops[s] for s in images}
    lap("n4")
    contrast = {s: tissue_contrast(corrected[s], crops["mask"], template.image) for s in images}
    warnings += [w for s in images if (w := modality_warning(s, contrast[s]))]
    outs = {s: steps.pad_downsample(corrected[s], crops["mask"], crops.get("seg"))
            for s in images}
    lap("pad_downsample")
    record = _write(sub, cohort, settings, data, outs, method, crops)
    record["transforms"] = _write_transforms(data, cohort, sid, transforms)
    lap("write")
    record.update({
        "mask_from": {"deepbet": "t1", "hdbet": ref_seq, "nonzero": ref_seq,
                      "mask": "supplied", "template": "template"}[method],
        "n4": "on" if settings.n4 else "skipped (--no-n4: input already bias-corrected)",
        # the value subtracted so that "no signal" is 0 (0 for ordinary magnitudes)
        "intensity_zero": {s: round(float(z), 6) for s, z in zeros.items()},
        # the modality check (modality.py): median in the template's CSF/GM/WM cores
        "tissue_contrast": {s: _contrast_record(c) for s, c in contrast.items()},
        **({"warnings": warnings} if warnings else {}),  # printed in the subject's log line
        "seconds": timings, "cpu_seconds": cpu,
        "settings": settings.to_record(), "tools": skull.available_tools(),
    })
    record_path(data, cohort, sid).parent.mkdir(parents=True, exist_ok=True)
    record_path(data, cohort, sid).write_text(json.dumps(record, indent=1))
    return record


def _contrast_record(contrast) -> dict | None:
    if contrast is None:
        return None
    return {"csf": round(contrast.csf, 4), "gm": round(contrast.gm, 4),
            "wm": round(contrast.wm, 4), "wm_minus_csf": round(contrast.wm_csf, 4),
            "looks_like": contrast.looks_like()}


def _to_template(images, seg, mask, transforms, ref_seq, template, method, cohort_mask, sid):
    """Images (masked), brain mask and lesion label on the template grid, cropped to the
    brain's bounding box (step 4a). The mask is mapped first, so the images are resampled
    (B-spline: the costly part) only at the grid points inside that box: the same values
    as resampling the whole template grid and cropping."""
    ref_t = transforms[ref_seq]
    if mask is not None:
        full = steps.apply_transform(mask, template.image, ref_t, is_label=True)
    elif method == "mask":  # one mask for the whole cohort, already in template space
        cohort = skull.user_mask(cohort_mask, sid, None)
        full = steps.apply_transform(cohort, template.image, sitk.Transform(), is_label=True)
    else:  # the template fallback needs the moved image to refine the template's mask
        moved = steps.apply_transform(images[ref_seq], template.image, ref_t, is_label=False)
        full = skull.template_mask(moved, template.mask)
    _check_mask(full, sid, f"after registration, '{method}'")
    box = steps.crop_to_brain({}, full)["mask"]
    crops = {s: sitk.Mask(steps.apply_transform(images[s], box, transforms[s], is_label=False),
                          box) for s in images}
    crops["mask"] = box
    if seg is not None:
        crops["seg"] = steps.apply_transform(seg, box, ref_t, is_label=True)
    return crops


def _write(sub, cohort, settings, data, outs, method, crops) -> dict:
    first = outs[settings.sequences[0]]
    rel = relative_paths(cohort, sub.sid, list(settings.sequences), "seg" in first)
    sha = {}
    for seq, out in outs.items():
        sha[seq] = write_nifti(data / rel[seq].lstrip("/"), out["image"], out["affine"])
    sha["mask"] = write_nifti(data / rel["mask"].lstrip("/"), first["mask"], first["affine"])
    lesion = {}
    if "seg" in first:
        sha["seg"] = write_nifti(data / rel["seg"].lstrip("/"), first["seg"], first["affine"])
        lesion = {"lesion_voxels_1mm_kept": int(first["seg_voxels_1mm"]),
                  "lesion_voxels_out": int(first["seg"].sum())}
    brain = [int(v) for v in crops["mask"].GetSize()]
    return {"sid": sub.sid, "cohort": cohort.name, "fingerprint": settings.fingerprint(),
            "skull_strip": method, "files": rel, "sha256": sha, "brain_bbox_1mm": brain,
            # axially only the central 100 mm are kept anyway: a taller brain loses nothing more
            "brain_fits": all(b <= p for b, p in zip(brain[:2], steps.PAD_SHAPE[:2])),
            "inputs": {k: str(v) for k, v in sub.images.items()}, **lesion}


def summary_line(record: dict) -> str:
    """One log line per subject."""
    secs, cpu = record.get("seconds", {}), record.get("cpu_seconds", {})
    total = sum(secs.values())
    parts = " ".join(f"{k} {v:.1f}" for k, v in secs.items() if v >= 0.05)
    parts += f"; cpu {sum(cpu.values()):.1f} s"
    lesion = ""
    if "lesion_voxels_out" in record:
        lesion = (f", lesion {record['lesion_voxels_1mm_kept']} mm3 -> "
                  f"{record['lesion_voxels_out']} vox (x8 = {8 * record['lesion_voxels_out']})")
    fit = "" if record.get("brain_fits", True) else ", WARNING brain wider than 192x192 mm (centre-cropped)"
    shifted = {s: z for s, z in record.get("intensity_zero", {}).items() if z}
    shift = "".join(f", {s} shifted by {-z:+.4g} (no signal -> 0)" for s, z in shifted.items())
    n4 = "" if record.get("n4", "on") == "on" else ", N4 skipped"
    warn = "".join(f"; WARNING {w}" for w in record.get("warnings", []))
    return (f"{record['sid']}: ok in {total:.1f} s ({parts}); skull strip "
            f"'{record['skull_strip']}'{lesion}{fit}{shift}{n4}{warn}")


def transform_path(data: Path, cohort: Cohort, sid: str, seq: str) -> Path:
    """The registration transform of one sequence (template -> raw scanner points)."""
    return record_path(data, cohort, sid).with_name(f"{sid}_{seq}.tfm")


def _write_transforms(data: Path, cohort: Cohort, sid: str,
                      transforms: dict[str, sitk.Transform]) -> dict[str, str]:
    """{sequence: file name beside the record}; written before the record that names them."""
    names = {}
    for seq, transform in transforms.items():
        path = transform_path(data, cohort, sid, seq)
        path.parent.mkdir(parents=True, exist_ok=True)
        sitk.WriteTransform(transform, str(path))
        names[seq] = path.name
    return names
