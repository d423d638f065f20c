from __future__ import annotations

import pytest
import torch

from tsdiff import masks


def observed(seed: int = 0, shape=(32, 5, 24), p: float = 0.6) -> torch.Tensor:
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed)) < p


@pytest.mark.parametrize("name", ["random", "historical", "block", "forecast", "mix"])
def test_strategies_only_hide_observed_cells_and_are_seeded(name):
    obs = observed()
    fn = masks.make_mask_fn(name)
    a = fn(obs, torch.Generator().manual_seed(1))
    b = fn(obs, torch.Generator().manual_seed(1))
    assert a.shape == obs.shape and a.dtype == torch.bool
    assert not (a & ~obs).any()  # never shows a missing cell
    assert torch.equal(a, b)
    assert (obs & ~a).any()  # something is left to learn from


def test_forecast_hides_a_tail_for_all_variables():
    obs = torch.ones(64, 3, 20, dtype=torch.bool)
    cond = masks.forecast_mask(obs, torch.Generator().manual_seed(0), max_fraction=0.5)
    for w in cond:
        hidden_steps = (~w).all(dim=0)  # (L,)
        h = int(hidden_steps.sum())
        assert 1 <= h <= 10
        assert hidden_steps[-h:].all() and not hidden_steps[:-h].any()
        assert torch.equal(w.all(dim=0), ~hidden_steps)


def test_block_masks_are_contiguous_runs():
    obs = torch.ones(64, 4, 30, dtype=torch.bool)
    cond = masks.block_mask(obs, torch.Generator().manual_seed(0))
    hidden = ~cond
    for w in hidden:
        for row in w:
            idx = torch.nonzero(row).flatten()
            if len(idx) and not row.all():
                # at most two runs: one of the variable, one shared by all variables
                breaks = int((idx[1:] - idx[:-1] > 1).sum())
                assert breaks <= 1
    assert hidden.any()


def test_historical_uses_another_windows_pattern():
    obs = observed(3)
    cond = masks.historical_mask(obs, torch.Generator().manual_seed(0))
    # each window's shown cells are the intersection with some window of the batch
    for i in range(obs.shape[0]):
        assert any(torch.equal(cond[i], obs[i] & obs[j]) for j in range(obs.shape[0]))


def test_holdout_hides_exact_share_per_window():
    obs = observed(4, shape=(16, 6, 30))
    hidden = masks.holdout_mask(obs, 0.1, torch.Generator().manual_seed(0))
    assert not (hidden & ~obs).any()
    per = hidden.reshape(16, -1).sum(1)
    expect = (obs.reshape(16, -1).sum(1).double() * 0.1).round().long()
    assert torch.equal(per, expect)
