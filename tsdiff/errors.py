"""Typed exceptions: every bad input names its problem.

All errors derive from :class:`TSDiffError`; input problems are also ``ValueError``
so generic callers that catch ``ValueError`` keep working. Services map
:class:`DataError` and :class:`ConfigError` to HTTP 4xx, the CLI to a non-zero exit.
"""

from __future__ import annotations


class TSDiffError(Exception):
    """Base class of every error raised on purpose by tsdiff."""


class ConfigError(TSDiffError, ValueError):
    """A configuration value or call option is invalid or out of range."""


class RangeError(ConfigError):
    """A horizon, window, level or sample count lies outside its allowed range."""


class DataError(TSDiffError, ValueError):
    """The input data break the data contract."""


class EmptyInputError(DataError):
    """The input has no rows (or no usable values)."""


class MissingColumnError(DataError):
    """A required column (timestamp, series id, variable, value) is absent."""


class TimestampError(DataError):
    """Timestamps are missing, unparseable, mixed in kind or time zone."""


class NonNumericError(DataError):
    """A value column holds something that is not a number."""


class DuplicateTimestampError(DataError):
    """The same (series, timestamp) — or (series, timestamp, variable) — occurs twice."""


class NoObservedValuesError(DataError):
    """A series has no observed value at all, so there is nothing to condition on."""


class InsufficientHistoryError(DataError):
    """The training data are too short for the window to learn anything from."""


class MissingCovariateError(DataError):
    """A covariate the model reads is absent: a column, a series' static value, or a
    known-future value for a step to forecast."""


class UnknownVariableError(DataError):
    """The input's variables differ from those the model was trained on."""


class FrequencyError(DataError):
    """The sampling frequency cannot be inferred or does not fit the timestamps."""


class NotFittedError(TSDiffError, RuntimeError):
    """The model has not been fitted (or loaded) yet."""


class ModelFileError(TSDiffError, OSError):
    """A saved model is missing, incomplete or not a tsdiff model."""


class CalibrationWarning(UserWarning):
    """Samples drawn with settings other than those the model's calibration (spread,
    gates, interval factors) was fitted for: its intervals may not cover what they claim."""
