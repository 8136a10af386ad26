"""``python -m benchmark list``: the registered methods, from the registry's cards.

Name, family and paper come from each method's registration, read without importing it
(benchmark.registry.method_cards): no torch, no network, nothing written. ``--params``
adds each method's parameter count at ``--profile``: every method is imported and built
for its shapes only (on PyTorch's meta device, no pretrained weights looked up or
downloaded), which takes seconds.
"""
from __future__ import annotations

import argparse

from ..profiles import PROFILES


def configure_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("--params", action="store_true",
                   help="also count each method's parameters at --profile (imports and "
                        "builds every method with shapes only: no weights are loaded or "
                        "downloaded; seconds)")
    p.add_argument("--profile", default="paper", choices=tuple(PROFILES),
                   help="the profile whose network sizes --params counts (default paper)")


def count_parameters(name: str, profile: str) -> int:
    """Parameters of method ``name`` as built for ``profile`` (shapes only: meta device,
    no pretrained weights)."""
    import torch

    from ..backbones import shapes_only
    from ..registry import get_method

    cls = get_method(name)
    with shapes_only():
        try:
            with torch.device("meta"):
                method = cls.from_profile(profile)
        except (NotImplementedError, RuntimeError):  # a constructor that computes values
            method = cls.from_profile(profile)
    return method.n_params()


def main(args: argparse.Namespace) -> int:
    from ..registry import method_cards

    header = ["method", "family", "paper"]
    rows = [[c.name, c.family, c.paper] for c in method_cards()]
    if args.params:
        header.append(f"#params ({args.profile})")
        for row in rows:
            try:
                row.append(f"{count_parameters(row[0], args.profile):,}")
            except Exception as exc:  # noqa: BLE001 - one method that cannot be built
                row.append(f"n/a ({type(exc).__name__}: {exc})"[:60])
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())
    if not args.params:
        print("\n#params: python -m benchmark list --params [--profile paper|reference|quick|"
              "smoke]")
    return 0
