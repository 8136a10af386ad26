"""The run directory: the results contract every later tool reads, and its only owner.

    runs/<run-id>/config.json            fully resolved configuration (benchmark.runconfig)
    runs/<run-id>/environment.json       package versions, device, git commit
    runs/<run-id>/<method>/<seq>/fold<k>/  a part: checkpoints, logs, maps, tables, done.json
    runs/<run-id>/per_volume.csv ...     the run-level tables: every finished part's rows
    runs/<run-id>/experiments/<name>/    outputs of `benchmark experiment <name>`
    runs/<run-id>/launch/<job-id>/       a launcher's job files (submitit: pickles, logs)

Every reader and writer goes through :class:`RunDir` (``run.py``) and :class:`Part`
(``part.py``, which lists a part's files): nothing else spells these paths or globs the
tree. Files are written atomically (benchmark.atomic); launches and parts are held with OS
locks that name their holder (benchmark.locks).
"""
from ..locks import PartClaimedError, RunLockedError
from .part import RESULT_FILES, Part
from .run import RunDir, new_run_id

__all__ = ["RESULT_FILES", "Part", "PartClaimedError", "RunDir", "RunLockedError",
           "new_run_id"]
