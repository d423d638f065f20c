"""The data contract: what to_panel accepts, what it rejects (and how it says so), and how
results come back as tables shaped like the input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tsdiff.data import (
    Columns,
    Freq,
    Scaler,
    calendar_features,
    forecast_frame,
    future_index,
    impute_frame,
    infer_freq,
    samples_frame,
    to_panel,
)
from tsdiff.errors import (
    ConfigError,
    DataError,
    DuplicateTimestampError,
    EmptyInputError,
    FrequencyError,
    MissingColumnError,
    NonNumericError,
    NoObservedValuesError,
    RangeError,
    TimestampError,
    UnknownVariableError,
)

RESOURCES = Path(__file__).resolve().parents[1] / "tsdiff" / "resources"
VITALS = ["HR", "SysABP", "DiasABP", "MAP", "Temp", "RespRate"]


@pytest.fixture(scope="module")
def pm25() -> pd.DataFrame:
    return pd.read_parquet(RESOURCES / "pm25_ground_slice.parquet")


@pytest.fixture(scope="module")
def physionet() -> pd.DataFrame:
    return pd.read_parquet(RESOURCES / "physionet_slice.parquet")


@pytest.fixture(scope="module")
def vitals(physionet: pd.DataFrame) -> pd.DataFrame:
    """Vital signs of the slice; the raw data repeat a few (stay, minute, variable) rows,
    which the contract rejects, so keep the last of each."""
    v = physionet[physionet["variable"].isin(VITALS)]
    return v.drop_duplicates(["series_id", "timestamp", "variable"], keep="last")


def _long(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["series_id", "timestamp", "variable", "value"])


def _wide(n: int = 4, **cols: list) -> pd.DataFrame:
    df = pd.DataFrame({"timestamp": pd.date_range("2024-01-01", periods=n, freq="h")})
    for name, vals in (cols or {"a": list(range(n))}).items():
        df[name] = vals
    return df


def _impute_identity(panel) -> pd.DataFrame:
    vals = [s.values for s in panel.series]
    return impute_frame(panel, vals, [np.zeros(v.shape, dtype=bool) for v in vals], {})


# --------------------------------------------------------------------------- errors


def test_rejects_non_dataframe() -> None:
    with pytest.raises(DataError, match="DataFrame"):
        to_panel([1, 2, 3])  # type: ignore[arg-type]


def test_rejects_empty_table(pm25: pd.DataFrame) -> None:
    with pytest.raises(EmptyInputError, match="no rows"):
        to_panel(pm25.iloc[:0])


def test_rejects_unknown_layout_and_agg(pm25: pd.DataFrame) -> None:
    with pytest.raises(ConfigError, match="sideways"):
        to_panel(pm25, layout="sideways")
    with pytest.raises(ConfigError, match="median"):
        to_panel(pm25, agg="median")


def test_missing_time_column_lists_available(pm25: pd.DataFrame) -> None:
    with pytest.raises(MissingColumnError, match="'timestamp'") as e:
        to_panel(pm25.rename(columns={"timestamp": "when"}))
    assert "when" in str(e.value) and "station_001001" in str(e.value)


def test_long_layout_needs_value_column() -> None:
    df = pd.DataFrame({"timestamp": [0, 1], "variable": ["a", "a"], "val": [1.0, 2.0]})
    with pytest.raises(MissingColumnError, match="'value'"):
        to_panel(df, layout="long")


def test_unparseable_timestamp_is_quoted() -> None:
    df = pd.DataFrame(
        {
            "timestamp": ["2024-01-01 00:00", "2024-01-01 01:00", "yesterday-ish"],
            "a": [1.0, 2.0, 3.0],
        }
    )
    with pytest.raises(TimestampError, match="yesterday-ish"):
        to_panel(df)


def test_a_bare_runtime_error_from_the_time_parser_is_a_timestamp_error(monkeypatch) -> None:
    """pandas' object time parser raised RuntimeError("No active exception to reraise")
    on a fuzzed service request (a 500): any failure to parse is the user's bad value."""
    import tsdiff.data.grid as grid

    def broken(*args, **kwargs):
        raise RuntimeError("No active exception to reraise")

    monkeypatch.setattr(grid.pd, "to_datetime", broken)
    monkeypatch.setattr(grid.pd, "Timestamp", broken)
    df = pd.DataFrame({"timestamp": ["2024-01-01 00:00", "soon"], "a": [1.0, 2.0]})
    with pytest.raises(TimestampError, match="cannot parse time column 'timestamp'"):
        to_panel(df)


def test_mixed_time_zones_rejected() -> None:
    df = pd.DataFrame(
        {"timestamp": ["2024-01-01 00:00+01:00", "2024-01-01 01:00+02:00"], "a": [1.0, 2.0]}
    )
    with pytest.raises(TimestampError, match="time zones"):
        to_panel(df)
    aware_naive = pd.DataFrame(
        {
            "timestamp": pd.Series(
                [pd.Timestamp("2024-01-01", tz="UTC"), pd.Timestamp("2024-01-01 01:00")],
                dtype=object,
            ),
            "a": [1.0, 2.0],
        }
    )
    with pytest.raises(TimestampError, match="time zones"):
        to_panel(aware_naive)


def test_missing_timestamps_are_counted(pm25: pd.DataFrame) -> None:
    df = pm25.head(10).copy()
    df.loc[[2, 5], "timestamp"] = pd.NaT
    with pytest.raises(TimestampError, match="2 missing timestamp"):
        to_panel(df)
    numeric = pd.DataFrame({"timestamp": [0.0, np.nan, 2.0], "a": [1.0, 2.0, 3.0]})
    with pytest.raises(TimestampError, match="1 missing timestamp"):
        to_panel(numeric)


def test_time_kind_must_match_the_model(pm25: pd.DataFrame) -> None:
    with pytest.raises(TimestampError, match="expected numeric"):
        to_panel(pm25, time_kind="numeric")
    minutes = pd.DataFrame({"timestamp": [0, 60, 120], "a": [1.0, 2.0, 3.0]})
    with pytest.raises(TimestampError, match="expected datetime"):
        to_panel(minutes, time_kind="datetime")


def test_null_series_id_rejected() -> None:
    df = _long([(1, 0, "a", 1.0), (None, 1, "a", 2.0)])
    with pytest.raises(DataError, match="series_id"):
        to_panel(df)


def test_wide_extra_and_missing_variables(pm25: pd.DataFrame) -> None:
    stations = [c for c in pm25.columns if c != "timestamp"]
    with pytest.raises(UnknownVariableError, match="station_001008"):
        to_panel(pm25, variables=stations[:-1])
    with pytest.raises(UnknownVariableError, match="station_009999"):
        to_panel(pm25, variables=[*stations, "station_009999"])


def test_long_unknown_variable_named(vitals: pd.DataFrame) -> None:
    with pytest.raises(UnknownVariableError, match="'Temp'"):
        to_panel(vitals, freq=60, variables=["HR", "SysABP", "DiasABP", "MAP", "RespRate"])


def test_long_known_variables_follow_model_order(vitals: pd.DataFrame) -> None:
    model_vars = ["Temp", "HR", "Lactate", "SysABP", "DiasABP", "MAP", "RespRate"]
    panel = to_panel(vitals, freq=60, variables=model_vars)
    assert panel.variables == model_vars
    assert all(np.isnan(s.values[2]).all() for s in panel.series)  # Lactate: absent
    ref = to_panel(vitals, freq=60)
    s, r = panel.series[0], ref.series[0]
    np.testing.assert_array_equal(s.values[1], r.values[ref.variables.index("HR")])


def test_non_numeric_values_named() -> None:
    df = _wide(3, a=[1.0, 2.0, 3.0], b=["1.5", "high", "2"])
    with pytest.raises(NonNumericError, match="'b'") as e:
        to_panel(df)
    assert "1.5" in str(e.value)
    booleans = _wide(3, flag=[True, False, True])
    with pytest.raises(NonNumericError, match="'flag'"):
        to_panel(booleans)
    mixed = _wide(3, c=pd.Series([1, 2.5, True], dtype=object))
    with pytest.raises(NonNumericError, match="True"):
        to_panel(mixed)
    long = _long([(1, 0, "a", "x"), (1, 1, "a", 2.0)])
    with pytest.raises(NonNumericError, match="'value'"):
        to_panel(long)


def test_infinite_values_rejected() -> None:
    with pytest.raises(NonNumericError, match="infinite value"):
        to_panel(_wide(3, a=[1.0, np.inf, 3.0]))


def test_object_numbers_accepted_exactly() -> None:
    vals = pd.Series([1, 2.5, None, 0.1], dtype=object)
    panel = to_panel(_wide(4, a=vals))
    np.testing.assert_array_equal(panel.series[0].values[0], [1.0, 2.5, np.nan, 0.1])


def test_duplicate_timestamps_wide_and_long(pm25: pd.DataFrame) -> None:
    df = pd.concat([pm25.head(5), pm25.iloc[[3]]], ignore_index=True)
    with pytest.raises(DuplicateTimestampError, match="2014-05-01 04:00"):
        to_panel(df)
    long = _long([(7, 0, "a", 1.0), (7, 0, "b", 1.0), (7, 0, "a", 2.0)])
    with pytest.raises(DuplicateTimestampError, match=r"\(7, 0, 'a'\)"):
        to_panel(long, freq=1)


def test_raw_physionet_repeats_rows(physionet: pd.DataFrame) -> None:
    """The raw slice records e.g. two Urine outputs at one minute: a contract violation."""
    with pytest.raises(DuplicateTimestampError, match="Urine|MAP|Temp"):
        to_panel(physionet, freq=60)


def test_frequency_cannot_be_inferred() -> None:
    df = _long([(1, 0, "a", 1.0), (2, 5, "a", 2.0)])
    with pytest.raises(FrequencyError, match="freq"):
        to_panel(df)


def test_non_fixed_or_bad_frequency(pm25: pd.DataFrame) -> None:
    for bad in ("MS", "ME", "YE", "B"):
        with pytest.raises(FrequencyError, match=bad):
            to_panel(pm25, freq=bad)
    for bad in ("-1h", "0min", "fortnightly", 60):
        with pytest.raises(FrequencyError):
            to_panel(pm25, freq=bad)
    minutes = pd.DataFrame({"timestamp": [0, 60], "a": [1.0, 2.0]})
    for bad in (0, -60, "1h"):
        with pytest.raises(FrequencyError):
            to_panel(minutes, freq=bad)


def test_series_without_observations_listed() -> None:
    df = _long([(1, 0, "a", 1.0), (1, 1, "a", 2.0), (2, 0, "a", np.nan), (2, 1, "a", np.nan)])
    with pytest.raises(NoObservedValuesError, match=r"\b2\b"):
        to_panel(df)
    panel = to_panel(df, require_observed=False)
    assert np.isnan(panel.series[1].values).all()


# --------------------------------------------------------------------------- layouts, freq


def test_layout_auto_detect(pm25: pd.DataFrame, vitals: pd.DataFrame) -> None:
    wide = to_panel(pm25)
    assert wide.layout == "wide" and not wide.has_id and wide.series[0].key is None
    assert wide.variables == [c for c in pm25.columns if c != "timestamp"]
    long = to_panel(vitals, freq=60)
    assert long.layout == "long" and long.has_id
    assert long.variables == sorted(VITALS)
    assert [s.key for s in long.series] == sorted(vitals["series_id"].unique().tolist())


def test_pm25_round_trip_bit_identical(pm25: pd.DataFrame) -> None:
    panel = to_panel(pm25)
    assert panel.freq == Freq("datetime", pd.Timedelta("1h"))
    assert panel.freq.to_str() == "1h"
    out = _impute_identity(panel)
    assert list(out.columns[:3]) == ["timestamp", "station_001001", "station_001001_imputed"]
    pd.testing.assert_frame_equal(out[list(pm25.columns)], pm25)
    assert not out.filter(like="_imputed").to_numpy().any()


def test_pm25_rows_in_any_order_give_the_same_grid(pm25: pd.DataFrame) -> None:
    shuffled = pm25.sample(frac=1.0, random_state=0)
    a, b = to_panel(pm25), to_panel(shuffled)
    np.testing.assert_array_equal(a.series[0].values, b.series[0].values)
    assert a.series[0].index.equals(b.series[0].index)


def test_infer_freq(pm25: pd.DataFrame, vitals: pd.DataFrame) -> None:
    assert infer_freq(pm25["timestamp"]).to_str() == "1h"
    gappy = pm25.iloc[::3]  # 3-hourly
    assert to_panel(gappy).freq.to_str() == "3h"
    decimal = infer_freq(np.array([0.1, 0.2, 0.3, 0.4, 0.6]))
    assert decimal == Freq("numeric", 0.1)


def test_freq_parse_and_to_str_round_trip() -> None:
    for text, step in (
        ("1h", "1h"),
        ("h", "1h"),
        ("30min", "30min"),
        ("15s", "15s"),
        ("1D", "1D"),
        ("W", "7D"),
        ("90min", "90min"),
    ):
        f = Freq.parse(text, "datetime")
        assert f.step == pd.Timedelta(step)
        assert Freq.parse(f.to_str(), "datetime") == f
    assert Freq.parse(pd.Timedelta(minutes=15), "datetime").to_str() == "15min"
    assert Freq.parse("60", "numeric").to_str() == "60"
    assert Freq.parse(0.25, "numeric").to_str() == "0.25"
    assert Freq.parse(Freq.parse(0.25, "numeric").to_str(), "numeric").step == 0.25
    with pytest.raises(FrequencyError):
        Freq.parse(Freq.parse("1h", "datetime"), "numeric")


def test_custom_column_names() -> None:
    cols = Columns(id_col="stay", time_col="t", var_col="param", value_col="reading")
    df = pd.DataFrame(
        {
            "stay": ["b", "a", "a", "b"],
            "t": [0, 0, 1, 1],
            "param": ["hr", "hr", "hr", "temp"],
            "reading": [80.0, 70.0, 71.0, 37.0],
        }
    )
    panel = to_panel(df, columns=cols)
    assert panel.layout == "long" and [s.key for s in panel.series] == ["a", "b"]
    assert panel.variables == ["hr", "temp"]
    out = _impute_identity(panel)
    assert list(out.columns) == ["stay", "t", "param", "reading", "imputed"]
    assert out["stay"].tolist() == ["a", "a", "a", "a", "b", "b", "b", "b"]
    np.testing.assert_array_equal(out["reading"].to_numpy()[4:], [80.0, np.nan, np.nan, 37.0])
    assert Columns.from_dict(cols.to_dict()) == cols
    with pytest.raises(MissingColumnError, match="'t'"):
        to_panel(df)  # default names: no 'timestamp' column
    with pytest.raises(ConfigError):
        Columns(id_col="t", time_col="t")


# --------------------------------------------------------------------------- regularisation


def test_physionet_vitals_hourly_last_value(vitals: pd.DataFrame) -> None:
    panel = to_panel(vitals, freq=60)
    assert panel.freq == Freq("numeric", 60.0)
    by_key = {s.key: s for s in panel.series}
    stay = vitals["series_id"].iloc[0]
    s = by_key[stay]
    raw = vitals[vitals["series_id"] == stay]
    hours = raw["timestamp"] // 60
    assert len(s.index) == hours.max() - hours.min() + 1
    np.testing.assert_array_equal(s.index, np.arange(hours.min(), hours.max() + 1) * 60.0)
    hr = panel.variables.index("HR")
    for hour in (hours.min(), 10, 24, hours.max()):
        cell = raw[(hours == hour) & (raw["variable"] == "HR")].sort_values("timestamp")
        got = s.values[hr, hour - hours.min()]
        if len(cell):
            assert got == cell["value"].iloc[-1]  # the last value in the hour
        else:
            assert np.isnan(got)


def test_physionet_vitals_against_groupby(vitals: pd.DataFrame) -> None:
    """Every observed cell of every stay equals pandas' own last/mean per hour."""
    d = vitals.assign(hour=vitals["timestamp"] // 60).sort_values("timestamp")
    for agg in ("last", "mean"):
        panel = to_panel(vitals, freq=60, agg=agg)
        ref = d.groupby(["series_id", "variable", "hour"])["value"].agg(agg)
        first = d.groupby("series_id")["hour"].min()
        got = {}
        for s in panel.series:
            k, t = np.nonzero(~np.isnan(s.values))
            for kk, tt in zip(k, t, strict=False):
                got[(s.key, panel.variables[kk], int(tt + first[s.key]))] = s.values[kk, tt]
        assert set(got) == set(ref.index)
        exp = ref.loc[list(got)].to_numpy()
        np.testing.assert_allclose(list(got.values()), exp, rtol=1e-12)
        if agg == "last":
            np.testing.assert_array_equal(list(got.values()), exp)


def test_mean_and_last_on_a_small_example() -> None:
    df = _long(
        [
            (1, 0, "a", 1.0),
            (1, 30, "a", 3.0),
            (1, 45, "a", np.nan),
            (1, 10, "b", 5.0),
            (1, 150, "b", 7.0),
        ]
    )
    last = to_panel(df, freq=60)
    np.testing.assert_array_equal(
        last.series[0].values, [[3.0, np.nan, np.nan], [5.0, np.nan, 7.0]]
    )
    mean = to_panel(df, freq=60, agg="mean")
    np.testing.assert_array_equal(
        mean.series[0].values, [[2.0, np.nan, np.nan], [5.0, np.nan, 7.0]]
    )


def test_numeric_time_dtype_restored(vitals: pd.DataFrame) -> None:
    small = vitals[vitals["series_id"].isin(vitals["series_id"].unique()[:3])]
    out = _impute_identity(to_panel(small, freq=60))
    assert out["timestamp"].dtype == np.int64 and out["series_id"].dtype == np.int64
    assert set(np.unique(out["timestamp"] % 60)) == {0}
    assert list(out.columns) == ["series_id", "timestamp", "variable", "value", "imputed"]
    # rows in (series, time, variable) order
    key = out[["series_id", "timestamp"]].to_numpy()
    assert (np.diff(key[:, 0]) >= 0).all()
    assert len(out) == sum(len(s.index) for s in to_panel(small, freq=60).series) * 6
    halves = pd.DataFrame({"timestamp": [0, 5, 10], "a": [1.0, 2.0, 3.0]})
    out = _impute_identity(to_panel(halves, freq=2.5))
    assert out["timestamp"].dtype == np.float64
    assert out["timestamp"].tolist() == [0.0, 2.5, 5.0, 7.5, 10.0]


def test_tz_aware_datetimes_kept(pm25: pd.DataFrame) -> None:
    local = pm25.assign(timestamp=pm25["timestamp"].dt.tz_localize("Asia/Shanghai"))
    panel = to_panel(local)
    assert str(panel.series[0].index.tz) == "Asia/Shanghai"
    out = _impute_identity(panel)
    assert out["timestamp"].dtype == local["timestamp"].dtype
    pd.testing.assert_frame_equal(out[list(local.columns)], local)


def test_string_timestamps_parsed() -> None:
    df = pd.DataFrame(
        {
            "timestamp": ["2024-03-01 00:00", "2024-03-01 00:30", "2024-03-01 01:30"],
            "a": [1.0, 2.0, 3.0],
        }
    )
    panel = to_panel(df)
    assert panel.freq.to_str() == "30min"
    np.testing.assert_array_equal(panel.series[0].values, [[1.0, 2.0, np.nan, 3.0]])


# --------------------------------------------------------------------------- output frames


def test_impute_frame_wide_bounds_columns(pm25: pd.DataFrame) -> None:
    panel = to_panel(pm25[["timestamp", "station_001001", "station_001002"]].head(6))
    vals = [s.values for s in panel.series]
    bounds = {
        90: ([v - 2 for v in vals], [v + 2 for v in vals]),
        50: ([v - 1 for v in vals], [v + 1 for v in vals]),
    }
    out = impute_frame(panel, vals, [np.isnan(v) for v in vals], bounds)
    assert list(out.columns) == [
        "timestamp",
        "station_001001",
        "station_001001_imputed",
        "station_001001_lo_50",
        "station_001001_hi_50",
        "station_001001_lo_90",
        "station_001001_hi_90",
        "station_001002",
        "station_001002_imputed",
        "station_001002_lo_50",
        "station_001002_hi_50",
        "station_001002_lo_90",
        "station_001002_hi_90",
    ]
    np.testing.assert_array_equal(out["station_001002_hi_90"], vals[0][1] + 2)
    with pytest.raises(RangeError):
        impute_frame(panel, vals, [np.isnan(v) for v in vals], {100: bounds[90]})
    with pytest.raises(ConfigError):
        impute_frame(panel, [v[:1] for v in vals], [np.isnan(v) for v in vals], {})


def test_forecast_and_samples_frames(vitals: pd.DataFrame) -> None:
    small = vitals[vitals["series_id"].isin(vitals["series_id"].unique()[:2])]
    panel = to_panel(small, freq=60)
    k, h, n = len(panel.variables), 3, 2
    idx = [future_index(s.index, panel.freq, h) for s in panel.series]
    med = [np.full((k, h), 1.0) for _ in idx]
    out = forecast_frame(panel, idx, med, [m + 1 for m in med], {80: (med, med)})
    assert list(out.columns) == [
        "series_id",
        "timestamp",
        "variable",
        "median",
        "mean",
        "lo_80",
        "hi_80",
    ]
    assert len(out) == 2 * h * k and out["timestamp"].dtype == np.int64
    last = panel.series[0].index[-1]
    assert out["timestamp"].iloc[0] == last + 60 and out["timestamp"].iloc[-1] > 0
    smp = samples_frame(panel, [np.zeros((n, k, h)) for _ in idx], idx)
    assert list(smp.columns) == ["series_id", "timestamp", "sample", "variable", "value"]
    assert len(smp) == 2 * h * n * k
    assert smp["sample"].tolist()[: 2 * k] == [0] * k + [1] * k


def test_forecast_and_samples_frames_wide(pm25: pd.DataFrame) -> None:
    panel = to_panel(pm25[["timestamp", "station_001001", "station_001002"]])
    idx = [future_index(panel.series[0].index, panel.freq, 4)]
    med = [np.arange(8, dtype=np.float64).reshape(2, 4)]
    out = forecast_frame(panel, idx, med, med, {})
    assert list(out.columns) == [
        "timestamp",
        "station_001001",
        "station_001001_mean",
        "station_001002",
        "station_001002_mean",
    ]
    assert out["timestamp"].iloc[0] == pm25["timestamp"].iloc[-1] + pd.Timedelta("1h")
    assert out["timestamp"].dtype == pm25["timestamp"].dtype
    samples = [np.stack([med[0], med[0] + 100])]  # (n=2, K=2, H=4)
    smp = samples_frame(panel, samples, idx)
    assert list(smp.columns) == ["timestamp", "sample", "station_001001", "station_001002"]
    assert smp["sample"].tolist() == [0, 1] * 4
    assert smp["station_001002"].tolist()[:2] == [4.0, 104.0]


# --------------------------------------------------------------------------- calendar, future


def test_calendar_features_known_times() -> None:
    idx = pd.DatetimeIndex(["2024-01-01 06:00", "2024-01-03 18:30"])  # Monday, Wednesday
    f = calendar_features(idx)
    assert f.shape == (4, 2) and f.dtype == np.float32
    np.testing.assert_allclose(
        f[:, 0], [1.0, 0.0, np.sin(2 * np.pi * 0.25 / 7), np.cos(2 * np.pi * 0.25 / 7)], atol=1e-6
    )
    hour = 18.5
    day = 2 + hour / 24
    np.testing.assert_allclose(
        f[:, 1],
        [
            np.sin(2 * np.pi * hour / 24),
            np.cos(2 * np.pi * hour / 24),
            np.sin(2 * np.pi * day / 7),
            np.cos(2 * np.pi * day / 7),
        ],
        atol=1e-6,
    )
    assert not calendar_features(pd.Index([0.0, 60.0, 120.0])).any()
    assert calendar_features(pd.Index([0.0, 60.0])).shape == (4, 2)


def test_future_index() -> None:
    idx = pd.date_range("2024-03-30 22:00", periods=3, freq="h", tz="Europe/Paris")
    fut = future_index(idx, Freq.parse("1h", "datetime"), 3)
    assert fut.tz == idx.tz and len(fut) == 3
    assert (fut - idx[-1]).tolist() == [pd.Timedelta(hours=h) for h in (1, 2, 3)]  # across DST
    num = future_index(pd.Index([0.0, 0.1, 0.2]), Freq.parse(0.1, "numeric"), 2)
    assert num.tolist() == [0.3, 0.4]
    assert len(future_index(idx, Freq.parse("1h", "datetime"), 0)) == 0
    with pytest.raises(RangeError):
        future_index(idx, Freq.parse("1h", "datetime"), -1)


# --------------------------------------------------------------------------- scaler


def test_scaler_ignores_nan_and_round_trips() -> None:
    a = np.array([[1.0, np.nan, 3.0], [np.nan, np.nan, np.nan], [5.0, 5.0, np.nan]])
    b = np.array([[5.0, np.nan], [np.nan, np.nan], [np.nan, 5.0]])
    sc = Scaler.fit([a, b])
    assert sc.mean == (3.0, 0.0, 5.0)
    np.testing.assert_allclose(sc.std, (np.std([1.0, 3.0, 5.0]), 1.0, 1.0))
    z = sc.transform(a)
    assert np.array_equal(np.isnan(z), np.isnan(a))
    np.testing.assert_allclose(z[0, [0, 2]], (np.array([1.0, 3.0]) - 3.0) / sc.std[0])
    np.testing.assert_allclose(sc.inverse(z), a, rtol=1e-15, atol=1e-12)
    batch = np.stack([a, a])  # (2, K, T)
    np.testing.assert_allclose(sc.inverse(sc.transform(batch)), batch)
    assert Scaler.from_dict(sc.to_dict()) == sc
    with pytest.raises(ConfigError):
        sc.transform(np.zeros((2, 3)))


def test_scaler_single_observation_gets_unit_std() -> None:
    sc = Scaler.fit([np.array([[4.0, np.nan]])])
    assert sc.mean == (4.0,) and sc.std == (1.0,)
