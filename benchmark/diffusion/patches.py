"""pDDPM's patches (Behrendt et al., MIDL 2023): a fixed grid of non-overlapping boxes.

With patch 48 on a 96x96 slice the stride equals the patch size, so the grid is 2x2 and
the boxes tile the slice exactly once. Boxes are (y0, y1, x0, x1), half-open.
"""
from __future__ import annotations

import torch
from torch import Tensor

Box = tuple[int, int, int, int]


def grid_boxes(height: int, width: int, patch: int) -> list[Box]:
    """Row-major boxes of a patch x patch grid with stride = patch.

    The slice must be a multiple of the patch so the boxes cover it exactly once."""
    if patch <= 0 or height % patch or width % patch:
        raise ValueError(
            f"patch_size={patch} must divide the slice size {height}x{width} "
            "(pDDPM tiles the slice with a non-overlapping grid)"
        )
    return [
        (y, y + patch, x, x + patch)
        for y in range(0, height, patch)
        for x in range(0, width, patch)
    ]


def box_masks(boxes: list[Box], which: Tensor, height: int, width: int) -> Tensor:
    """which: (N,) index into boxes -> (N, 1, H, W) float mask, 1 inside each item's box."""
    rows = torch.arange(height, device=which.device)[:, None]
    cols = torch.arange(width, device=which.device)[None, :]
    table = torch.tensor(boxes, device=which.device)[which]  # (N, 4)
    y0, y1, x0, x1 = (table[:, i, None, None] for i in range(4))
    inside = (rows >= y0) & (rows < y1) & (cols >= x0) & (cols < x1)
    return inside[:, None].float()
