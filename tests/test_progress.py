"""The training bar counts what ends the run: the budget's seconds, else epochs."""

import io
import math

from tsdiff.progress import BudgetBar


def test_budget_bar_counts_seconds_against_the_budget() -> None:
    out = io.StringIO()
    bar = BudgetBar("train", budget_s=120.0, epochs=200, file=out)
    bar.advance(1, 30.4, {"val_loss": 0.5, "note": "x"})
    bar.advance(2, 61.0, {"val_loss": 0.4})
    assert (bar._bar.total, bar._bar.n) == (120, 61)  # noqa: SLF001
    bar.advance(3, 500.0, {})  # an epoch that overruns never passes the total
    assert bar._bar.n == 120  # noqa: SLF001
    bar.close()
    text = out.getvalue()
    assert "/120 s budget" in text and "epoch=2" in text
    assert "/200" not in text  # no epoch cap promised on a timed run


def test_bar_without_budget_counts_epochs() -> None:
    out = io.StringIO()
    bar = BudgetBar("prior", budget_s=math.inf, epochs=50, initial_epoch=3, file=out)
    bar.advance(4, 10.0, {"val_mae": 0.3})
    assert (bar._bar.total, bar._bar.n) == (50, 4)  # noqa: SLF001
    bar.close()
    assert "4/50" in out.getvalue() and "budget" not in out.getvalue()
