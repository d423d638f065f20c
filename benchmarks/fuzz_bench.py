"""Fuzz the HTTP service and record the figures: ``benchmarks/results/fuzz.{json,md}``.

The same run as ``tests/test_service_robustness.py`` (schema-driven requests from the
server's own OpenAPI schema, plus the hostile corpus), except that the corpus' widest
parquet file declares a full million columns (a minute to build, so not in CI).

    python benchmarks/fuzz_bench.py [--examples 90] [--seed 0]

Starts ``bentoml serve`` on 127.0.0.1 with a tiny PM2.5 model trained here and small
limits (so that generated requests stay cheap), with an API key that the fuzz sends.
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
if (ROOT / "pyproject.toml").is_file():  # a source checkout: tests/ is importable
    sys.path.insert(0, str(ROOT))

from tests.conftest import tiny_config  # noqa: E402
from tests.fuzzing import fuzz  # noqa: E402
from tests.test_service_robustness import FUZZ_LIMITS, KEY  # noqa: E402
from tsdiff.provenance import git_commit  # noqa: E402
from tsdiff.services.process import Server, bentoml_serve, free_port, server_env  # noqa: E402

RESULTS = Path("benchmarks", "results")  # under the working directory


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--examples", type=int, default=90, help="per operation and mode (90)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args()

    from tsdiff.datasets import pm25_slice
    from tsdiff.model import TSDiff

    commit = git_commit(short=True)
    with tempfile.TemporaryDirectory(prefix="tsdiff-fuzz-") as d:
        work = Path(d)
        model = TSDiff(tiny_config()).fit(pm25_slice("ground").iloc[:500], progress=False)
        model_dir = model.save(work / "pm25")
        port = free_port()
        env = server_env(
            work / "home", TSDIFF_MODEL_URI=str(model_dir), TSDIFF_API_KEYS=KEY, **FUZZ_LIMITS
        )
        server = Server(bentoml_serve(port), env, port, work / "server.log")
        try:
            server.wait_ready()
            with requests.Session() as s:
                s.headers["Authorization"] = f"Bearer {KEY}"
                report = fuzz(server.url, s, examples=args.examples, max_samples=4, seed=args.seed)
        finally:
            server.stop()
    summary = {
        **report.summary(),
        "server_error_cases": [vars(o) for o in report.server_errors()],
        "unnamed_4xx_cases": [vars(o) for o in report.unnamed_4xx()],
        "limits": FUZZ_LIMITS,
        "examples_per_operation_and_mode": args.examples,
        "seed": args.seed,
        "command": "python " + " ".join(shlex.quote(a) for a in sys.argv),
        "commit": commit,
        "machine": f"{platform.platform()}, {__import__('os').cpu_count()} CPU(s)",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "fuzz.json").write_text(json.dumps(summary, indent=2) + "\n")
    rows = "\n".join(f"| {k} | {v} |" for k, v in summary["status_counts"].items())
    errors = "\n".join(f"| {k} | {v} |" for k, v in summary["error_types"].items())
    (args.out / "fuzz.md").write_text(
        f"# Service fuzzing\n\nCommand: `{summary['command']}` at commit {commit}, "
        f"{summary['date']}, {summary['machine']}.\n\n"
        f"{summary['requests']} requests in {summary['seconds']} s "
        f"({', '.join(f'{k}: {v}' for k, v in summary['by_source'].items())}); "
        f"responses >= 500: {summary['server_errors']}; 4xx without a named problem: "
        f"{summary['unnamed_4xx']}; `/readyz` afterwards: {summary['readyz_after']}.\n\n"
        f"| status | responses |\n|---|---:|\n{rows}\n\n"
        f"| error type | responses |\n|---|---:|\n{errors}\n"
    )
    print(json.dumps({k: summary[k] for k in ("requests", "status_counts", "server_errors")}))
    return 0 if not summary["server_errors"] and not summary["unnamed_4xx"] else 1


if __name__ == "__main__":
    sys.exit(main())
