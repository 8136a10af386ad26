"""The run configuration: one typed object, written to config.json and read back.

:class:`RunConfig` is what a run computes with. ``benchmark run`` builds it from the
command line; :meth:`RunConfig.typed` coerces the ``--set``/``--config`` values to each
method's typed ``__init__`` arguments once (``--set cddpm.pretrain=false`` is the bool
``false``), and :meth:`RunConfig.hparams` gives a method's resolved keyword arguments
(defaults <- profile <- overrides), computed once per configuration. The run's records
hold :meth:`RunConfig.to_json`; every reader of a run directory gets the object back with
:meth:`RunConfig.from_json` (through ``RunDir.run_config()``), config.json files of earlier
versions included: a setting they lack takes the value those versions ran with (a
dataclass default), and overrides recorded as the strings typed are coerced on reading.

:meth:`RunConfig.data_config` is the one mapping from a run to the data configuration of
one (sequence, fold): training, validation, re-scoring and planning all use it.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .data.options import DataOptions
from .profiles import Profile

if TYPE_CHECKING:
    from .data.module import DataConfig

CHANGES = "config_changes"  # config.json: settings changed by --allow-config-change resumes
WARNINGS = "warnings"  # config.json: what the checks found legitimate but odd (this launch)
# settings that say how a launch runs or which parts it runs, not what a part computes:
# free to differ on --resume (a run is often continued fold by fold or method by method)
LAUNCH_KEYS = ("resume", "run_dir", "wait", "allow_config_change", "trainer.progress",
               "trainer.logger", "methods", "sequences", "folds", CHANGES, WARNINGS)


@dataclass
class TrainerOptions:
    accelerator: str = "auto"
    devices: str | int = "auto"
    strategy: str = "auto"
    num_nodes: int = 1
    precision: str | None = None      # None: the method's GPU precision on GPU, fp32 on CPU
    epochs: int | dict[str, int] | None = None  # override the profile's epochs: every
                                      # stage (int) or by stage name ({"main": 100})
    progress: bool = True
    logger: str = "csv"               # csv | tensorboard | wandb (if installed)
    seed: int = 3141                  # the authors' seed
    select: str = "val_loss"          # checkpoint kept: a key of benchmark.train.SELECTION
                                      # (curve metrics need learning curves; last stage)


@dataclass(frozen=True)
class CurveOptions:
    """every_n_epochs: a point every N epochs; or points: about this many points per
    training stage (N = epochs // points); both 0 = no curve. volumes: per validation set
    (healthy and each cohort); seed: noise of the evaluation (fixed, so points differ by
    the weights only)."""

    every_n_epochs: int = 0
    volumes: int = 4
    seed: int = 0
    points: int = 0

    @property
    def enabled(self) -> bool:
        return self.every_n_epochs > 0 or self.points > 0

    def every(self, epochs: int) -> int:
        """Epochs between two points in a stage of ``epochs`` epochs."""
        return self.every_n_epochs or max(1, epochs // max(1, self.points))


@dataclass
class RunConfig:
    methods: list[str]
    profile: Profile
    data_root: Path
    run_dir: Path
    sequences: list[str] = field(default_factory=lambda: ["t2", "t1"])
    folds: list[int] | None = None           # None: the profile's folds
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    trainer: TrainerOptions = field(default_factory=TrainerOptions)
    fold_scheme: str = "disjoint"
    augment: bool = True
    data_options: DataOptions = field(default_factory=DataOptions)  # --data-option
    num_workers: int = 0
    cohorts: list[str] | None = None
    map_dtype: str = "float32"
    resume: bool = False
    data_source: str = "user"                # "user" or "synthetic-<size>[-v<version>]"
    curves: CurveOptions = field(default_factory=CurveOptions)
    wait: bool = False                       # wait for the run's lock instead of refusing
    allow_config_change: bool = False        # --resume with other settings (recorded)
    # records of the run (config.json), not settings
    warnings: list[str] = field(default_factory=list)
    config_changes: list[dict] = field(default_factory=list)
    bundle: dict | None = None               # a run that scores an exported bundle
    _resolved: dict = field(default_factory=dict, init=False, repr=False, compare=False)
    _recorded: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    # ------------------------------------------------------------ parts and data
    def fold_list(self) -> list[int]:
        """The folds the run trains: --folds, else the profile's."""
        return list(self.folds) if self.folds is not None else list(self.profile.folds)

    def data_config(self, sequence: str, fold: int, **overrides: Any) -> DataConfig:
        """The data configuration of part (sequence, fold): the one mapping from a run's
        settings to benchmark.data.module.DataConfig."""
        from .data.module import DataConfig

        p = self.profile
        values = {"root": Path(self.data_root), "sequence": sequence, "fold": int(fold),
                  "fold_scheme": self.fold_scheme, "batch_size": p.batch_size,
                  "num_workers": self.num_workers, "augment": self.augment,
                  "repeats": p.repeats, "val_slices": p.val_slices,
                  "max_train_volumes": p.max_train_volumes,
                  "max_test_volumes": p.max_test_volumes, "max_val_volumes": p.max_val_volumes,
                  "progress": self.trainer.progress, "cohorts": self.cohorts,
                  "options": self.data_options, "slice_step": p.slice_step}
        values.update(overrides)
        return DataConfig(**values)

    # ------------------------------------------------------------ methods' settings
    def _resolution(self, method: str) -> tuple[dict[str, Any], list[str]]:
        """(resolved keyword arguments, problems) of ``method``, computed once."""
        if method not in self._resolved:
            from .registry import get_method

            self._resolved[method] = get_method(method).hparam_problems(
                self.profile.name, self.overrides.get(method))
        return self._resolved[method]

    def hparam_problems(self, method: str) -> list[str]:
        """What is wrong with ``method``'s overrides (unknown keys, wrong types), or []."""
        return self._resolution(method)[1]

    def hparams(self, method: str) -> dict[str, Any]:
        """``method``'s keyword arguments: defaults (the paper's) <- the method's profile
        <- this run's overrides, each coerced to its annotated type."""
        resolved, problems = self._resolution(method)
        if problems:
            error = KeyError if any(p.startswith("unknown hyperparameter") for p in problems) \
                else ValueError
            raise error("; ".join(problems))
        return dict(resolved)

    def typed(self) -> RunConfig:
        """This configuration with every override as its method's annotated type (a
        method whose overrides do not resolve keeps them as given: the checks report it)."""
        typed = {}
        for method, values in self.overrides.items():
            try:
                resolved, problems = self._resolution(method)
            except KeyError:  # an unknown method: the checks report it
                problems = ["unknown method"]
            typed[method] = dict(values) if problems else {k: resolved[k] for k in values}
        out = replace(self, overrides=typed)
        out._resolved.update(self._resolved)
        return out

    # ------------------------------------------------------------ config.json
    def to_json(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.init}
        out["profile"] = asdict(self.profile)
        out["trainer"] = asdict(self.trainer)
        out["curves"] = asdict(self.curves)
        out["data_options"] = self.data_options.to_dict()
        out["data_root"], out["run_dir"] = str(self.data_root), str(self.run_dir)
        if self.bundle is None:
            del out["bundle"]
        return json.loads(json.dumps(out))  # plain JSON values: tuples are lists

    @classmethod
    def from_json(cls, data: dict, where: str | Path = "config.json") -> RunConfig:
        """A configuration from config.json, of this version or an earlier one; a key this
        version does not know, or a value of the wrong kind, is a ValueError naming it."""
        if not isinstance(data, dict):
            raise ValueError(f"{where}: expected a JSON object, got {type(data).__name__}")  # noqa: TRY004
        known = {f.name for f in fields(cls) if f.init}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"{where}: unknown setting(s) {unknown} (written by a newer "
                             f"version of the suite?); known: {', '.join(sorted(known))}")
        missing = [k for k in ("methods", "profile", "data_root", "run_dir") if k not in data]
        if missing:
            raise ValueError(f"{where}: no {', '.join(missing)}: not the config.json "
                             "`benchmark run` writes")
        values = dict(data)
        try:
            values["profile"] = _dataclass(Profile, data["profile"], "profile", where)
            values["trainer"] = _dataclass(TrainerOptions, data.get("trainer") or {}, "trainer",
                                           where)
            values["curves"] = _dataclass(CurveOptions, data.get("curves") or {}, "curves", where)
            values["data_options"] = DataOptions.from_dict(data.get("data_options"))
        except (TypeError, ValueError) as err:
            raise ValueError(f"{where}: {err}") from None
        if not isinstance(data["data_root"], str) or not isinstance(data["run_dir"], str):
            raise ValueError(f"{where}: data_root and run_dir must be paths (strings)")  # noqa: TRY004
        values["data_root"], values["run_dir"] = Path(data["data_root"]), Path(data["run_dir"])
        for key in ("methods", "sequences"):
            if key in values and not _strings(values[key]):
                raise ValueError(f"{where}: {key} must be a list of names, got {values[key]!r}")
        if not isinstance(values.get("overrides", {}), dict):
            raise ValueError(f"{where}: overrides must be an object of methods' settings")  # noqa: TRY004
        out = cls(**values)
        out._recorded = data
        return out

    @classmethod
    def read(cls, path: str | Path) -> RunConfig:
        """config.json at ``path`` (a file, or a run directory holding one)."""
        from .atomic import read_json

        path = Path(path)
        path = path / "config.json" if path.is_dir() else path
        if not path.is_file():
            raise FileNotFoundError(f"{path.parent} is not a run directory (no {path.name})")
        return cls.from_json(read_json(path), path)


def _dataclass(cls: type, values: Any, key: str, where: str | Path) -> Any:
    if not isinstance(values, dict):
        raise ValueError(f"{key} must be an object, got {values!r}")  # noqa: TRY004
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown {key} setting(s) {unknown}; known: {', '.join(sorted(known))}")
    values = dict(values)
    if cls is Profile:
        values["folds"] = tuple(values.get("folds", ()))
    return cls(**values)


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


# ---------------------------------------------------------------------------- resuming
def config_changes(recorded: RunConfig, now: RunConfig) -> dict[str, tuple[Any, Any]]:
    """{setting: (recorded, now)} where ``now`` differs from the run's recorded settings.

    Both are compared typed (overrides as their methods' types, so a run recorded with
    the string ``"false"`` matches ``false``). A setting the recorded file does not have at
    all was added by a later version of the suite than the one that started the run; it is
    not compared (the run's parts were computed as that version did, which is what its
    records say). Method overrides are always compared, and so are the data options: a
    run recorded before they existed ran with their defaults."""
    raw = recorded._recorded or recorded.to_json()  # the keys the file itself holds
    changes = config_diff(recorded.typed().to_json(), now.typed().to_json(), ignore=LAUNCH_KEYS)
    return {k: v for k, v in changes.items()
            if k.startswith(("overrides.", "data_options.")) or _has_key(raw, k)}


def _has_key(config: dict, dotted: str) -> bool:
    node: Any = config
    for key in dotted.split("."):
        if not isinstance(node, dict) or key not in node:
            return False
        node = node[key]
    return True


def config_diff(recorded: dict, new: dict, ignore: tuple[str, ...] = ()
                ) -> dict[str, tuple[Any, Any]]:
    """{dotted key: (recorded value, new value)} of every setting that differs, compared as
    JSON (tuples and lists alike); keys under a name in ``ignore`` are left out."""
    old_flat = _flatten(json.loads(json.dumps(recorded, default=str)))
    new_flat = _flatten(json.loads(json.dumps(new, default=str)))
    out = {}
    for key in sorted(set(old_flat) | set(new_flat)):
        if any(key == i or key.startswith(i + ".") for i in ignore):
            continue
        missing = "(not set)"
        old, now = old_flat.get(key, missing), new_flat.get(key, missing)
        if old != now:
            out[key] = (old, now)
    return out


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict) and value:
        out = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: value}
