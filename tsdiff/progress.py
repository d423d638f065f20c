"""Training progress that shows what actually ends the run.

With a time budget the run ends when the budget is spent, not after the epoch cap, so
the bar counts seconds against the budget ("41/120 s") and names the epoch in its
postfix; "3/200 epochs" on a 2-minute budget would promise a run that never happens.
Without a budget the bar counts epochs against the cap.
"""

from __future__ import annotations

import math
from typing import IO, Any

from tqdm.auto import tqdm


class BudgetBar:
    """A tqdm bar over the budget's seconds (finite ``budget_s``) or over epochs."""

    def __init__(
        self,
        desc: str,
        *,
        budget_s: float,
        epochs: int | None,
        initial_epoch: int = 0,
        initial_s: float = 0.0,
        disable: bool = False,
        file: IO[str] | None = None,
    ) -> None:
        self.timed = math.isfinite(budget_s)
        if self.timed:
            total: float | None = round(budget_s)
            fmt = "{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} s budget{postfix}"
            self._bar = tqdm(
                total=total,
                initial=min(round(initial_s), round(budget_s)),
                desc=desc,
                bar_format=fmt,
                disable=disable,
                file=file,
            )
        else:
            self._bar = tqdm(
                total=epochs,
                initial=initial_epoch,
                desc=desc,
                unit="epoch",
                disable=disable,
                file=file,
            )

    def advance(self, epoch: int, elapsed_s: float, metrics: dict[str, Any]) -> None:
        """After ``epoch`` (1-based) finished at ``elapsed_s`` seconds into the run."""
        shown = {k: f"{v:.4g}" for k, v in metrics.items() if isinstance(v, (int, float))}
        if self.timed:
            assert self._bar.total is not None
            target = min(elapsed_s, self._bar.total)
            self._bar.update(max(0.0, round(target) - self._bar.n))
            self._bar.set_postfix({"epoch": epoch, **shown})
        else:
            self._bar.update(1)
            self._bar.set_postfix(shown)

    def close(self) -> None:
        self._bar.close()
