# Two commands on a fresh machine (only Python >= 3.10 needed): the first use creates
# .venv, installs torch for this machine and the project, then runs the job.
#   make run                                   # python -m benchmark run --methods cddpm,pddpm
#   make run ARGS="--methods thresh,ae --profile smoke"
#   make test                                  # python -m pytest -q
#   make test ARGS="tests/test_metrics.py -x"
#   make perf                                  # python -m pytest perf: the speed suite (perf/README.md)
# Without make: python3 tools/bootstrap.py run|test|perf [ARGS...]. Torch choice and other
# settings (TORCH_SPEC, TORCH_INDEX_URL, UAD_BENCH_VENV): see tools/bootstrap.py.
PYTHON ?= python3
ARGS ?=

.PHONY: run test perf setup

run:
	$(PYTHON) tools/bootstrap.py run $(ARGS)

test:
	$(PYTHON) tools/bootstrap.py test $(ARGS)

perf:
	$(PYTHON) tools/bootstrap.py perf $(ARGS)

setup:
	$(PYTHON) tools/bootstrap.py setup
