"""Typed, frozen configuration saved with every model.

A saved model rebuilds itself from its own config (no code defaults are consulted at
load time), so changing a default here never changes an existing model. Configs load
from JSON or TOML files; unknown keys are errors, not silently ignored.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

from tsdiff.errors import ConfigError
from tsdiff.samplers.options import CHECKED, check_sample_options
from tsdiff.spec import LOG_SKEW

T = TypeVar("T")

SCHEDULES = ("quadratic", "linear", "cosine")
TASKS = ("both", "impute")  # what a model is trained for (TSDiffConfig.for_task)
# an imputer's log threshold: PM2.5 stations (skewness 1.4-1.9) imputed 3.7 % better in
# logs at two seeds, PhysioNet even; week-ahead forecasts in logs were worse (design.md)
IMPUTE_LOG_SKEW = 1.0
PREDICTIONS = ("x0", "eps")
TOKENS = ("cells", "steps")
WINDOW_SCALES = ("none", "standard")  # see tsdiff.window_scale
WEIGHTINGS = ("min_snr", "uniform")
LOSSES = ("mse", "l1")
MASKINGS = ("random", "historical", "block", "forecast", "mix")
AGGREGATIONS = ("last", "mean")


@dataclass(frozen=True)
class DataConfig:
    """How a frame becomes windows: column names, grid and window geometry."""

    window: int = 48  # L, time steps the network sees at once
    # steps between the starts of overlapping windows; None = window // 2
    inference_stride: int | None = None  # when imputing and forecasting
    training_stride: int | None = None  # when cutting training windows
    freq: str | None = None  # grid step ("1h", "15min", or a number for numeric time); None = infer
    agg: str = "last"  # how several raw timestamps in one grid bin combine
    id_col: str = "series_id"
    time_col: str = "timestamp"
    var_col: str = "variable"
    value_col: str = "value"
    # inputs only, never imputed or forecast (tsdiff.covariates): columns given for the
    # history and for every step to forecast, and values constant within each series
    future_covariates: tuple[str, ...] = ()
    static_covariates: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check(self.window >= 2, f"window must be >= 2, got {self.window}")
        names = [*self.future_covariates, *self.static_covariates]
        _check(
            all(isinstance(n, str) and n for n in names) and len(set(names)) == len(names),
            f"covariate names must be distinct non-empty strings, got {names}",
        )
        reserved = {self.id_col, self.time_col, self.var_col, self.value_col} & set(names)
        _check(not reserved, f"covariates cannot be the id/time/variable/value column: {reserved}")
        for name in ("inference_stride", "training_stride"):
            v = getattr(self, name)
            _check(v is None or 1 <= v <= self.window, f"{name} must be in [1, window], got {v}")
        _check(self.agg in AGGREGATIONS, f"agg must be one of {AGGREGATIONS}, got {self.agg!r}")

    def stride(self, task: str) -> int:
        """The stride of ``task``'s windows ("training" or "inference"), None resolved."""
        given = {"training": self.training_stride, "inference": self.inference_stride}[task]
        return given or max(1, self.window // 2)


@dataclass(frozen=True)
class NetworkConfig:
    """Denoiser and prior size. CSDI's reference is 4 blocks, 64 channels, 8 heads; the
    default here is a learned prior refined by one block of 32 channels: on PhysioNet at
    a 5-minute CPU budget it imputes better than three blocks, 3.5x faster
    (benchmarks/results/design.md)."""

    # what a token of the denoiser is: "cells" (one per variable and step, attention
    # along time then along variables, as CSDI) or "steps" (one per time step holding
    # all K variables, attention along time only: K times fewer tokens, as the prior
    # and SAITS; channels is then the token width)
    tokens: str = "cells"
    channels: int = 32
    blocks: int = 1  # with a learned prior, one block refines it as well as three (measured)
    heads: int = 2
    ff_mult: int = 2  # feed-forward width = ff_mult * channels
    step_emb_dim: int = 128  # sinusoidal diffusion-step embedding
    time_emb_dim: int = 64  # sinusoidal position-in-window embedding
    var_emb_dim: int = 16  # learned per-variable embedding
    dropout: float = 0.0
    # > 0: cells after a variable's last shown value start from its value `season` steps
    # earlier (seasonal naive) instead of the last value; a prior the network corrects.
    # None: inferred at fit from the grid's step (tsdiff.seasonality; 24 for hourly data)
    # and saved resolved; 0: none
    season: int | None = None
    # steps back at which each cell also sees its variable's shown value (e.g. 24, 48, ..
    # 168 for a week of hourly days); lags may reach before the window, so the model
    # reads max(lags) steps of history before every window: its context is longer than
    # the window it imputes. None: inferred at fit (tsdiff.seasonality: one season, so
    # that the seasonal prior reaches before the window) and saved resolved
    lags: tuple[int, ...] | None = None
    # the prior the denoiser refines: 0 layers = linear interpolation (+ seasonal naive);
    # > 0 = a deterministic transformer over time steps (one token per step, all
    # variables in it) that corrects the interpolation and is trained first to impute
    # on its own (train.prior_*). The diffusion then only models what it leaves.
    prior_layers: int = 2
    prior_dim: int = 128
    prior_heads: int = 4
    prior_dropout: float = 0.1
    # a quantile prior beside it (tsdiff.prior.QuantilePriorNet): the prior's network with
    # a head per quantile level, trained after it by pinball loss; imputations blend its
    # quantiles with the samples' by a weight fitted on validation cells
    prior_quantiles: bool = False
    # side-information rows beside the calendar: the data's future and static
    # covariates (set at fit from data.*_covariates)
    covariates: int = 0
    # "standard": each window in units of the mean and standard deviation of its own
    # shown context, per variable (tsdiff.window_scale); "none": the global z-scores
    window_scale: str = "none"

    def __post_init__(self) -> None:
        _check(self.covariates >= 0, f"covariates must be >= 0, got {self.covariates}")
        _check(self.tokens in TOKENS, f"tokens must be one of {TOKENS}, got {self.tokens!r}")
        _check(
            self.window_scale in WINDOW_SCALES,
            f"window_scale must be one of {WINDOW_SCALES}, got {self.window_scale!r}",
        )
        _check(self.channels >= 4 and self.blocks >= 1, "channels >= 4 and blocks >= 1 required")
        _check(self.prior_layers >= 0, "prior_layers must be >= 0 (0: interpolation prior)")
        _check(
            self.prior_heads >= 1 and self.prior_dim % self.prior_heads == 0,
            f"prior_dim ({self.prior_dim}) must be a multiple of prior_heads >= 1",
        )
        _check(0 <= self.prior_dropout < 1, "prior_dropout must be in [0, 1)")
        _check(
            not self.prior_quantiles or self.prior_layers > 0,
            "prior_quantiles needs a learned prior (prior_layers > 0)",
        )
        _check(
            self.season is None or self.season >= 0,
            "season must be >= 0 (0: no seasonal prior; None: inferred at fit)",
        )
        lags = self.lags or ()
        _check(
            all(isinstance(g, int) and not isinstance(g, bool) and g >= 1 for g in lags)
            and len(set(lags)) == len(lags),
            f"lags must be distinct integers >= 1, got {list(lags)}",
        )
        _check(self.heads >= 1, f"heads must be >= 1, got {self.heads}")
        _check(self.channels % self.heads == 0, "channels must be divisible by heads")
        for name in ("step_emb_dim", "time_emb_dim"):
            _check(getattr(self, name) % 2 == 0, f"{name} must be even")

    @property
    def history_steps(self) -> int:
        """Steps before each window the network reads (for its lags): 0 without lags."""
        return max(self.lags or (), default=0)


@dataclass(frozen=True)
class DiffusionConfig:
    """The forward process (CSDI's: 50 steps, quadratic betas 1e-4 → 0.5) and the
    network's target."""

    num_steps: int = 50
    schedule: str = "quadratic"
    beta_start: float = 1e-4
    beta_end: float = 0.5
    # what the network predicts: "x0" (the clean values, as a correction of the linear
    # interpolation prior; fast to train) or "eps" (the noise, as CSDI)
    prediction: str = "x0"

    def __post_init__(self) -> None:
        _check(self.num_steps >= 1, "num_steps must be >= 1")
        _check(self.prediction in PREDICTIONS, f"prediction must be one of {PREDICTIONS}")
        _check(self.schedule in SCHEDULES, f"schedule must be one of {SCHEDULES}")
        _check(0 < self.beta_start < self.beta_end < 1, "need 0 < beta_start < beta_end < 1")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation, masking and the budget of a training run."""

    # None: 200 without a time budget; with one (max_minutes) the budget decides
    epochs: int | None = None
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 1e-6
    warmup_steps: int = 50
    grad_clip: float = 1.0
    # per-step loss weight: "min_snr" (Hang et al. 2023, γ = snr_gamma) or "uniform"
    loss_weighting: str = "min_snr"
    snr_gamma: float = 5.0
    # the denoiser's error on hidden cells: "mse" (its x_0 is the conditional mean) or
    # "l1" (the conditional median, what MAE scores): PM2.5 quick in raw values MAE
    # -1.9 %, in logs and on PhysioNet even (benchmarks/results/design.md p17-p20)
    loss: str = "mse"
    ema_decay: float = 0.999  # 0 disables the exponential moving average of weights
    masking: str = "mix"
    # weights of random / historical / block / forecast in the "mix" strategy
    mix_weights: tuple[float, float, float, float] = (0.4, 0.2, 0.2, 0.2)
    max_forecast_fraction: float = 0.5  # forecast masking hides up to this share of a window
    val_fraction: float = 0.1  # share of series (or windows, for few series) held out
    val_max_windows: int = 256
    val_crps_every: int = 5  # epochs between (sampled) validation CRPS; 0 disables
    # which weights training keeps: "crps" (the best sampled validation CRPS of the
    # tasks, imputation and forecasting weighted as the mask mix weighs them; measured
    # every val_crps_every epochs, or every epoch when that is 0) or "loss" (the best
    # validation denoising loss). "crps" measured better through the CLI defaults: CRPS
    # lower on 5 of 6 forecast frames/horizons (benchmarks/results/forecast-select-*.md);
    # the benchmark profiles keep "loss", as their results were measured with it
    select_by: str = "crps"
    max_minutes: float | None = None  # wall-clock budget; the lr schedule adapts to it
    # after training, widen/narrow the samples' spread around their median by the factor
    # that minimises CRPS on held-out validation cells (see TSDiff.calibrate)
    calibrate: bool = True
    calibrate_max_series: int = 400  # validation series sampled for it (a budget may stop it)
    # which validation cells the calibration hides: "random" (10 % of the observed cells,
    # as PhysioNet's protocol) or "pattern" (the cells another stretch of the data lacks:
    # gaps shaped like the data's own, as PM2.5's protocol; masks.hold_out_pattern)
    holdout: str = "random"
    # draws of held-out cells pooled for the fit (draw d hides with seed + d): one draw of
    # a few thousand cells is a noisy sample of the data's gaps; on `pm25-beijing-wide`
    # two single draws gave test CRPS 0.1150 / 0.1135, spread x2.38 / x1.68 (RESULTS.md)
    calibrate_draws: int = 1
    # one imputation factor per variable (those with >= 50 held-out cells; the rest keep
    # the overall factor): measured 1.9 % lower CRPS on PhysioNet test cells
    spread_per_variable: bool = True
    # per variable, the gate may refine the series' linear interpolation instead of the
    # network's prior, where validation cells find the interpolation better; and it
    # moves off that base only on evidence (2 standard errors, see calibration.fit_gate)
    gate_interpolation: bool = True
    # a variable keeps the gate fitted on all variables' cells unless its own cells give
    # evidence against it (calibration.fit_gate's pooled), instead of falling to its base:
    # recalibrating trained models, test MAE 12.22 → 11.78 µg/m³ on PM2.5 and 0.2374 →
    # 0.2369 on PhysioNet (benchmarks/results/recalibration-pm25.md, recalibration-vitals.md)
    gate_pooled: bool = True
    # fit the gate (and its base) per bucket of distance to the nearest observation
    # (tsdiff.gap_gate): a cell next to an observed value and one deep in an outage of
    # days need different weights of the model against interpolation. The same weights
    # recalibrated: PM2.5 quick model test MAE 11.31 → 10.88, CRPS 0.1317 → 0.1279;
    # the vitals model 0.2245 → 0.2247, CRPS 0.2488 both (benchmarks/results/
    # recalibration-pm25-gap.md, recalibration-vitals-gap.md)
    gate_by_gap: bool = True
    # then widen each imputation interval level by the factor that makes it cover what
    # it claims on those cells (split-conformal, calibration.fit_interval_scale): the
    # CRPS-optimal spread left PhysioNet's 90 % intervals covering 0.81
    calibrate_intervals: bool = True
    # with forecast masks in the training mix: fit the forecast spread on forecasts from
    # origins in the validation series, not on imputed cells (whose gate makes them
    # easier than forecasts). Off: on PM2.5 through the CLI defaults it brought 90 %
    # coverage from 0.82 to 0.91 but CRPS from 0.335 to 0.346 (a short validation tail)
    calibrate_forecast: bool = False
    # with forecast masks in the training mix: per variable, weigh the forecasts' median
    # against seasonal naive (calibration.fit_gate on validation forecast origins, moving
    # off seasonal naive only on evidence), so that a model the budget left undertrained
    # forecasts no worse than seasonal naive there
    forecast_gate: bool = True
    # a learned prior (network.prior_layers > 0) trains alone first, for at most this
    # share of the time budget (or prior_epochs), keeping its best validation MAE and
    # stopping after prior_patience epochs without improvement; then it is frozen
    prior_fraction: float = 0.6
    prior_epochs: int = 100
    prior_patience: int = 5
    prior_lr: float = 1e-3
    # a quantile prior (network.prior_quantiles) then trains from the prior's weights for
    # at most this share of the budget (prior_epochs, prior_patience; a third of prior_lr)
    quantile_fraction: float = 0.2
    seed: int = 0

    @property
    def forecast_share(self) -> float:
        """The share of forecasting among the training masks (0: a model trained to
        impute only, never shown a masked future)."""
        if self.masking == "forecast":
            return 1.0
        if self.masking != "mix":
            return 0.0
        return float(self.mix_weights[3]) / float(sum(self.mix_weights))

    @property
    def epoch_cap(self) -> int:
        """The most epochs to run: ``epochs``, or with None 200 without a budget and no
        cap with one (the budget, not an epoch count, ends a timed run)."""
        if self.epochs is not None:
            return self.epochs
        return UNCAPPED if self.max_minutes else 200

    def __post_init__(self) -> None:
        _check(
            (self.epochs is None or self.epochs >= 1) and self.batch_size >= 1,
            "epochs and batch_size must be >= 1",
        )
        _check(self.masking in MASKINGS, f"masking must be one of {MASKINGS}")
        _check(self.select_by in SELECTIONS, f"select_by must be one of {SELECTIONS}")
        _check(self.holdout in HOLDOUTS, f"holdout must be one of {HOLDOUTS}")
        _check(self.loss_weighting in WEIGHTINGS, f"loss_weighting must be one of {WEIGHTINGS}")
        _check(self.loss in LOSSES, f"loss must be one of {LOSSES}")
        _check(len(self.mix_weights) == 4 and sum(self.mix_weights) > 0, "bad mix_weights")
        _check(0 <= self.val_fraction < 1, "val_fraction must be in [0, 1)")
        _check(0 <= self.ema_decay < 1, "ema_decay must be in [0, 1)")
        _check(self.max_minutes is None or self.max_minutes > 0, "max_minutes must be > 0")
        _check(0 < self.prior_fraction < 1, "prior_fraction must be in (0, 1)")
        _check(0 < self.quantile_fraction < 1, "quantile_fraction must be in (0, 1)")
        _check(self.prior_epochs >= 1 and self.prior_patience >= 1, "prior_epochs/patience >= 1")
        _check(self.prior_lr > 0, "prior_lr must be > 0")
        _check(self.calibrate_draws >= 1, "calibrate_draws must be >= 1")


SELECTIONS = ("loss", "crps")
HOLDOUTS = ("random", "pattern")
UNCAPPED = 10**9  # TrainConfig.epoch_cap with a time budget: the budget ends the run


@dataclass(frozen=True)
class SampleConfig:
    """Default sampling options; every one can be overridden per call."""

    n_samples: int = 50
    steps: int = 4  # reverse steps; = num_steps with ddpm
    sampler: str = "ddim"
    eta: float = 1.0  # DDIM stochasticity: 0 deterministic, 1 = DDPM's variance
    clip: bool = True  # clamp clean-value estimates to the training range (+ margin)
    levels: tuple[int, ...] = (50, 90)
    batch_cells: int = 250_000  # rows × K × L per network call, to bound memory
    # arithmetic of the network while sampling: "bfloat16" runs a bfloat16 copy of it
    # (faster on CPUs with AVX512-BF16/AMX and on GPUs; its correction of the prior
    # carries ~3 significant digits); the prior and the scheduler stay float32
    precision: str = "bfloat16"

    def __post_init__(self) -> None:
        # the same checks as every per-call option
        check_sample_options(**{k: getattr(self, k) for k in CHECKED})


@dataclass(frozen=True)
class VariablesConfig:
    """What each variable can be (see :mod:`tsdiff.spec`): ``spec`` maps a variable name
    to any of ``lower``, ``upper`` (None: open), ``kind`` (continuous, integer, binary)
    and ``transform`` (identity, log, logit); they override what ``infer`` reads from the
    training data. ``transforms``: also infer log transforms for positive, right-skewed
    variables, those whose sample skewness exceeds ``log_skew`` (measured:
    benchmarks/results/transforms.md)."""

    infer: bool = True
    spec: dict[str, dict[str, Any]] = field(default_factory=dict)
    transforms: bool = True
    log_skew: float = LOG_SKEW

    def __post_init__(self) -> None:
        _check(isinstance(self.spec, dict), "variables.spec must map names to settings")
        _check(
            not isinstance(self.log_skew, bool)
            and isinstance(self.log_skew, int | float)
            and math.isfinite(self.log_skew),
            f"variables.log_skew must be a finite number, got {self.log_skew!r}",
        )
        for name, s in self.spec.items():
            _check(isinstance(s, dict), f"variables.spec[{name!r}] must be a mapping")
            bad = sorted(set(s) - {"lower", "upper", "kind", "transform"})
            _check(not bad, f"variables.spec[{name!r}]: unknown field(s) {bad}")


@dataclass(frozen=True)
class TSDiffConfig:
    """Everything needed to rebuild, retrain or rerun a model."""

    data: DataConfig = field(default_factory=DataConfig)
    network: NetworkConfig = field(default_factory=NetworkConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)
    variables: VariablesConfig = field(default_factory=VariablesConfig)

    def __post_init__(self) -> None:
        # across sections, so that a bad combination fails before training, not after
        # (DDPM visits every step, but the default steps still have to be valid per call)
        _check(
            self.sample.steps <= self.diffusion.num_steps,
            f"sample.steps ({self.sample.steps}) must be <= diffusion.num_steps "
            f"({self.diffusion.num_steps})",
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TSDiffConfig:
        if not isinstance(d, dict):
            raise ConfigError(f"a config must be a mapping, got {type(d).__name__}")
        parts = {f.name: f.type for f in fields(cls)}
        unknown = set(d) - set(parts)
        if unknown:
            raise ConfigError(f"unknown config section(s) {sorted(unknown)}; known: {list(parts)}")
        built = {name: _build(_SECTIONS[name], _renamed(name, d.get(name, {}))) for name in parts}
        return cls(**built)

    @classmethod
    def from_saved(cls, d: dict[str, Any]) -> TSDiffConfig:
        """The config of a saved model: a field it lacks was added after it was trained,
        so it takes the behaviour the model was trained with (``_SAVED_BEFORE``), not
        today's default (a config file's left-out fields do take today's)."""
        if isinstance(d, dict):
            d = {
                name: {**_SAVED_BEFORE.get(name, {}), **(d.get(name) or {})}
                if isinstance(d.get(name, {}), dict)
                else d[name]
                for name in {*d, *_SAVED_BEFORE}
            }
        return cls.from_dict(d)

    def for_task(self, task: str) -> TSDiffConfig:
        """This config for what the model will be used for (``TASKS``): "both" (as it
        is: imputation and forecasting), or "impute": no forecast masks in the training
        mix (its other masks keep their proportions) and, with a learned prior, the
        quantile prior whose quantiles imputations blend with the samples. Through the
        CLI at 2 minutes on PhysioNet, "impute" imputed with lower MAE and CRPS than
        "both", whose forecast masks and the quantile prior's missing budget share it
        trades for (``benchmarks/results/defaults-physionet-task-*.md``). An imputer
        also puts moderately skewed positive variables in logs (``IMPUTE_LOG_SKEW``,
        unless ``variables.log_skew`` was set to another value than the default)."""
        if task not in TASKS:
            raise ConfigError(f"task must be one of {TASKS}, got {task!r}")
        if task == "both":
            return self
        w = self.train.mix_weights
        if self.train.masking == "mix" and not sum(w[:3]) > 0:
            raise ConfigError(
                f"task 'impute' drops the forecast masks, and mix_weights {list(w)} has no "
                "other mask"
            )
        own = self.variables.log_skew != LOG_SKEW  # a threshold the user chose stays
        return self.replace(
            train={"mix_weights": (*w[:3], 0.0)},
            network={"prior_quantiles": self.network.prior_layers > 0},
            variables={"log_skew": self.variables.log_skew if own else IMPUTE_LOG_SKEW},
        )

    def replace(self, **sections: dict[str, Any]) -> TSDiffConfig:
        """A copy with some fields changed: ``cfg.replace(train={"epochs": 3})``."""
        d = self.to_dict()
        for name, changes in sections.items():
            if name not in d:
                raise ConfigError(f"unknown config section {name!r}")
            d[name] = {**d[name], **changes}
        return TSDiffConfig.from_dict(d)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_file(cls, path: str | Path) -> TSDiffConfig:
        """Read a JSON or TOML config; sections left out keep their defaults."""
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file not found: {p}")
        text = p.read_text()
        try:
            if p.suffix.lower() == ".toml":
                import tomllib

                d = tomllib.loads(text)
            else:
                d = json.loads(text)
        except (ValueError, ImportError) as e:
            raise ConfigError(f"cannot parse config {p}: {e}") from e
        return cls.from_dict(d)


# fields renamed since models were first saved: section → {old name: new name}
_RENAMED = {"data": {"stride": "inference_stride", "train_stride": "training_stride"}}


# fields added since models were first saved whose default changed what fit does:
# section → {field: what a model saved without the field was trained with}
_SAVED_BEFORE: dict[str, dict[str, Any]] = {
    # the interpolation, before the learned prior; one token per cell, before step tokens
    "network": {"prior_layers": 0, "tokens": "cells"},
    "train": {
        "select_by": "loss",
        "calibrate_intervals": False,
        "forecast_gate": False,
        "gate_pooled": False,
        "loss": "mse",  # every model saved before train.loss was trained so
    },
}


def _renamed(section: str, values: Any) -> Any:
    """A saved section with its fields' old names replaced by the current ones."""
    old = _RENAMED.get(section, {})
    if not isinstance(values, dict) or not old.keys() & values.keys():
        return values
    return {old.get(k, k): v for k, v in values.items()}


_SECTIONS: dict[str, type] = {
    "data": DataConfig,
    "network": NetworkConfig,
    "diffusion": DiffusionConfig,
    "train": TrainConfig,
    "sample": SampleConfig,
    "variables": VariablesConfig,
}


def _build(cls: type[T], d: dict[str, Any]) -> T:
    if not isinstance(d, dict):
        raise ConfigError(f"config section {cls.__name__} must be a mapping")
    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    unknown = set(d) - names
    if unknown:
        raise ConfigError(
            f"unknown {cls.__name__} field(s) {sorted(unknown)}; known: {sorted(names)}"
        )
    # JSON has no tuples: restore them so that a round trip compares equal
    clean = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
    try:
        return cls(**clean)
    except TypeError as e:
        raise ConfigError(f"bad {cls.__name__}: {e}") from e


def _check(ok: bool, msg: str) -> None:
    if not ok:
        raise ConfigError(msg)
