"""rxlit: do robust models give robust explanations for free, and at what cost in faithfulness?"""

__version__ = "0.1.0"


def evaluate(model, data="digits", *, mean=None, std=None, explain="default", n_examples=None, split="test",
             subset="stratified", seed=0, epoch=0, attack=None, device=None, output_dir=None, logger="none",
             data_options=None, name="model") -> dict:
    """Evaluate any classifier in memory: the explanation robustness / faithfulness matrix of
    ``scripts/eval.py`` (same numbers for the same weights, subset, seed and epoch key).

    Args:
        model: an ``nn.Module`` mapping images in [0, 1] (or, with ``mean``/``std``, raw [0, 1]
            images that are normalised first) to logits.
        data: a data set name of ``configs/data`` (``"digits"``, ``"cifar10"`` ...; options such as
            ``root`` via ``data_options``), an rxlit data module, or ``(x, y)`` tensors.
        mean, std: per-channel normalisation put in front of ``model``; None: the model takes
            [0, 1] images as they are.
        explain: an ``configs/explain`` name (``"default"``, ``"full"``), an explain config dict
            (``{"methods": {...}, "metrics": {...}, ...}``) or an ``EvalSpec``.
        n_examples, split, subset: the examples: ``subset="stratified"`` (class-balanced, seeded)
            or ``"first_n"`` (the first ``n_examples`` in order, as RobustBench).
        seed, epoch: the keys of every random number (same keys, same values).
        attack: robust-accuracy budget ``{eps, step, steps}``; None: the data set's.
        output_dir: where ``metrics.json``, ``metrics.md`` and ``saliency.png`` go (None: nowhere).
        logger: ``"none"``, ``"wandb"``, ``"csv"`` or ``"tensorboard"`` (needs ``output_dir``).

    Returns the ``metrics.json`` payload: ``summaries`` (``{key: {mean, ci_low, ci_high, n}}``),
    ``scalars``, the nested ``metrics`` view and the ``normalization`` used.
    """
    from rxlit.app.evaluate import evaluate_model

    return evaluate_model(model, data, mean=mean, std=std, explain=explain, n_examples=n_examples, split=split,
                          subset=subset, seed=seed, epoch=epoch, attack=attack, device=device,
                          output_dir=output_dir, logger=logger, data_options=data_options, name=name)
