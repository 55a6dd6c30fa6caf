"""A grid of saliency maps: a few fixed examples (rows) x the configured methods (columns)."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from rxlit.evaluation.engine import bound_method, explain_examples, resolve_targets
from rxlit.evaluation.spec import EvalSpec
from rxlit.explain.passes import eval_mode


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


CELL = 96      # pixels per grid cell (inputs are upsampled by an integer factor, nearest neighbour)
GAP = 4        # white pixels between cells
FONT_SIZE = 13
LINE = 16      # pixels per line of text
LABEL = 78     # columns of pixels for the row labels (true and predicted class)
HEADER = 2 * LINE + 2  # method name, then its colour scale
BAR = 3 * LINE  # colour bar and its caption under the grid
# Column titles that fit a cell (about 12 characters).
SHORT_NAMES = {"integrated_gradients": "int. grad", "grad_x_input": "grad x input", "kernel_shap": "kernelSHAP",
               "guided_backprop": "guided bp", "noisy_baseline": "noisy base"}
SCALES = ("column", "global")


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


def channel_sum(phi: Tensor) -> Tensor:
    return phi.detach().float().cpu().sum(0)


def bwr(v: np.ndarray) -> np.ndarray:
    """Values in [-1, 1] -> matplotlib's ``bwr`` colours: blue (0, 0, 1) at -1, white at 0, red (1, 0, 0) at +1."""
    pos, neg = np.clip(v, 0, 1), np.clip(-v, 0, 1)
    return np.stack([1 - neg, 1 - pos - neg, 1 - pos], axis=-1)


def heat_rgb(phi: Tensor, scale: float | None = None) -> np.ndarray:
    """An attribution summed over channels, divided by ``scale`` (default: its own largest magnitude),
    in ``bwr`` colours (see :func:`bwr`)."""
    heat = channel_sum(phi)
    scale = float(heat.abs().max()) if scale is None else float(scale)
    return bwr((heat / max(scale, 1e-12)).numpy())


def column_scales(maps: dict[str, Tensor], scale: str) -> dict[str, float]:
    """The magnitude mapped to full colour: per method over the rows shown (``column``), or one for
    the whole grid (``global``, for methods in the same units)."""
    if scale not in SCALES:
        raise ValueError(f"saliency scale must be one of {', '.join(SCALES)}, got {scale!r}")
    per = {m: max(float(phi.detach().float().sum(1).abs().max()), 1e-12) for m, phi in maps.items()}
    if scale == "global":
        top = max(per.values(), default=1.0)
        return dict.fromkeys(per, top)
    return per


def _font(size: int = FONT_SIZE):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _class_text(label: int, class_names) -> str:
    return str(class_names[label])[:9] if class_names is not None and 0 <= label < len(class_names) else str(label)


def _colour_bar(width: int) -> np.ndarray:
    ramp = np.linspace(-1.0, 1.0, width)[None, :].repeat(12, axis=0)
    return bwr(ramp)


def saliency_grid(x: Tensor, y: Tensor, maps: dict[str, Tensor], title: str = "", pred: Tensor | None = None,
                  class_names=None, scale: str = "column") -> np.ndarray:
    """The grid as an (H, W, 3) uint8 image: one row per example (its input, then one column per
    method), the true class (and the predicted one, red when wrong) on the left, method names on
    top. Attributions (summed over channels) share a signed colour scale: blue negative, white
    zero, red positive, full colour at each column's largest magnitude over the rows shown
    (``scale="global"``: one magnitude for the grid), printed under the method name; a colour bar
    and its caption sit below. Drawn with numpy and PIL, a fraction of matplotlib's cost, which
    matters inside the per-epoch cost budget."""
    from PIL import Image, ImageDraw

    scales = column_scales(maps, scale)
    rows = [[_upsample(input_rgb(x[r]))] + [_upsample(heat_rgb(phi[r], scales[m])) for m, phi in maps.items()]
            for r in range(x.shape[0])]
    cell_h, cell_w = rows[0][0].shape[:2]
    n_cols = len(rows[0])
    top = HEADER + (LINE if title else 0)
    height = top + len(rows) * (cell_h + GAP) + BAR
    grid = np.ones((height, LABEL + n_cols * (cell_w + GAP), 3), dtype=np.float32)
    for r, cells in enumerate(rows):
        for c, cell in enumerate(cells):
            y0, x0 = top + r * (cell_h + GAP), LABEL + c * (cell_w + GAP)
            grid[y0:y0 + cell_h, x0:x0 + cell_w] = cell
    bar_x0, bar_y0 = LABEL + cell_w + GAP, top + len(rows) * (cell_h + GAP) + 2
    bar_w = max(cell_w, (n_cols - 1) * (cell_w + GAP) - GAP) if maps else 0
    if bar_w:
        grid[bar_y0:bar_y0 + 12, bar_x0:bar_x0 + bar_w] = _colour_bar(bar_w)
    image = Image.fromarray((grid * 255).round().astype(np.uint8))
    draw, font = ImageDraw.Draw(image), _font()
    black = (0, 0, 0)
    if title:
        draw.text((2, 1), title, fill=black, font=font)
    for c, name in enumerate(["input", *maps]):
        x0 = LABEL + c * (cell_w + GAP) + 1
        draw.text((x0, top - HEADER + 1), SHORT_NAMES.get(name, name)[:14], fill=black, font=font)
        if name in scales:
            draw.text((x0, top - HEADER + LINE), f"\u00b1{scales[name]:.2g}", fill=(90, 90, 90), font=font)
    for r in range(len(rows)):
        y0 = top + r * (cell_h + GAP) + cell_h // 2 - LINE
        draw.text((2, y0), f"true {_class_text(int(y[r]), class_names)}", fill=black, font=font)
        if pred is not None:
            wrong = int(pred[r]) != int(y[r])
            draw.text((2, y0 + LINE), f"pred {_class_text(int(pred[r]), class_names)}",
                      fill=(200, 0, 0) if wrong else (0, 110, 0), font=font)
    if bar_w:
        ends = ("-1", "+1") if scale == "column" else (f"-{max(scales.values()):.2g}", f"+{max(scales.values()):.2g}")
        draw.text((bar_x0, bar_y0 + 13), ends[0], fill=black, font=font)
        draw.text((bar_x0 + bar_w // 2 - 3, bar_y0 + 13), "0", fill=black, font=font)
        draw.text((bar_x0 + bar_w - 8 * len(ends[1]), bar_y0 + 13), ends[1], fill=black, font=font)
        # the bar maps -1..+1 to the magnitude under each method name (column) or to one value (global)
        draw.text((2, bar_y0 - 2), "scale:", fill=black, font=font)
        draw.text((2, bar_y0 + 12), "per column" if scale == "column" else "global", fill=black, font=font)
    return np.asarray(image).copy()


def save_png(grid: np.ndarray, path) -> None:
    from PIL import Image

    Image.fromarray(grid).save(path)
