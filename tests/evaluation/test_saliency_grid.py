"""The saliency grid: true and predicted class, one signed colour scale per column (or one for the grid)
with a colour bar, one row per example and one column per method."""

import numpy as np
import torch

from rxlit.evaluation.saliency import GAP, HEADER, LABEL, LINE, saliency_grid

UP = 12  # an 8x8 input is upsampled 12x to a 96-pixel cell


def cell_pixel(grid, row: int, col: int, i: int, j: int, title: bool = True) -> list[int]:
    """The colour of input pixel (i, j) in grid cell (row, col); column 0 is the input."""
    top = HEADER + (LINE if title else 0)
    cell = 8 * UP
    y0, x0 = top + row * (cell + GAP), LABEL + col * (cell + GAP)
    return grid[y0 + i * UP + UP // 2, x0 + j * UP + UP // 2].tolist()


def maps() -> dict:
    a = torch.zeros(2, 1, 8, 8)
    a[0, 0, 0, 0], a[1, 0, 0, 0], a[1, 0, 0, 1] = 2.0, 1.0, -1.0  # row 1's own max is half the column's
    b = torch.zeros(2, 1, 8, 8)
    b[0, 0, 0, 0] = 4.0
    return {"grad": a, "lime": b}


def test_column_scale_is_shared_by_the_rows():
    grid = saliency_grid(torch.rand(2, 1, 8, 8), torch.tensor([3, 5]), maps(), title="t")
    assert cell_pixel(grid, 0, 1, 0, 0) == [255, 0, 0]        # column max: full red
    assert cell_pixel(grid, 1, 1, 0, 0) == [255, 128, 128]    # half the column max: half red, not full
    assert cell_pixel(grid, 1, 1, 0, 1) == [128, 128, 255]    # negative: blue
    assert cell_pixel(grid, 1, 1, 5, 5) == [255, 255, 255]    # zero: white
    assert cell_pixel(grid, 0, 2, 0, 0) == [255, 0, 0]        # lime has its own column scale


def test_global_scale_and_colour_bar():
    grid = saliency_grid(torch.rand(2, 1, 8, 8), torch.tensor([3, 5]), maps(), title="t", scale="global")
    assert cell_pixel(grid, 0, 1, 0, 0) == [255, 128, 128]    # grad's 2 on lime's scale of 4
    assert cell_pixel(grid, 0, 2, 0, 0) == [255, 0, 0]
    cell = 8 * UP
    bar_y = HEADER + LINE + 2 * (cell + GAP) + 2 + 6
    bar_x0 = LABEL + cell + GAP
    bar = grid[bar_y, bar_x0:bar_x0 + 2 * (cell + GAP) - GAP]
    assert bar[0].tolist() == [0, 0, 255] and bar[-1].tolist() == [255, 0, 0]   # blue -1 ... red +1
    middle = bar[len(bar) // 2].tolist()
    assert min(middle) >= 250  # white at 0


def label_pixels(grid, row: int) -> np.ndarray:
    cell = 8 * UP
    y0 = HEADER + LINE + row * (cell + GAP)
    return grid[y0:y0 + cell, :LABEL].reshape(-1, 3).astype(int)


def test_true_and_predicted_class_labels():
    y, pred = torch.tensor([3, 5]), torch.tensor([3, 1])
    grid = saliency_grid(torch.rand(2, 1, 8, 8), y, maps(), title="t", pred=pred)
    right, wrong = label_pixels(grid, 0), label_pixels(grid, 1)
    greenish = lambda p: ((p[:, 1] > 80) & (p[:, 0] < 60) & (p[:, 2] < 60)).sum()  # noqa: E731
    reddish = lambda p: ((p[:, 0] > 150) & (p[:, 1] < 60) & (p[:, 2] < 60)).sum()  # noqa: E731
    assert greenish(right) > 5 and reddish(right) == 0       # correct prediction: green
    assert reddish(wrong) > 5 and greenish(wrong) == 0        # wrong prediction: red
    without = saliency_grid(torch.rand(2, 1, 8, 8), y, maps(), title="t")
    assert reddish(label_pixels(without, 1)) == 0 and greenish(label_pixels(without, 0)) == 0
