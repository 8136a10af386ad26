"""The paper's experiments on a finished run: ``python -m benchmark experiment <name>``.

Every module here that defines ``configure_parser(parser)`` and ``main(args) -> int`` is a
command (underscores become dashes): noise-levels (Fig. 6), conditioning (Fig. 3),
histograms (Fig. 4). Each writes a CSV and a PNG under ``<run>/experiments/<name>/``.
"""
