"""How much evidence the forecast gate should ask for: on the same CLI-default models
and the same draws, the gate fitted with 0, 1 and 2 standard errors (counted over
forecasts) and the model alone, scored as ``tsdiff.benchmarks.forecast_defaults`` does.

    python scripts/forecast_gate_evidence.py [MINUTES] [--json-from RESULT.json]

Writes ``benchmarks/results/forecast-gate-evidence.{json,md}``. ``--json-from`` only
renders a result written before (no training).
"""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tsdiff import TSDiff, forecast_gate
from tsdiff import backtest as bt_module
from tsdiff.benchmarks.common import RESULTS, commit, machine
from tsdiff.benchmarks.forecast_defaults import HORIZONS, ORIGINS, frames, score
from tsdiff.config import TSDiffConfig
from tsdiff.estimator import Estimator, _forecast_validation, calibrate_forecast_spread
from tsdiff.io import write_atomic, write_json

LEVELS = (None, 0.0, 1.0, 2.0)  # None: the model alone


def run(minutes: float) -> dict[str, Any]:
    measured = commit()
    out: dict[str, Any] = {}
    for name, df in frames(None).items():
        train = df.iloc[: len(df) - 24 * ORIGINS]
        t0 = time.time()
        cfg = TSDiffConfig().replace(train={"max_minutes": minutes})
        model = TSDiff(cfg).fit(train, progress=False)
        row: dict[str, Any] = {
            "train_s": round(time.time() - t0, 1),
            "epochs": model.info["epochs_run"],
        }
        panel = model.panel(train)
        tr, va = Estimator(model.config)._split(model, panel.series, None, None, None)
        fc, tails = _forecast_validation(panel, tr, va)
        for ev in LEVELS:
            if ev is None:
                model.forecast_gate, label = None, "alone"
            else:
                forecast_gate.FORECAST_GATE_EVIDENCE = ev  # what naive_gate reads
                calibrate_forecast_spread(model, fc, 0, None, spread=False, tails=tails)
                label = f"e{ev:g}"
            res: dict[str, Any] = {"gate": model.forecast_gate}
            for h, w in HORIZONS.items():
                got = bt_module.backtest(
                    model, df, horizon=h, step=24, windows=w, seed=0, gate=ev is not None
                )
                s = score(got.forecasts, df)
                res[f"h{h}"] = {
                    "ratio": s["mae_ratio"],
                    "crps": round(got.summary["overall"]["crps"], 4),
                    "cov90": s["cov90"],
                }
            row[label] = res
        out[name] = row
    return {
        "command": f"python scripts/forecast_gate_evidence.py {minutes:g}",
        "commit": measured,
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "results": out,
    }


def markdown(r: dict[str, Any]) -> str:
    lines = [
        "# Forecast gate: how much evidence before leaving seasonal naive",
        "",
        f"Command: `{r['command']}`  ",
        f"Commit {r['commit']}, {r['date']}; {r['machine']['cpus']} CPUs"
        + (f"; {r['note']}." if r.get("note") else "."),
        "",
        "One CLI-default model per frame (as `forecast_defaults`); for each, the gate "
        "refitted on the same validation origins with the evidence asked for (standard "
        "errors of the paired MAE difference, counted over forecasts), then the same "
        "backtest draws scored. Ratio: MAE over seasonal naive's on the same cells.",
        "",
        "| frame | epochs | gate | h = 24 ratio / CRPS / cov90 | h = 168 ratio / CRPS / cov90 "
        "| weights < 1 |",
        "|---|---|---|---|---|---|",
    ]
    for name, row in r["results"].items():
        for label in ("alone", "e0", "e1", "e2"):
            x = row[label]
            a, b = x["h24"], x["h168"]
            low = sum(1 for g in (x["gate"] or []) if g < 1)
            lines.append(
                f"| {name} | {row['epochs']} | {label} | {a['ratio']:.4f} / {a['crps']:.4f} / "
                f"{a['cov90']:.2f} | {b['ratio']:.4f} / {b['crps']:.4f} / {b['cov90']:.2f} "
                f"| {low} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> None:
    if "--json-from" in argv:
        r = json.loads(Path(argv[argv.index("--json-from") + 1]).read_text())
    else:
        r = run(float(argv[0]) if argv else 2.0)
    write_json(r, RESULTS / "forecast-gate-evidence.json")
    write_atomic(RESULTS / "forecast-gate-evidence.md", lambda p: p.write_text(markdown(r)))


if __name__ == "__main__":
    main(sys.argv[1:])
