"""`python -m benchmark.leaderboard RUN_DIR ... --out DIR` (same as the benchmark CLI)."""

import argparse
import sys

from . import configure_parser, main

if __name__ == "__main__":
    parser = configure_parser(argparse.ArgumentParser(prog="python -m benchmark.leaderboard"))
    sys.exit(main(parser.parse_args()))
