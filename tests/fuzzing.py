"""Shared by the property-based tests of the readers of user files (issue 28):
tests/test_fuzz_data.py (split CSVs, NIfTI, MetaImage) and tests/test_fuzz_records.py
(hyperparameter files, done.json, run records).

Every generated input must end in a result that holds or in ONE clear error of the type
the CLI reports (exit 2) naming the file, never a traceback or a silent number. The
failures hypothesis found are kept as ``@example``s on each test (the regression corpus);
docs/failures.md lists them. Budget: 560 examples in about 10 s on two cores
(``max_examples`` per test; ``deadline=None``: file I/O times vary).
"""
from __future__ import annotations

import itertools
import os
import re

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st

# CI: a fixed sequence of 100 examples per test (60 for NIfTI volumes, the slow ones);
# UAD_BENCH_FUZZ_EXAMPLES=2000 explores further with fresh random draws
EXAMPLES = int(os.environ.get("UAD_BENCH_FUZZ_EXAMPLES", "100"))
_HEALTH = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
FAST = settings(max_examples=EXAMPLES, deadline=None,
                derandomize="UAD_BENCH_FUZZ_EXAMPLES" not in os.environ,
                suppress_health_check=_HEALTH)
VOLUMES = settings(FAST, max_examples=max(1, EXAMPLES * 3 // 5))
counter = itertools.count()


def clear(err: BaseException, *names: object) -> str:
    """One clear error: a message that names the file (one of ``names``), no traceback."""
    message = str(err)
    note(f"{type(err).__name__}: {gist(message)}")
    assert message.strip() and "Traceback" not in message, repr(err)
    assert any(str(n) in message for n in names), f"{message!r} names none of {names}"
    return message


def note(text: str) -> None:
    from hypothesis.control import currently_in_test_context

    if currently_in_test_context():
        event(text)


def gist(message: str) -> str:
    """The kind of an error message (file names and numbers dropped), for the statistics
    (pytest --hypothesis-show-statistics)."""
    words = re.sub(r"\S*/\S*|[-+]?\d[\d.e+-]*", "#", message).split()
    return " ".join(words[:8])


json_values = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(),
                                     st.text(max_size=10)),
                           lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                   st.dictionaries(st.text(max_size=6), inner,
                                                                   max_size=3)), max_leaves=6)
