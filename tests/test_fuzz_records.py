"""Property-based tests (hypothesis) of the readers of user records (issue 28): TOML/JSON
hyperparameter files, done.json, and the run records the leaderboard reads. Accepted
inputs hold (finite hyperparameters, plain tags, checkpoints inside the part, metrics in
range); everything else is one CliError / ValueError naming the file. Settings, helpers
and the budget: tests/fuzzing.py."""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from fuzzing import FAST, clear, counter, json_values, note
from hypothesis import example, given
from hypothesis import strategies as st


# ---------------------------------------------------------------------------- TOML configs
def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") \
            if math.isinf(value) else repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"


toml_scalars = st.one_of(st.booleans(), st.integers(-10 ** 20, 10 ** 20), st.floats(),
                         st.text(max_size=8))
toml_values = st.recursive(toml_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=2)),
    max_leaves=5)
AE_KEYS = ["lr", "latent_dim", "dropout", "residual", "width", "channels", "nonsense"]


@st.composite
def toml_config(draw) -> str:
    tables = draw(st.dictionaries(st.sampled_from(["ae", "thresh", "methods", "cddpm"]),
                                  st.one_of(st.dictionaries(st.sampled_from(AE_KEYS),
                                                            toml_values, max_size=4),
                                            toml_values), max_size=2))
    lines = []
    for name, body in tables.items():
        if isinstance(body, dict):
            lines.append(f"[{name}]")
            lines += [f"{k} = {_toml_value(v)}" for k, v in body.items()]
        else:
            lines.insert(0, f"{name} = {_toml_value(body)}")
    return "\n".join(lines) + draw(st.sampled_from(["", "\n[ae", "\nlr = = 1", "\n\x00"]))


@FAST
@given(text=toml_config(), suffix=st.sampled_from([".toml", ".json"]))
# found: `methods = false` was an AttributeError; a [cddpm] table not in --methods was an
# error that did not name the --config file
@example(text="methods = false", suffix=".toml")
@example(text="[cddpm]", suffix=".toml")
def test_toml_configs_give_checked_hyperparameters_or_one_error(tmp_path, text, suffix):
    from benchmark.cli import CliError
    from benchmark.cli.run import parse_overrides
    from benchmark.registry import get_method

    path = tmp_path / f"config{suffix}"
    path.write_text(text if suffix == ".toml" else _json_of_toml(text))
    try:
        overrides = parse_overrides([], path, ["ae", "thresh"])
    except CliError as err:
        clear(err, path)
        return
    for method, values in overrides.items():
        resolved, problems = get_method(method).hparam_problems("smoke", values)
        note("problems" if problems else "accepted")
        assert all(isinstance(p, str) and p for p in problems)
        if not problems:  # accepted values have their annotated types: no nan/inf
            floats = [v for v in resolved.values() if isinstance(v, float)]
            assert all(math.isfinite(v) for v in floats), resolved


def _json_of_toml(text: str) -> str:
    import tomllib

    try:
        return json.dumps(tomllib.loads(text), allow_nan=True)
    except (tomllib.TOMLDecodeError, ValueError):
        return text


# ---------------------------------------------------------------------------- done.json
done_records = st.one_of(
    st.fixed_dictionaries({}, optional={
        "checkpoint": st.one_of(st.sampled_from(["best-main.ckpt", "../../x.ckpt", "/etc/passwd",
                                                 "", "sub/../best-main.ckpt"]), json_values),
        "tags": st.one_of(st.dictionaries(st.text(max_size=6), json_values, max_size=3),
                          json_values)}).map(json.dumps),
    json_values.map(json.dumps), st.text(max_size=30))


@FAST
@given(text=done_records)
# found: non-object tags and a non-string checkpoint were TypeErrors; tags holding a list
# were accepted
@example(text='{"tags": true}')
@example(text='{"tags": {"": []}}')
@example(text='{"checkpoint": true}')
def test_done_json_gives_tags_and_a_checkpoint_inside_the_part_or_one_error(tmp_path, text):
    from benchmark.rundir import RunDir

    part = RunDir(tmp_path / "run").part("thresh", "t2", 0)
    part.path.mkdir(parents=True, exist_ok=True)
    (part.path / "best-main.ckpt").write_bytes(b"x")
    part.done_path.write_text(text)
    try:
        tags = part.tags()
        ckpt = part.checkpoint()
    except (ValueError, FileNotFoundError) as err:
        clear(err, part.done_path, part.path)
        return
    note("accepted")
    assert isinstance(tags, dict) and all(isinstance(k, str) for k in tags)
    assert all(v is None or isinstance(v, (bool, int, float, str)) for v in tags.values())
    assert part.path.resolve() in ckpt.resolve().parents


# ---------------------------------------------------------------------------- run records
metric_cells = st.one_of(st.floats(0, 1), st.floats(0, 1), st.floats(),
                         st.sampled_from(["", "high", "0.5", "1e400"]), st.integers(-2, 2))


@st.composite
def per_volume_table(draw) -> pd.DataFrame:
    n = draw(st.integers(1, 4))
    frame = pd.DataFrame({
        "method": ["thresh"] * n,
        "fold": draw(st.lists(st.one_of(*[st.integers(0, 4)] * 6, st.integers(-1, 4),
                                        st.floats(), st.just("x")), min_size=n, max_size=n)),
        "dataset": ["Brats21"] * n, "sequence": ["t2"] * n,
        "volume": [f"v{i}" for i in range(n)], "threshold_source": ["oracle"] * n,
    })
    for column in draw(st.lists(st.sampled_from(["auprc", "auroc", "dice", "ssim", "score"]),
                                unique=True, min_size=1, max_size=3)):
        frame[column] = draw(st.lists(metric_cells, min_size=n, max_size=n))
    if draw(st.booleans()):
        frame["tags"] = draw(st.lists(st.sampled_from(['{}', '{"ens": true}'] * 4 + ["[1]", "{",
                                                                            "5"]),
                                      min_size=n, max_size=n))
    return frame


@FAST
@given(table=per_volume_table(), config=st.one_of(
    json_values.map(json.dumps), *[st.just('{"data_root": "/x", "profile": {}}')] * 3))
# found: a tags cell holding a number ('5') was a TypeError inside tag_keys
@example(table=pd.DataFrame({"method": ["thresh"] * 2, "fold": [0, 1], "dataset": ["B"] * 2,
                             "sequence": ["t2"] * 2, "volume": ["v0", "v1"],
                             "threshold_source": ["oracle"] * 2, "auprc": [0.0, 0.0],
                             "tags": ["{}", "5"]}),
         config='{"data_root": "/x"}')
def test_run_records_load_with_metrics_in_range_or_one_error(tmp_path, table, config):
    from benchmark.leaderboard.load import load_run, metric_columns
    from benchmark.validate import metric_problems

    run = tmp_path / f"run{next(counter)}"
    run.mkdir()
    table.to_csv(run / "per_volume.csv", index=False)
    (run / "config.json").write_text(config)
    try:
        loaded = load_run(run)
    except (ValueError, FileNotFoundError) as err:
        clear(err, run)
        return
    note("accepted")
    frame = loaded.table("per_volume.csv")
    assert metric_problems(frame, "per_volume.csv", str(run)) == []
    for column in metric_columns(frame):
        assert not np.isinf(frame[column].to_numpy(float)).any()
    assert isinstance(loaded.configs[str(run)], dict)


def test_a_run_config_without_its_data_root_is_one_error(tmp_path):
    from benchmark.rundir import RunDir

    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    (run.path / "config.json").write_text('{"profile": {}}')
    with pytest.raises(ValueError, match="config.json") as err:
        run.data_config("t2", 0)
    clear(err.value, run.config_path)
