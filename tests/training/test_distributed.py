"""rxlit.distributed: the DDP timeout setting and the error a hang turns into (no processes here;
the two-rank runs are in tests/evaluation/test_explain_ddp.py)."""

from datetime import timedelta

import pytest
from lightning.pytorch.strategies import DDPStrategy

from rxlit.app.train import make_callbacks
from rxlit.distributed import (
    CollectiveTimeoutError,
    collective_section,
    ddp_strategy,
    explain_collective_failure,
    is_collective_failure,
)


def test_ddp_strategy_carries_the_timeout():
    strategy = ddp_strategy("ddp", 0.5)
    assert isinstance(strategy, DDPStrategy) and strategy._timeout == timedelta(seconds=30)
    unused = ddp_strategy("ddp_find_unused_parameters_true", 2)
    assert unused._ddp_kwargs["find_unused_parameters"] is True and unused._timeout == timedelta(minutes=2)
    assert ddp_strategy("auto", 1) == "auto" and ddp_strategy("ddp", None) == "ddp"
    with pytest.raises(ValueError, match="timeout_min must be > 0"):
        ddp_strategy("ddp", 0)


def test_gloo_timeout_becomes_an_error_naming_the_section():
    gloo = RuntimeError("[gloo/transport/tcp/unbound_buffer.cc:78] Timed out waiting 18000ms for recv operation")
    assert is_collective_failure(gloo) and not is_collective_failure(RuntimeError("CUDA out of memory"))
    with pytest.raises(RuntimeError), collective_section(None, "the explanation evaluation of epoch 4"):
        raise gloo
    err = explain_collective_failure(gloo, None, 0.5, "ck/run/last.ckpt")
    assert isinstance(err, CollectiveTimeoutError)
    text = str(err)
    assert "waited longer than 0.5 min" in text and "the explanation evaluation of epoch 4" in text
    assert "resume with ckpt_path=ck/run/last.ckpt" in text and "trainer.timeout_min" in text
    # the section is reported once; a later failure elsewhere names Lightning's collectives
    assert "a Lightning collective" in str(explain_collective_failure(gloo, None, None, None))


def test_bad_progress_bar_and_user_callback_are_refused(make_cfg, tmp_path):
    from omegaconf import OmegaConf

    cfg = OmegaConf.to_container(make_cfg(["callbacks.progress_bar=fancy"]), resolve=True)
    with pytest.raises(ValueError, match="callbacks.progress_bar='fancy' is not one of rich, tqdm, none"):
        make_callbacks(cfg, tmp_path)
    cfg = OmegaConf.to_container(make_cfg(["callbacks.extra=[{_target_: collections.OrderedDict}]"]), resolve=True)
    with pytest.raises(ValueError, match="is not a lightning Callback"):
        make_callbacks(cfg, tmp_path)
