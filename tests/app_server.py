"""Start the real app in a subprocess on a free port, offline, with the fixture checkpoints."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class AppServer:
    def __init__(self, hub_cache: Path, work: Path, extra_env: dict[str, str] | None = None):
        """`extra_env` adds to (or overrides) the app's environment, e.g. {"GRADIO_MCP_SERVER": "1"}."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        env = {
            **os.environ,
            "HF_HUB_OFFLINE": "1",
            "HF_HUB_CACHE": str(hub_cache),
            "LFQA_CACHE": str(work / "lfqa-cache"),
            "GRADIO_SERVER_NAME": "127.0.0.1",
            "GRADIO_SERVER_PORT": str(self.port),
            "GRADIO_ANALYTICS_ENABLED": "False",
            "GRADIO_TEMP_DIR": str(work / "gradio-tmp"),
            **(extra_env or {}),
        }
        self.log = open(work / "app.log", "w")
        started = time.monotonic()
        self.process = subprocess.Popen(
            [sys.executable, "app.py"], cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT
        )
        deadline = started + 90
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"the app exited with {self.process.returncode}: {(work / 'app.log').read_text()[-3000:]}"
                )
            try:
                if httpx.get(self.url, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        else:
            self.stop()
            raise RuntimeError("the app did not answer HTTP within 90 s")
        self.startup_seconds = time.monotonic() - started

    def alive(self) -> bool:
        return self.process.poll() is None and httpx.get(self.url, timeout=5).status_code == 200

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()
