"""Model bundles: a finished part as three files anyone can load without running code.

    <bundle>/model.safetensors   the weights (safetensors: tensors only, no pickle)
    <bundle>/bundle.json         the method's name, resolved hyperparameters and tags; the
                                 preparation of its inputs; post-processing and scoring
                                 settings; healthy-data thresholds; the training data's
                                 identity (cohort, fold, manifest sha256, subjects); the
                                 part's results and timings; provenance
    <bundle>/README.md           the model card, generated from bundle.json

Loading (:func:`load_bundle`) asks the registry for the method the bundle names (a method
of a plug-in package, entry-point group ``uad_bench.methods``, is found the same way),
builds it from the recorded hyperparameters (checked against its typed ``__init__``) and
loads the weights with ``safetensors`` after checking their sha256. Nothing is unpickled.
"""
from __future__ import annotations

import json
import os
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from .. import __version__
from ..atomic import read_json
from ..data.manifest import sha256_file
from ..environment import git_commit
from ..hparams import HparamError, annotations, coerce, expected_type, plain_hparams
from ..method import AnomalyMethod
from ..registry import get_method
from ..thresholds import SOURCES
from .card import model_card
from .model import BUNDLE_FILE, TrainedModel, from_part, part_of
from .recipe import Preparation

FORMAT = "uad-bench-bundle"
FORMAT_VERSION = 1
WEIGHTS, CARD = "model.safetensors", "README.md"


class BundleError(ValueError):
    """A bundle that cannot be loaded; the message names the bundle and the problem."""


def export_part(part_path: Path, out: Path) -> Path:
    """``benchmark export RUN/METHOD/SEQ/foldK --out DIR``."""
    return write_bundle(from_part(part_of(Path(part_path))), Path(out))


def write_bundle(model: TrainedModel, out: Path) -> Path:
    """Write the bundle into a hidden folder beside ``out``, then rename it into place: a
    reader never sees half a bundle. ``out`` must not exist or be empty."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"--out {out} exists and is not an empty folder")
    tmp = out.with_name(f".{out.name}.partial-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        save_weights(model.method, tmp / WEIGHTS)
        document = bundle_document(model, sha256_file(tmp / WEIGHTS))
        (tmp / BUNDLE_FILE).write_text(json.dumps(document, indent=2, default=str))
        (tmp / CARD).write_text(model_card(document))
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def save_weights(method: AnomalyMethod, path: Path) -> None:
    """The method's state dict as safetensors (copies: tied tensors are stored twice)."""
    from safetensors.torch import save_file

    state = method.state_dict()
    odd = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if odd:
        raise TypeError(f"{method.name}: state entries that are not tensors cannot go into "
                        f"safetensors: {odd[:5]}")
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in state.items()}
    save_file(tensors, str(path), metadata={"format": FORMAT, "uad_method": method.name})
    os.chmod(path, 0o644)  # safetensors writes 0600; a bundle is made to be shared


def bundle_document(model: TrainedModel, weights_sha256: str) -> dict[str, Any]:
    """bundle.json's content (plain JSON values)."""
    ident = model.identity
    method = {"name": ident["method"], "family": ident.get("family"), "paper": ident.get("paper"),
              "n_params": ident.get("n_params"), "hparams": plain_hparams(ident["hparams"]),
              "tags": ident.get("tags", {})}
    thresholds = {s: {"value": v, "description": SOURCES[s].describe()}
                  for s, v in model.thresholds.items()}
    part = {k: v for k, v in ident.items() if k not in ("hparams", "family", "paper", "n_params",
                                                         "tags", "source")}
    return {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "weights": {"file": WEIGHTS, "sha256": weights_sha256},
        "method": method, "part": part, "preparation": model.preparation.to_json(),
        "scoring": model.scoring, "thresholds": thresholds,
        "training_data": model.training_data, "results": model.results,
        "timings": model.timings,
        "exported": {"at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                     "uad_bench": __version__, "git_commit": git_commit(),
                     "from": ident.get("source")},
    }


def read_document(path: Path) -> dict[str, Any]:
    """bundle.json, its format checked."""
    doc = read_json(Path(path) / BUNDLE_FILE)
    if doc.get("format") != FORMAT:
        raise BundleError(f"{path}/{BUNDLE_FILE}: not a UAD-Bench bundle (format "
                          f"{doc.get('format')!r})")
    if int(doc.get("format_version", 0)) > FORMAT_VERSION:
        raise BundleError(f"{path}: bundle format {doc['format_version']} is newer than this "
                          f"installation reads ({FORMAT_VERSION}); update uad-bench")
    return doc


def build_method(name: str, hparams: dict[str, Any], where: Path) -> AnomalyMethod:
    """The registered method ``name`` with ``hparams`` coerced to its typed arguments."""
    cls = get_method(name)
    known, hints = cls.hyperparameters(), annotations(cls)
    values = {}
    for key, value in hparams.items():
        if key not in known:
            raise BundleError(f"{where}: hyperparameter {key!r} is not an argument of "
                              f"{name} (this installation's {name} accepts: "
                              f"{', '.join(sorted(known))})")
        try:
            values[key] = coerce(key, value, expected_type(known[key], hints),
                                 known[key].default)
        except HparamError as err:
            raise BundleError(f"{where}: {err}") from None
    return cls(**values)


def load_bundle(path: Path) -> TrainedModel:
    """A bundle as a :class:`TrainedModel` (weights from safetensors, nothing unpickled)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    doc = read_document(path)
    weights = path / doc["weights"]["file"]
    if not weights.is_file():
        raise BundleError(f"{path}: weights file {weights.name} missing")
    if sha256_file(weights) != doc["weights"]["sha256"]:
        raise BundleError(f"{weights}: sha256 differs from bundle.json's: the file changed "
                          "after export")
    method = build_method(doc["method"]["name"], doc["method"]["hparams"], path)
    try:
        method.load_state_dict(load_file(str(weights)))
    except (RuntimeError, SafetensorError) as err:
        raise BundleError(f"{weights}: does not fit {doc['method']['name']}: "
                          f"{str(err).splitlines()[0]}") from None
    identity = {**doc["part"], "hparams": doc["method"]["hparams"], "tags": doc["method"]["tags"],
                "family": doc["method"]["family"], "paper": doc["method"]["paper"],
                "n_params": doc["method"]["n_params"], "source": str(path)}
    thresholds = {s: float(t["value"]) for s, t in doc["thresholds"].items()}
    return TrainedModel(method.eval(), identity, Preparation.from_json(doc["preparation"]),
                        dict(doc["scoring"]), thresholds, dict(doc["training_data"]),
                        list(doc.get("results") or []), dict(doc.get("timings") or {}))


def open_model(path: Path) -> TrainedModel:
    """A bundle folder (``bundle.json``) or a part folder ``RUN/METHOD/SEQ/foldK``."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"--model {path}: no such folder")
    if (path / BUNDLE_FILE).is_file():
        return load_bundle(path)
    return from_part(part_of(path))
