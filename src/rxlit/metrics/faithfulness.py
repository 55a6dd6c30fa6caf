"""Faithfulness of an explanation: infidelity, Tan & Tian's faithfulness, deletion/insertion
curves and faithfulness correlation.

Each metric takes ``attributions`` (shape of ``x``) or computes them with
:func:`rxlit.explain.explain` from ``method`` and ``**method_options``. The perturbed inputs are
flattened into one batch of (examples x samples) rows and evaluated in chunks under
``torch.no_grad`` (these metrics need forward passes only).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from rxlit import rng, stats
from rxlit.explain.core import resolve_target
from rxlit.explain.registry import check_units, get_method, method_info
from rxlit.explain.registry import method_options as rxlit_method_options
from rxlit.metrics.engine import (
    default_chunk,
    evaluated,
    explain_rows,
    map_rows,
    model_output,
    row_examples,
    safe_div,
)
from rxlit.metrics.perturbations import (
    FlatStream,
    infidelity_perturbation,
    resolve_generator,
    resolve_groups,
)
from rxlit.metrics.registry import register_metric
from rxlit.rng import Generator


def _attributions(model, x, target, attributions, method, generator, options, chunk_size=None) -> Tensor:
    if attributions is None:
        chunk = default_chunk(x, chunk_size)
        return explain_rows(model, x, target, method, rng.spawn(generator), options, chunk).detach()
    if attributions.shape != x.shape:
        raise ValueError(f"attributions of shape {tuple(attributions.shape)} for inputs {tuple(x.shape)}")
    return attributions.detach().to(x.dtype)


def _forward(model, x, target, output) -> Tensor:
    with torch.no_grad():
        return model_output(model, x, target, output)


def group_sums(values: Tensor, labels: Tensor, n_groups: int) -> Tensor:
    """Sum of ``values`` (B, C, H, W) over channels and over each group's pixels -> (B, G)."""
    out = torch.zeros(values.shape[0], n_groups, device=values.device, dtype=values.dtype)
    return out.scatter_add_(1, labels.flatten(1), values.sum(1).flatten(1))


# --- Infidelity (Yeh et al., NeurIPS 2019) -------------------------------------------------------

@register_metric("infidelity", higher_is_better=False)
@evaluated
def infidelity(model: nn.Module, x: Tensor, target: Tensor | int | None = None, attributions: Tensor | None = None,
               perturbation: str | Callable = "noisy_baseline", n_samples: int | None = None,
               scale: float | None = None, normalize: bool = True, max_side: int = 10, output: str = "logit",
               method="grad", generator: Generator = None, chunk_size: int | None = None,
               seed: int | None = None, index=None, epoch: int = 0, method_options: dict | None = None, **options) -> Tensor:
    """Explanation infidelity (Yeh et al., NeurIPS 2019, Def. 2.1).

    ``INFD(phi, f, x) = E_I[(I^T phi - (f(x) - f(x - I)))^2]``, a Monte Carlo mean over
    ``n_samples`` perturbations ``I`` (100 by default; every square for ``"square"``), see
    :func:`~rxlit.metrics.perturbations.infidelity_perturbation` for the laws. With ``normalize``
    the explanation is first rescaled by the optimal
    ``beta = E[I^T phi (f(x) - f(x - I))] / E[(I^T phi)^2]`` (Yeh et al.'s code; Captum's
    ``infidelity(normalize=True)``; ``beta = 0`` when ``I^T phi`` is always 0). ``perturbation``
    may be a callable ``x_rows -> (I, x_rows - I)`` in Captum's convention, called on the
    flattened, repeat-interleaved inputs of each chunk.
    """
    method_options = {**(method_options or {}), **options}  # dict form: no name clashes
    target = resolve_target(model, x, target)
    generator = resolve_generator(generator, x.shape[0], seed, index, epoch)
    if callable(perturbation):
        if n_samples is None:
            raise ValueError("a callable perturbation needs n_samples")
        law, n = None, int(n_samples)
    else:
        law, n = infidelity_perturbation(perturbation, x.shape, n_samples, scale, max_side)
    B = x.shape[0]
    stream = FlatStream(generator, B, n)
    phi = _attributions(model, x, target, attributions, method, generator, method_options, chunk_size)
    f_x = _forward(model, x, target, output)
    phi_flat = phi.flatten(1)
    x_phi = (x.flatten(1) * phi_flat).sum(1)

    def chunk(rows: slice) -> Tensor:
        e = row_examples(rows, n, x.device)
        pert, x_minus_pert = perturbation(x[e]) if law is None else law(x, e, stream, rows)
        df = f_x[e] - _forward(model, x_minus_pert, target[e], output)
        if pert is None:  # I^T phi = x^T phi - (x - I)^T phi
            s = x_phi[e] - (x_minus_pert.flatten(1) * phi_flat[e]).sum(1)
        else:
            s = (pert.flatten(1) * phi_flat[e]).sum(1)
        return torch.stack([s, df], 1)

    pairs = map_rows(B * n, default_chunk(x, chunk_size), chunk)
    s, df = pairs[:, 0].view(B, n), pairs[:, 1].view(B, n)
    if normalize:
        beta = safe_div((s * df).mean(1), s.pow(2).mean(1))
        s = beta.unsqueeze(1) * s
    return (s - df).pow(2).mean(1)


# --- Tan & Tian's faithfulness -----------------------------------------------------------------

def inverse_l2(a: Tensor, b: Tensor) -> Tensor:
    """``1 / ||a - b||_2`` per row (Tan & Tian's main similarity); a zero distance gives 1/tiny."""
    return 1.0 / (a - b).norm(dim=1).clamp_min(torch.finfo(a.dtype).tiny)


def _per_row(statistic: Callable) -> Callable[[Tensor, Tensor], Tensor]:
    """A row-wise statistic of :mod:`rxlit.stats` (numpy, float64) as a function of two (rows, n)
    tensors, returning a tensor of their dtype and device."""
    def fn(a: Tensor, b: Tensor) -> Tensor:
        out = statistic(a.detach().cpu().double().numpy(), b.detach().cpu().double().numpy())
        return torch.as_tensor(out, device=a.device).to(a.dtype)

    fn.__name__ = statistic.__name__
    return fn


pearson = _per_row(stats.row_pearson)  # NaN where either row is constant (undefined)
spearman = _per_row(stats.row_spearman)  # Pearson of average ranks


SIMILARITIES = {"inverse_l2": inverse_l2, "pearson": pearson, "spearman": spearman}


PROTOCOLS = ("units", "paper")


def explanation_units(method, options: dict, units: str | None) -> tuple[str, object]:
    """``(units, broadcast)`` of an explanation: ``units`` when given, else the method's declared
    :class:`~rxlit.explain.MethodInfo` (see :func:`tan_faithfulness`)."""
    info = method_info(method, options)
    if units is not None:
        check_units(units)
        return units, info.broadcast if units == info.units else None
    if info.units is None:
        raise ValueError(f"the units of method {getattr(method, '__name__', method)!r} are not declared: pass "
                         "units='slope' (a gradient-like d f / d x) or units='attribution' (an output difference), "
                         "or declare it with rxlit.explain.declare")
    return info.units, info.broadcast


@register_metric("tan_faithfulness", higher_is_better=True)
@evaluated
def tan_faithfulness(model: nn.Module, x: Tensor, target: Tensor | int | None = None,
                     attributions: Tensor | None = None, groups: int | Tensor | str = 100,
                     similarity: str = "inverse_l2", reference: float | Tensor = 0.0, output: str = "logit",
                     protocol: str = "units", units: str | None = None,
                     method="grad", generator: Generator = None, chunk_size: int | None = None,
                     seed: int | None = None, index=None, epoch: int = 0, method_options: dict | None = None, **options) -> Tensor:
    """Faithfulness ``Sim(phi(x), reference)`` (Tan & Tian, ICML 2023, Sec. 6), ``Sim`` one of
    ``1 / ||a - b||_2`` (default), Pearson, Spearman.

    Over pixel groups ``G`` (``groups``: ~100 grid patches, ``"pixels"``, or a label map), with
    ``df_G = f(x) - f(x with G := r)`` (reference ``r``, 0 by default) and
    ``c_G = sum_{j in G} (x_j - r_j)`` (all channels)::

        slope units          phi_G = sum_{j in G} phi_j (x_j - r_j) / c_G    vs   p_G = df_G / c_G
        attribution units    a_G   = sum_{j in G} phi_j / m_j                vs   df_G

    ``protocol="units"`` (default) compares each explanation in its own units, the method's
    declared ``units`` (or the ``units`` argument): a slope (Grad, SmoothGrad, UniGrad, C-LIME) with
    Tan & Tian's slope ``p_i = (f(x) - f(x with x_i := r_i)) / (x_i - r_i)``, an attribution
    (Grad x Input, IG, occlusion, LIME, KernelSHAP) with the output difference
    ``p_i (x_i - r_i)``. ``m_j`` is 1 for a per-element attribution and the feature size for one
    whose value is the feature's output difference copied to its elements (LIME, KernelSHAP:
    ``MethodInfo.broadcast``). Comparing an attribution with a slope instead mixes units and rewards
    shrinking it. ``protocol="paper"`` is Tan & Tian's literal protocol: every explanation against
    the slope ``p``. Both forms are exact for a linear model (``phi = grad f`` in slope units,
    ``phi = grad f * (x - r)`` in attribution units: distance 0, correlations 1). Groups with
    ``c_G = 0`` (all pixels at the reference) get ``p_G = phi_G = 0`` in slope units (``df_G`` is 0).
    """
    method_options = {**(method_options or {}), **options}  # dict form: no name clashes
    if similarity not in SIMILARITIES:
        raise ValueError(f"unknown similarity {similarity!r}; valid: {sorted(SIMILARITIES)}")
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; valid: 'units' (each method in its own units) or "
                         "'paper' (Tan & Tian's: every method against the slope)")
    kind, broadcast = explanation_units(method, method_options, units)
    target = resolve_target(model, x, target)
    generator = resolve_generator(generator, x.shape[0], seed, index, epoch)
    phi = _attributions(model, x, target, attributions, method, generator, method_options, chunk_size)
    labels = resolve_groups(groups, x)
    G, B = int(labels.max()) + 1, x.shape[0]
    ref = torch.as_tensor(reference, device=x.device, dtype=x.dtype).expand_as(x)
    dx = x - ref
    f_x = _forward(model, x, target, output)

    def chunk(rows: slice) -> Tensor:
        e = row_examples(rows, G, x.device)
        g = torch.arange(rows.start, rows.stop, device=x.device) % G
        removed = (labels[e] == g.view(-1, 1, 1)).unsqueeze(1)
        return f_x[e] - _forward(model, torch.where(removed, ref[e], x[e]), target[e], output)

    df = map_rows(B * G, default_chunk(x, chunk_size), chunk).view(B, G)
    if protocol == "units" and kind == "attribution":
        if broadcast is not None:
            phi = phi / broadcast(x, {**resolved_method_options(method), **method_options})
        return SIMILARITIES[similarity](group_sums(phi, labels, G), df)
    c = group_sums(dx, labels, G)
    valid = c != 0
    p = torch.where(valid, df / torch.where(valid, c, 1), 0)
    phi_g = torch.where(valid, group_sums(phi * dx, labels, G) / torch.where(valid, c, 1), 0)
    return SIMILARITIES[similarity](phi_g, p)


def resolved_method_options(method) -> dict:
    """The method's option defaults (empty for a callable without a signature to read)."""
    try:
        return rxlit_method_options(get_method(method))
    except (TypeError, ValueError):
        return {}


# --- Deletion and insertion (Petsiuk et al., RISE, BMVC 2018) ----------------------------------

def _removal_auc(model, x, target, attributions, groups, n_steps, reference, output, insertion, method,
                 generator, chunk_size, seed, index, epoch, method_options) -> Tensor:
    target = resolve_target(model, x, target)
    generator = resolve_generator(generator, x.shape[0], seed, index, epoch)
    phi = _attributions(model, x, target, attributions, method, generator, method_options, chunk_size)
    labels = resolve_groups(groups, x)
    G, B = int(labels.max()) + 1, x.shape[0]
    K = int(n_steps or G)
    order = group_sums(phi, labels, G).argsort(dim=1, descending=True, stable=True)
    rank = torch.empty_like(order).scatter_(1, order, torch.arange(G, device=x.device).expand(B, G))
    pixel_rank = rank.gather(1, labels.flatten(1)).view(B, 1, *labels.shape[1:])
    ref = torch.as_tensor(reference, device=x.device, dtype=x.dtype).expand_as(x)

    def chunk(rows: slice) -> Tensor:
        e = row_examples(rows, K + 1, x.device)
        k = torch.arange(rows.start, rows.stop, device=x.device) % (K + 1)
        changed = pixel_rank[e] < (k * G // K).view(-1, 1, 1, 1)  # top groups after step k
        x_k = torch.where(changed, x[e], ref[e]) if insertion else torch.where(changed, ref[e], x[e])
        return _forward(model, x_k, target[e], output)

    curve = map_rows(B * (K + 1), default_chunk(x, chunk_size), chunk).view(B, K + 1)
    return (curve[:, 1:] + curve[:, :-1]).mean(1) / 2  # trapezoid rule on [0, 1]


@register_metric("deletion_auc", higher_is_better=False)
@evaluated
def deletion_auc(model: nn.Module, x: Tensor, target: Tensor | int | None = None, attributions: Tensor | None = None,
                 groups: int | Tensor | str = 100, n_steps: int | None = None, reference: float | Tensor = 0.0,
                 output: str = "prob", method="grad", generator: Generator = None, chunk_size: int | None = None,
                 seed: int | None = None, index=None, epoch: int = 0, method_options: dict | None = None, **options) -> Tensor:
    """Deletion AUC (Petsiuk et al., RISE, BMVC 2018): lower is more faithful.

    Groups are ranked by their summed attribution; at step ``k = 0..K`` (``K = n_steps``, default
    one group per step) the top ``floor(k G / K)`` groups are set to ``reference`` (0: black), and
    ``f`` (default the target's softmax probability) is recorded. Returns the trapezoid area under
    ``f`` against ``k / K`` in [0, 1].
    """
    method_options = {**(method_options or {}), **options}  # dict form: no name clashes
    return _removal_auc(model, x, target, attributions, groups, n_steps, reference, output, False, method,
                        generator, chunk_size, seed, index, epoch, method_options)


@register_metric("insertion_auc", higher_is_better=True)
@evaluated
def insertion_auc(model: nn.Module, x: Tensor, target: Tensor | int | None = None, attributions: Tensor | None = None,
                  groups: int | Tensor | str = 100, n_steps: int | None = None, reference: float | Tensor = 0.0,
                  output: str = "prob", method="grad", generator: Generator = None, chunk_size: int | None = None,
                  seed: int | None = None, index=None, epoch: int = 0, method_options: dict | None = None, **options) -> Tensor:
    """Insertion AUC (Petsiuk et al., RISE, BMVC 2018): higher is more faithful.

    Starts from ``reference`` (0 by default; pass a blurred image for RISE's variant) and inserts
    the groups of ``x`` in decreasing order of summed attribution; same steps and area as
    :func:`deletion_auc`.
    """
    method_options = {**(method_options or {}), **options}  # dict form: no name clashes
    return _removal_auc(model, x, target, attributions, groups, n_steps, reference, output, True, method,
                        generator, chunk_size, seed, index, epoch, method_options)


# --- Faithfulness correlation (Bhatt et al., IJCAI 2020) ---------------------------------------

@register_metric("faithfulness_correlation", higher_is_better=True)
@evaluated
def faithfulness_correlation(model: nn.Module, x: Tensor, target: Tensor | int | None = None,
                             attributions: Tensor | None = None, n_samples: int = 100,
                             subset_size: int | float = 0.1, groups: int | Tensor | str | None = None,
                             reference: float | Tensor = 0.0, output: str = "logit", method="grad",
                             generator: Generator = None, chunk_size: int | None = None,
                             seed: int | None = None, index=None, epoch: int = 0, method_options: dict | None = None, **options) -> Tensor:
    """Faithfulness correlation (Bhatt et al., IJCAI 2020, Def. 3).

    ``corr_S( sum_{i in S} phi_i , f(x) - f(x with x_S := reference) )`` (Pearson) over
    ``n_samples`` random subsets ``S`` of fixed size ``subset_size`` (an int, or a fraction of the
    features), drawn uniformly without replacement. Features are input entries (``groups=None``)
    or pixel groups (summed attributions, all channels set together).
    """
    method_options = {**(method_options or {}), **options}  # dict form: no name clashes
    target = resolve_target(model, x, target)
    generator = resolve_generator(generator, x.shape[0], seed, index, epoch)
    B, n = x.shape[0], n_samples
    stream = FlatStream(generator, B, n)
    phi = _attributions(model, x, target, attributions, method, generator, method_options, chunk_size)
    labels = None if groups is None else resolve_groups(groups, x)
    phi_f = phi.flatten(1) if labels is None else group_sums(phi, labels, int(labels.max()) + 1)
    n_feat = phi_f.shape[1]
    k = int(subset_size) if isinstance(subset_size, int) else max(1, round(subset_size * n_feat))
    ref = torch.as_tensor(reference, device=x.device, dtype=x.dtype).expand_as(x)
    f_x = _forward(model, x, target, output)

    def chunk(rows: slice) -> Tensor:
        e = row_examples(rows, n, x.device)
        chosen = stream.uniform(rows, (n_feat,), x.device).topk(k, dim=1).indices  # uniform k-subset
        mask = torch.zeros(e.numel(), n_feat, dtype=torch.bool, device=x.device).scatter_(1, chosen, True)
        s = (phi_f[e] * mask).sum(1)
        pix = mask.view_as(x[e]) if labels is None else mask.gather(1, labels[e].flatten(1)).view(-1, 1, *x.shape[2:])
        df = f_x[e] - _forward(model, torch.where(pix, ref[e], x[e]), target[e], output)
        return torch.stack([s, df], 1)

    pairs = map_rows(B * n, default_chunk(x, chunk_size), chunk)
    return pearson(pairs[:, 0].view(B, n), pairs[:, 1].view(B, n))
