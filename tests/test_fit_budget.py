"""A fit's time budget (``train.max_minutes``) covers the whole fit: training stops early
enough for its final validation and for the calibration drawn after it."""

from __future__ import annotations

import time

import pytest

from tsdiff import estimator, inference, training
from tsdiff.config import DiffusionConfig, TrainConfig
from tsdiff.model import TSDiff
from tsdiff.scheduler import NoiseScheduler

from .conftest import tiny_config
from .test_forecast_gate import DAY, _seasonal
from .test_training import _net, windows


def test_training_keeps_the_validation_loss_free_before_any_sampled_validation(
    monkeypatch,
) -> None:
    """Before any sampled validation was due, the validation loss's own seconds are kept
    free of training steps, and no epoch begins that could not validate in time: the
    last epoch's steps end a loss's time before the budget, less a step (without the
    reserve they ran to the budget and the loss came after it)."""
    real = training.validation_loss

    def slow(*a, **k):
        time.sleep(1.2)
        return real(*a, **k)

    monkeypatch.setattr(training, "validation_loss", slow)
    cfg = TrainConfig(epochs=50, batch_size=8, max_minutes=0.06, val_crps_every=0, select_by="loss")
    _, res = train_run(cfg)
    assert res.stopped_by_budget
    # the steps end 1.2 s before the 3.6-s budget, less a step (allowed 0.6 s, for a
    # loaded machine); without the reserve they ran to the budget or past it
    assert res.epoch_log[-1]["seconds"] < 0.06 * 60 - 0.6, res.epoch_log


def train_run(cfg: TrainConfig):
    sch = NoiseScheduler(DiffusionConfig())
    return training.train(_net(), sch, windows(), windows(8, seed=1), cfg, progress=False)


@pytest.fixture(scope="module")
def counted():
    """A fit whose budget is spent before its calibration (which then draws its fewest),
    with every window sample drawn after training counted."""
    drawn: list[int] = []
    real = inference.sample_windows

    def counting(net, scheduler, batch, **k):
        drawn.append(len(batch.seeds) * k["n_samples"])
        return real(net, scheduler, batch, **k)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(inference, "sample_windows", counting)
        cfg = tiny_config(epochs=1, forecast_gate=True, calibrate_intervals=True)
        cfg = cfg.replace(network={"season": DAY}, train={"max_minutes": 0.005})
        model = TSDiff(cfg).fit(_seasonal().iloc[: 30 * DAY], progress=False)
    return model, sum(drawn)


def test_the_reserve_prices_the_fewest_draws_the_calibration_makes(counted) -> None:
    """The draws the reserve counts are those the calibration makes when its deadline
    has passed: a batch of imputations, a batch of forecasts, the far gate's."""
    model, drawn = counted
    reserve = model.info["calibration_reserve"]
    assert "far_gate" in model.info["forecast_calibration"]  # all three phases ran
    assert reserve["impute_draws"] + reserve["forecast_draws"] == drawn
    assert reserve["impute_draws"] > 0 and reserve["forecast_draws"] > 0
    assert reserve["seconds_per_draw"] > 0
    assert reserve["estimate"] == pytest.approx(drawn * reserve["seconds_per_draw"], abs=0.01)


def test_the_reserve_keeps_at_least_the_share_and_at_most_half_the_budget(counted) -> None:
    model, _ = counted
    reserve = model.info["calibration_reserve"]
    budget = model.config.train.max_minutes * 60
    assert reserve["share"] == pytest.approx(estimator.CALIBRATION_SHARE * budget, abs=0.01)
    want = min(max(reserve["share"], reserve["estimate"]), estimator.MAX_CALIBRATION_SHARE * budget)
    assert reserve["seconds"] == pytest.approx(want, abs=0.01)
    assert model.info["fit_seconds"] > 0


def test_a_fit_without_calibration_keeps_nothing_for_it() -> None:
    cfg = tiny_config(epochs=1, calibrate=False).replace(train={"max_minutes": 0.005})
    model = TSDiff(cfg).fit(_seasonal(days=10), progress=False)
    assert model.info["calibration_reserve"]["seconds"] == 0
    assert "calibration" not in model.info


def test_the_imputation_calibration_leaves_the_forecasts_their_priced_seconds(
    monkeypatch,
) -> None:
    """The imputation calibration draws batches until its deadline; that deadline is the
    fit's less the forecasts' priced fewest draws (before, a 1-minute PhysioNet fit's
    imputations used the time to the deadline and its 32 validation forecasts, 30 s,
    all came after it)."""
    seen: dict[str, float] = {}
    real = estimator.calibrate_imputation

    def spy(*a, **k):
        seen["deadline"] = k["deadline"]
        return real(*a, **k)

    monkeypatch.setattr(estimator, "calibrate_imputation", spy)
    clock = time.perf_counter
    cfg = tiny_config(epochs=1, forecast_gate=True).replace(
        network={"season": DAY}, train={"max_minutes": 0.05}
    )
    t0 = clock()
    model = TSDiff(cfg).fit(_seasonal().iloc[: 30 * DAY], progress=False)
    reserve = model.info["calibration_reserve"]
    priced = reserve["forecast_draws"] * reserve["seconds_per_draw"]
    end = seen["deadline"] + priced  # the fit's deadline: 3 s after its start
    assert t0 < end - 3 < t0 + 0.5  # the fit started just after t0


def test_a_resumed_fit_counts_the_prior_seconds_of_the_run_before(monkeypatch) -> None:
    """Resumed, the prior is loaded, not trained (next to no wall time): the denoiser's
    budget still leaves out the seconds the prior took in the run before, so the runs
    together keep the budget."""
    from tsdiff.prior_training import PriorResult

    seen: dict[str, float] = {}
    real = estimator.train
    monkeypatch.setattr(estimator, "train_prior", lambda *a, **k: PriorResult(seconds=30.0))

    def spy(net, scheduler, train_set, val_set, cfg, **k):
        seen["minutes"] = cfg.max_minutes
        return real(net, scheduler, train_set, val_set, cfg, **k)  # one epoch (tiny_config)

    monkeypatch.setattr(estimator, "train", spy)
    cfg = tiny_config(epochs=1).replace(network={"prior_layers": 1}, train={"max_minutes": 1.0})
    model = TSDiff(cfg).fit(_seasonal(days=10), progress=False)
    kept = model.info["calibration_reserve"]["seconds"]
    assert seen["minutes"] <= 1.0 - kept / 60 - 30.0 / 60 + 1e-9
    assert seen["minutes"] > 1.0 - kept / 60 - 30.0 / 60 - 0.05  # nothing else taken
