from __future__ import annotations

import json

import pytest

from tsdiff.config import TSDiffConfig
from tsdiff.errors import ConfigError


def test_round_trip_through_dict_and_json(tmp_path):
    cfg = TSDiffConfig().replace(
        data={"window": 36, "freq": "1h"},
        train={"mix_weights": (0.5, 0.5, 0.0, 0.0), "max_minutes": 2.5},
        sample={"levels": (50, 80, 95)},
    )
    assert TSDiffConfig.from_dict(cfg.to_dict()) == cfg
    path = tmp_path / "cfg.json"
    path.write_text(cfg.to_json())
    assert TSDiffConfig.from_file(path) == cfg


def test_toml_file_with_partial_sections(tmp_path):
    path = tmp_path / "cfg.toml"
    path.write_text("[network]\nchannels = 48\nheads = 4\n[train]\nepochs = 7\n")
    cfg = TSDiffConfig.from_file(path)
    assert cfg.network.channels == 48 and cfg.train.epochs == 7
    assert cfg.data == TSDiffConfig().data


def test_unknown_keys_are_rejected_by_name(tmp_path):
    with pytest.raises(ConfigError, match="chanels"):
        TSDiffConfig.from_dict({"network": {"chanels": 3}})
    with pytest.raises(ConfigError, match="netwrok"):
        TSDiffConfig.from_dict({"netwrok": {}})


@pytest.mark.parametrize(
    "section,changes,needle",
    [
        ("network", {"channels": 30, "heads": 4}, "divisible"),
        ("data", {"window": 1}, "window"),
        ("data", {"window": 10, "inference_stride": 11}, "inference_stride"),
        ("diffusion", {"schedule": "sigmoid"}, "schedule"),
        ("train", {"masking": "everything"}, "masking"),
        ("train", {"holdout": "blocks"}, "holdout"),
        ("train", {"loss": "huber"}, "loss must be one of"),
        ("sample", {"levels": (0, 50)}, "levels"),
        ("sample", {"sampler": "euler"}, "sampler"),
        ("network", {"lags": (0, 24)}, "lags"),
        ("network", {"lags": (24, 24)}, "lags"),
        ("network", {"lags": (24.0,)}, "lags"),
    ],
)
def test_invalid_values_raise_config_error(section, changes, needle):
    with pytest.raises(ConfigError, match=needle):
        TSDiffConfig().replace(**{section: changes})


def test_config_is_frozen():
    cfg = TSDiffConfig()
    with pytest.raises(AttributeError):
        cfg.data.window = 3  # type: ignore[misc]


def test_unparseable_file_names_itself(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="bad.json"):
        TSDiffConfig.from_file(path)
    assert json.loads(TSDiffConfig().to_json())["sample"]["levels"] == [50, 90]


def test_lags_round_trip_and_set_the_history_read_before_each_window():
    cfg = TSDiffConfig().replace(network={"lags": [24, 168, 48]})
    assert cfg.network.lags == (24, 168, 48) and cfg.network.history_steps == 168
    assert TSDiffConfig.from_dict(json.loads(cfg.to_json())) == cfg
    assert TSDiffConfig().network.history_steps == 0


def test_renamed_fields_of_saved_configs_still_load():
    old = TSDiffConfig().to_dict()
    data = old["data"]
    data["stride"], data["train_stride"] = data.pop("inference_stride"), data.pop("training_stride")
    data["stride"], data["train_stride"] = 5, 3
    cfg = TSDiffConfig.from_dict(old)
    assert (cfg.data.inference_stride, cfg.data.training_stride) == (5, 3)
    assert cfg.data.stride("inference") == 5 and cfg.data.stride("training") == 3
    assert TSDiffConfig().data.stride("training") == TSDiffConfig().data.window // 2


def test_a_saved_config_lacking_a_newer_field_loads_what_it_was_trained_with(tmp_path):
    """Fields added later whose default changed what fit does: a saved model without
    them was trained the old way; a config file without them gets today's default."""
    old = TSDiffConfig().to_dict()
    for field in ("select_by", "calibrate_intervals", "loss"):
        del old["train"][field]
    del old["network"]["prior_layers"]
    saved = TSDiffConfig.from_saved(old)
    assert saved.train.select_by == "loss" and saved.train.calibrate_intervals is False
    assert saved.train.loss == "mse"
    assert saved.network.prior_layers == 0
    fresh = TSDiffConfig.from_dict(old)
    assert fresh.train.select_by == TSDiffConfig().train.select_by == "crps"
    assert fresh.train.calibrate_intervals is True
    # a field the saved config has wins over the legacy value
    now = TSDiffConfig().to_dict()
    assert TSDiffConfig.from_saved(now) == TSDiffConfig()
    with pytest.raises(ConfigError):
        TSDiffConfig.from_saved({"train": 3})


def test_task_impute_trains_gap_masks_only_with_the_quantile_prior() -> None:
    cfg = TSDiffConfig()
    assert cfg.for_task("both") == cfg
    imp = cfg.for_task("impute")
    w = cfg.train.mix_weights
    assert imp.train.mix_weights == (*w[:3], 0.0) and imp.train.forecast_share == 0.0
    assert cfg.train.forecast_share == w[3] / sum(w) > 0
    assert imp.network.prior_quantiles and not cfg.network.prior_quantiles
    assert imp.replace(train={"epochs": 3}).train.mix_weights == imp.train.mix_weights
    # without a learned prior there is no quantile prior to add: the masks alone change
    plain = cfg.replace(network={"prior_layers": 0}).for_task("impute")
    assert not plain.network.prior_quantiles and plain.train.forecast_share == 0.0
    with pytest.raises(ConfigError, match="task must be one of"):
        cfg.for_task("forecast")
    with pytest.raises(ConfigError, match="no other mask"):
        cfg.replace(train={"mix_weights": (0.0, 0.0, 0.0, 1.0)}).for_task("impute")


def test_task_impute_models_moderately_skewed_variables_in_logs() -> None:
    """An imputer's threshold is IMPUTE_LOG_SKEW; a forecaster keeps the default (week-
    ahead forecasts in logs were worse); a threshold the user set is never overridden."""
    from tsdiff.config import IMPUTE_LOG_SKEW
    from tsdiff.spec import LOG_SKEW

    cfg = TSDiffConfig()
    assert cfg.variables.log_skew == LOG_SKEW > IMPUTE_LOG_SKEW
    assert cfg.for_task("impute").variables.log_skew == IMPUTE_LOG_SKEW
    assert cfg.for_task("both").variables.log_skew == LOG_SKEW
    mine = cfg.replace(variables={"log_skew": 3.0}).for_task("impute")
    assert mine.variables.log_skew == 3.0
    again = TSDiffConfig.from_dict(cfg.for_task("impute").to_dict())
    assert again.variables.log_skew == IMPUTE_LOG_SKEW  # saved with the model, round trip
