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


def _image(x: Tensor) -> np.ndarray:
    """(C, H, W) in [0, 1] -> an array imshow can draw (grey or RGB)."""
    x = x.detach().float().cpu().clamp(0, 1)
    return x[0].numpy() if x.shape[0] == 1 else x[:3].permute(1, 2, 0).numpy()


def saliency_figure(x: Tensor, y: Tensor, maps: dict[str, Tensor], title: str = ""):
    """A matplotlib Figure: the inputs, then each method's attribution summed over channels, red
    positive and blue negative, each map scaled to its own largest magnitude."""
    from matplotlib.figure import Figure

    n_rows, n_cols = x.shape[0], len(maps) + 1
    fig = Figure(figsize=(1.4 * n_cols, 1.4 * n_rows + 0.4), dpi=80)
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    for r in range(n_rows):
        axes[r, 0].imshow(_image(x[r]), cmap="gray", vmin=0, vmax=1)
        axes[r, 0].set_ylabel(f"y={int(y[r])}", fontsize=8)
        for c, phi in enumerate(maps.values(), start=1):
            heat = phi[r].detach().float().cpu().sum(0).numpy()
            scale = float(np.abs(heat).max()) or 1.0
            axes[r, c].imshow(heat, cmap="bwr", vmin=-scale, vmax=scale)
    for c, name in enumerate(["input", *maps]):
        axes[0, c].set_title(name, fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def figure_array(fig) -> np.ndarray:
    """The figure rendered to an (H, W, 3) uint8 array (what image loggers take)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()
