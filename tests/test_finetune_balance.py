"""Rare theme codes in the fine-tune's loss: positive weights per code (theme_balance)."""

from __future__ import annotations

from importlib.util import find_spec

import numpy as np
import pytest

from coder.embedded.finetune_config import FineTuneConfig
from coder.embedded.finetune_data import EncodedLabels
from coder.embedded.finetune_trainer import MAX_THEME_WEIGHT, theme_positive_weights


def labels(themes: np.ndarray, mask: np.ndarray | None = None) -> EncodedLabels:
    count = len(themes)
    return EncodedLabels(
        ids=[np.array([101, 102], np.int32)] * count,
        themes=themes.astype(np.float32),
        theme_mask=np.ones_like(themes, np.float32) if mask is None else mask,
        stance=np.full(count, -1),
        relevance=np.full(count, -1),
    )


def test_off_weighs_every_label_alike() -> None:
    themes = np.zeros((100, 3))
    themes[:2, 0] = 1
    assert theme_positive_weights(labels(themes), 0.0).tolist() == [1.0, 1.0, 1.0]
    assert theme_positive_weights(labels(np.zeros((5, 0))), 0.5).shape == (0,)


def test_rarer_codes_weigh_more_up_to_the_cap() -> None:
    themes = np.zeros((400, 4))
    themes[:200, 0] = 1  # as common as not: weight 1
    themes[:40, 1] = 1  # 360 / 40 = 9 -> sqrt 3
    themes[:4, 2] = 1  # 396 / 4 = 99 -> sqrt 9.95
    themes[:1, 3] = 1  # 399 -> sqrt 20 -> capped
    weights = theme_positive_weights(labels(themes), 0.5)
    assert weights[0] == pytest.approx(1.0)
    assert weights[1] == pytest.approx(3.0)
    assert weights[2] == pytest.approx(np.sqrt(99), rel=1e-5)
    assert weights[3] == MAX_THEME_WEIGHT
    # A stronger balance never weighs a code less.
    assert (theme_positive_weights(labels(themes), 1.0) >= weights).all()


def test_labels_outside_the_mask_are_not_counted() -> None:
    themes = np.zeros((100, 1))
    themes[:10, 0] = 1
    mask = np.ones_like(themes, np.float32)
    mask[50:] = 0  # uncertain: counted neither as positives nor negatives
    weights = theme_positive_weights(labels(themes, mask), 1.0)
    assert weights[0] == pytest.approx(40 / 10)


def test_balance_is_part_of_the_run_identity() -> None:
    assert FineTuneConfig(theme_balance=0.5).identity() != FineTuneConfig().identity()


@pytest.mark.slow
@pytest.mark.skipif(find_spec("jax") is None, reason="the 'finetune' extra is not installed")
def test_weighted_loss_counts_a_rare_positive_more() -> None:
    """The trainer's loss with balance: missing a rare code's positive costs more."""
    from coder.embedded.finetune_graph import load_float_graph
    from coder.embedded.finetune_trainer import Trainer

    themes = np.zeros((20, 2))
    themes[:10, 0] = 1
    themes[:1, 1] = 1
    data = labels(themes)
    graph = load_float_graph()
    losses = []
    for balance in (0.0, 1.0):
        config = FineTuneConfig(trainable_layers=1, batch_size=8, max_tokens=16)
        config.theme_balance = balance
        trainer = Trainer(graph, config, data)
        rows = np.arange(20)
        params = trainer.initial_parameters(rows)
        trainer.compile(trainer.optimizer(10))
        losses.append(trainer.evaluate(params, np.array([0])))
    assert trainer.theme_weights.tolist() == [1.0, MAX_THEME_WEIGHT]
    # Row 0 carries the rare code: its loss grows with the weight of that positive.
    assert losses[1] > losses[0]


def test_balance_off_keeps_the_identity_of_earlier_runs() -> None:
    assert "theme_balance" not in FineTuneConfig().identity()
