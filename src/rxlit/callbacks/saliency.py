"""A grid of saliency maps: a few fixed examples (rows) x the configured methods (columns)."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from rxlit.callbacks.evaluate import bound_method, explain_examples, resolve_targets
from rxlit.callbacks.spec import EvalSpec
from rxlit.explain.core import eval_mode


def pick_examples(y: Tensor, n: int) -> Tensor:
    """Positions of ``n`` examples: the first of each class in turn, so the grid shows many classes."""
    chosen: list[int] = []
    labels = y.tolist()
    for label in dict.fromkeys(labels):  # classes in order of first appearance
        chosen.append(labels.index(label))
    chosen += [i for i in range(len(labels)) if i not in chosen]
    return torch.tensor(chosen[:n], dtype=torch.long)


def saliency_maps(model: nn.Module, x: Tensor, y: Tensor, index: Tensor, spec: EvalSpec,
                  epoch: int) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
    """``(x, y, {method: explanations})`` of the first ``spec.n_saliency_examples`` picked examples,
    with the same keyed noise as the evaluation."""
    rows = pick_examples(y.cpu(), spec.n_saliency_examples).to(x.device)
    x, y, index = x[rows], y[rows], index[rows]
    devices = [x.device] if x.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), eval_mode(model), torch.enable_grad():
        target = resolve_targets(model, x, y, spec.target)
        maps = {method: explain_examples(model, x, target, bound_method(method, options), spec.seed, index, epoch)
                for method, options in spec.methods.items()}
    return x, y, maps


CELL = 64      # pixels per grid cell (inputs are upsampled by an integer factor, nearest neighbour)
GAP = 2        # white pixels between cells
HEADER = 14    # rows of pixels for the column names
LABEL = 34     # columns of pixels for the row labels
# Column titles that fit a 64-pixel cell in PIL's default font (about 10 characters).
SHORT_NAMES = {"integrated_gradients": "int. grad", "grad_x_input": "grad x in", "kernel_shap": "kernelSHAP",
               "guided_backprop": "guided bp", "noisy_baseline": "noisy base"}


def pick_maps(x: Tensor, y: Tensor, explanations: dict[str, Tensor], n: int
              ) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
    """The grid rows from explanations already computed for the whole subset (same keyed noise,
    so the same maps :func:`saliency_maps` would compute)."""
    rows = pick_examples(y.cpu(), n)
    return x[rows.to(x.device)], y[rows.to(y.device)], {m: phi[rows.to(phi.device)] for m, phi in explanations.items()}


def _upsample(img: np.ndarray) -> np.ndarray:
    """(H, W, 3) -> nearest-neighbour upsampled so the longer side is about CELL pixels."""
    factor = max(1, CELL // max(img.shape[:2]))
    return img.repeat(factor, axis=0).repeat(factor, axis=1)


def input_rgb(x: Tensor) -> np.ndarray:
    """(C, H, W) in [0, 1] -> (H, W, 3) floats: grey for one channel, the first three otherwise."""
    x = x.detach().float().cpu().clamp(0, 1)
    img = x[:1].expand(3, -1, -1) if x.shape[0] != 3 else x
    return img.permute(1, 2, 0).numpy()


def heat_rgb(phi: Tensor) -> np.ndarray:
    """An attribution summed over channels, scaled to its largest magnitude, in matplotlib's
    ``bwr`` colours: blue (0, 0, 1) for -1, white for 0, red (1, 0, 0) for +1."""
    heat = phi.detach().float().cpu().sum(0)
    v = (heat / (heat.abs().max().clamp_min(1e-12))).numpy()
    pos, neg = np.clip(v, 0, 1), np.clip(-v, 0, 1)
    return np.stack([1 - neg, 1 - pos - neg, 1 - pos], axis=-1)


def saliency_grid(x: Tensor, y: Tensor, maps: dict[str, Tensor], title: str = "") -> np.ndarray:
    """The grid as an (H, W, 3) uint8 image: one row per example (its input, then each method's
    attribution, red positive and blue negative, each scaled to its own largest magnitude), the
    method names on top and the labels on the left. Drawn with numpy and PIL: a fraction of
    matplotlib's cost, which matters inside the per-epoch cost budget."""
    from PIL import Image, ImageDraw

    rows = [[_upsample(input_rgb(x[r]))] + [_upsample(heat_rgb(phi[r])) for phi in maps.values()]
            for r in range(x.shape[0])]
    cell_h, cell_w = rows[0][0].shape[:2]
    n_cols = len(rows[0])
    top = HEADER * (2 if title else 1)
    grid = np.ones((top + len(rows) * (cell_h + GAP), LABEL + n_cols * (cell_w + GAP), 3), dtype=np.float32)
    for r, cells in enumerate(rows):
        for c, cell in enumerate(cells):
            y0, x0 = top + r * (cell_h + GAP), LABEL + c * (cell_w + GAP)
            grid[y0:y0 + cell_h, x0:x0 + cell_w] = cell
    image = Image.fromarray((grid * 255).round().astype(np.uint8))
    draw = ImageDraw.Draw(image)
    if title:
        draw.text((2, 1), title, fill=(0, 0, 0))
    for c, name in enumerate(["input", *maps]):
        short = SHORT_NAMES.get(name, name)[: max(4, cell_w // 6)]
        draw.text((LABEL + c * (cell_w + GAP) + 1, top - HEADER + 1), short, fill=(0, 0, 0))
    for r in range(len(rows)):
        draw.text((2, top + r * (cell_h + GAP) + cell_h // 2 - 5), f"y={int(y[r])}", fill=(0, 0, 0))
    return np.asarray(image).copy()


def save_png(grid: np.ndarray, path) -> None:
    from PIL import Image

    Image.fromarray(grid).save(path)
