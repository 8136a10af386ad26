"""The lesion model of each synthetic generator version (benchmark.data.synth.VERSIONS):
version 1's lesions (``lesions.py``) or version 2's (``lesions_v2.py``, which builds on
version 1's shapes), and the parameters a version records in its manifest."""
from __future__ import annotations

from dataclasses import dataclass

from benchmark.data.synth import lesions_v2 as v2
from benchmark.data.synth.lesions import GENERATORS, plan_tumour, tumour, wmh


@dataclass(frozen=True)
class LesionModel:
    """One generator version's lesions: the tumour's plan and insertion, the others."""

    plan_tumour: object
    tumour: object
    generators: dict
    sized: bool = False  # v2: plan_tumour and the generators take the subject's size quantile


def lesion_model(version: str) -> LesionModel:
    """The lesions of a generator version (benchmark.data.synth.VERSIONS)."""
    if version == "1":
        return LesionModel(plan_tumour, tumour, GENERATORS)
    if version == "2":
        return LesionModel(v2.plan_tumour, v2.tumour,
                           {"ms": v2.ms, "stroke": v2.stroke, "wmh": lambda rng, a, quantile: wmh(rng, a)},
                           sized=True)
    raise ValueError(f"no lesion model for synthetic data version {version!r}; known: 1, 2")


def lesion_parameters(version: str) -> dict:
    """The parameters that distinguish a version's lesions (recorded in its manifest)."""
    if version == "2":
        return v2.lesion_parameters()
    return {}
