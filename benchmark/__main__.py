"""``python -m benchmark``: see benchmark.cli."""
import sys

from .cli import main

sys.exit(main())
