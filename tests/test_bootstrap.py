"""tools/bootstrap.py (`make run` / `make test`): torch choice, the stamp, the commands.

Nothing here installs anything: pip and venv calls go to a recording fake."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

REPO = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("bootstrap", REPO / "tools" / "bootstrap.py")
bootstrap = importlib.util.module_from_spec(_spec)
sys.modules["bootstrap"] = bootstrap  # dataclasses look their module up by name
_spec.loader.exec_module(bootstrap)


def fake_nvidia_smi(folder: Path, exit_code: int, output: str) -> Path:
    """An executable `nvidia-smi` in `folder` that prints `output` and exits `exit_code`."""
    exe = folder / "nvidia-smi"
    exe.write_text(f"#!/bin/sh\necho '{output}'\nexit {exit_code}\n")
    exe.chmod(0o755)
    return folder


@pytest.mark.skipif(os.name == "nt", reason="shell-script fake of nvidia-smi")
@pytest.mark.parametrize("exit_code, output, expected", [
    (0, "GPU 0: NVIDIA H200 (UUID: GPU-0)", True),
    # installed but no driver loaded: nvidia-smi exits 9 with an error message
    (9, "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver", False),
    (0, "No devices were found", False),
])
def test_gpu_present_runs_nvidia_smi(tmp_path, monkeypatch, exit_code, output, expected):
    monkeypatch.setenv("PATH", str(fake_nvidia_smi(tmp_path, exit_code, output)))
    assert bootstrap.gpu_present() is expected


def test_gpu_absent_without_nvidia_smi(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no nvidia-smi anywhere
    assert bootstrap.gpu_present() is False


def test_torch_choice_cpu_gpu_and_user_spec():
    pinned = f"torch=={bootstrap.TORCH_VERSION}"
    cpu = bootstrap.choose_torch({}, has_gpu=lambda: False, platform="linux")
    assert (cpu.spec, cpu.expect_cuda, cpu.try_cpu_index) == (pinned, False, True)
    # the CPU index is used only if it answers; else pip's configured index (local wheels)
    assert cpu.pip_args(reachable=lambda url: True) == [pinned, "--index-url", bootstrap.CPU_INDEX]
    assert cpu.pip_args(reachable=lambda url: False) == [pinned]
    # PyPI's macOS/Windows wheels are CPU builds already: no probe
    mac = bootstrap.choose_torch({}, has_gpu=lambda: False, platform="darwin")
    assert mac.pip_args(reachable=lambda url: pytest.fail("probed")) == [pinned]

    gpu = bootstrap.choose_torch({}, has_gpu=lambda: True, platform="linux")
    assert (gpu.spec, gpu.expect_cuda, gpu.try_cpu_index) == (pinned, True, False)
    assert gpu.pip_args(reachable=lambda url: pytest.fail("probed")) == [pinned]
    cu = bootstrap.choose_torch({"TORCH_INDEX_URL": "https://example.org/cu126"},
                                has_gpu=lambda: True)
    assert cu.pip_args() == [pinned, "--index-url", "https://example.org/cu126"]

    user = bootstrap.choose_torch({"TORCH_SPEC": "torch==2.5.1"}, has_gpu=lambda: True)
    assert (user.spec, user.reason, user.pip_args()) == ("torch==2.5.1", "TORCH_SPEC",
                                                         ["torch==2.5.1"])
    # an empty TORCH_INDEX_URL means: pip's configured index, no probe
    plain = bootstrap.choose_torch({"TORCH_INDEX_URL": ""}, has_gpu=lambda: False,
                                   platform="linux")
    assert plain.pip_args(reachable=lambda url: pytest.fail("probed")) == [pinned]


class FakeRunner:
    """Records commands; `python -m venv DIR` creates DIR/bin/python like the real one."""

    def __init__(self, fail_on: str | None = None):
        self.calls: list[list[str]] = []
        self.fail_on = fail_on

    def __call__(self, cmd, **kwargs):
        cmd = [str(c) for c in cmd]
        self.calls.append(cmd)
        if cmd[1:3] == ["-m", "venv"]:
            py = bootstrap.venv_python(Path(cmd[3]))
            py.parent.mkdir(parents=True)
            py.touch()
        failed = self.fail_on is not None and self.fail_on in " ".join(cmd)
        return SimpleNamespace(returncode=1 if failed else 0)

    def pip_installs(self) -> list[list[str]]:
        return [c[c.index("install") + 2:] for c in self.calls if "pip" in c]


def project(tmp_path: Path, text: str = "[project]\nname = 'x'\n") -> Path:
    (tmp_path / "pyproject.toml").write_text(text)
    return tmp_path


CPU = bootstrap.TorchChoice("torch==2.13.0", None, "CPU build: no working nvidia-smi")


def test_first_use_installs_second_use_installs_nothing(tmp_path):
    root, venv = project(tmp_path), tmp_path / ".venv"
    run = FakeRunner()
    py = bootstrap.ensure_env(root, venv, CPU, run=run)
    assert py == bootstrap.venv_python(venv)
    assert run.calls[0][1:] == ["-m", "venv", str(venv)]
    assert run.pip_installs() == [["--upgrade", "pip>=23"], ["torch==2.13.0"],
                                  ["-e", f"{root}[dev]"]]
    again = FakeRunner()
    assert bootstrap.ensure_env(root, venv, CPU, run=again) == py
    assert again.calls == []


@pytest.mark.parametrize("change", ["pyproject", "torch"])
def test_changed_pyproject_or_torch_choice_reinstalls(tmp_path, change):
    root, venv = project(tmp_path), tmp_path / ".venv"
    bootstrap.ensure_env(root, venv, CPU, run=FakeRunner())
    choice = CPU
    if change == "pyproject":
        project(tmp_path, "[project]\nname = 'x'\ndependencies = ['numpy']\n")
    else:
        choice = bootstrap.TorchChoice("torch==2.5.1", None, "TORCH_SPEC")
    run = FakeRunner()
    bootstrap.ensure_env(root, venv, choice, run=run)
    assert not any("venv" == c[2] for c in run.calls)  # the environment is reused
    assert [a[0] for a in run.pip_installs()] == ["--upgrade", choice.spec, "-e"]


def test_failed_install_leaves_no_stamp_and_names_the_command(tmp_path):
    root, venv = project(tmp_path), tmp_path / ".venv"
    bootstrap.ensure_env(root, venv, CPU, run=FakeRunner())
    project(tmp_path, "[project]\nname = 'changed'\n")
    with pytest.raises(SystemExit, match=r"failed: .*pip install --quiet -e"):
        bootstrap.ensure_env(root, venv, CPU, run=FakeRunner(fail_on="-e"))
    assert not (venv / bootstrap.STAMP_NAME).exists()
    retry = FakeRunner()
    bootstrap.ensure_env(root, venv, CPU, run=retry)  # tries again rather than trusting it
    assert len(retry.pip_installs()) == 3


def test_missing_venv_module_gets_a_clear_error(tmp_path):
    with pytest.raises(SystemExit, match="python3-venv"):
        bootstrap.ensure_env(project(tmp_path), tmp_path / ".venv", CPU,
                             run=FakeRunner(fail_on="-m venv"))


def test_gpu_choice_checks_that_the_installed_torch_sees_it(tmp_path, capsys):
    gpu = bootstrap.TorchChoice("torch==2.13.0", None, "CUDA", expect_cuda=True)
    run = FakeRunner(fail_on="cuda.is_available")
    bootstrap.ensure_env(project(tmp_path), tmp_path / ".venv", gpu, run=run)
    assert "cannot use it" in capsys.readouterr().err


def test_job_commands_pass_arguments_through():
    assert bootstrap.job_command("run", []) == ["-m", "benchmark", "run",
                                                "--methods", "cddpm,pddpm"]
    assert bootstrap.job_command("run", ["--profile", "smoke", "--data-root", "/d"]) == [
        "-m", "benchmark", "run", "--methods", "cddpm,pddpm", "--profile", "smoke",
        "--data-root", "/d"]
    for given in (["--methods", "ae"], ["--methods=ae"]):
        assert bootstrap.job_command("run", given) == ["-m", "benchmark", "run", *given]
    assert bootstrap.job_command("test", ["-x", "tests/test_metrics.py"]) == [
        "-m", "pytest", "-q", "-x", "tests/test_metrics.py"]
    assert bootstrap.job_command("perf", ["--benchmark-compare"]) == [
        "-m", "pytest", "perf", "--benchmark-compare"]
    with pytest.raises(ValueError, match="expected run, test or perf"):
        bootstrap.job_command("lint", [])


def test_script_usage_and_torch_report():
    script = [sys.executable, str(REPO / "tools" / "bootstrap.py")]
    bad = subprocess.run(script + ["frobnicate"], check=False, capture_output=True, text=True)
    assert bad.returncode == 2 and "usage" in bad.stderr
    env = {**os.environ, "TORCH_SPEC": "torch==9.9", "TORCH_INDEX_URL": ""}
    out = subprocess.run(script + ["torch"], check=False, capture_output=True,
                         text=True, env=env)
    assert out.returncode == 0 and out.stdout.startswith("torch==9.9 # TORCH_SPEC")
