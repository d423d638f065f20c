"""Real ``bentoml serve`` processes of :class:`tsdiff.services.service.TSDiffService`.

Started, awaited and stopped here for the service, fuzz and crash tests and for the
benchmarks (``benchmarks/service_bench.py``, ``fuzz_bench.py``, ``load_bench.py``), so
every one of them drives the service the way a client would: over a 127.0.0.1 socket.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests


class ServerError(RuntimeError):
    """The server exited or never became ready (the message carries its log's tail)."""


class Server:
    """A real server process in its own process group, so teardown stops all of it."""

    def __init__(
        self,
        argv: list[str],
        env: dict[str, str],
        port: int,
        log: Path,
        cwd: Path | None = None,
    ) -> None:
        """``cwd``: the server's working directory (default: the caller's, never the
        installed package's: the service is imported by its dotted name)."""
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                argv,
                cwd=cwd,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_ready(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerError(f"server exited ({self.proc.returncode}):\n{self.tail()}")
            try:
                if requests.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.3)
        raise ServerError(f"server not ready after {timeout:.0f} s:\n{self.tail()}")

    def stop(self, grace: float = 20.0) -> None:
        """SIGTERM the process group; SIGKILL it if it is still running after ``grace`` s."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    def kill(self) -> None:
        """SIGKILL the server and its workers at once: what a crash or OOM kill does.

        BentoML starts its workers in sessions of their own, so the process group alone
        would leave them running: the tree is collected first, then killed.
        """
        import psutil

        if self.proc.poll() is not None:
            return
        tree = psutil.Process(self.proc.pid).children(recursive=True)
        os.killpg(self.proc.pid, signal.SIGKILL)
        for child in tree:
            try:
                child.kill()
            except psutil.NoSuchProcess:
                pass
        self.proc.wait()
        psutil.wait_procs(tree, timeout=10)

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_env(home: Path, **extra: str) -> dict[str, str]:
    """The caller's environment without ``TSDIFF_*`` or a tracking server, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TSDIFF_")}
    env.pop("MLFLOW_TRACKING_URI", None)
    env.update(BENTOML_HOME=str(home), BENTOML_DO_NOT_TRACK="true", **extra)
    return env


def bentoml_serve(port: int) -> list[str]:
    """The command line that serves ``tsdiff.services.service:TSDiffService`` on 127.0.0.1."""
    argv = [sys.executable, "-m", "bentoml", "serve", "tsdiff.services.service:TSDiffService"]
    return [*argv, "--host", "127.0.0.1", "--port", str(port)]
