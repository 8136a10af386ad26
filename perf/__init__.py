"""Speed benchmarks: a pytest-benchmark suite (perf/test_*.py) and paper-scale scripts
(perf/bench_*.py). See perf/README.md."""
