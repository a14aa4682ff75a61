"""Launch time: `python app.py` started -> the page answers HTTP 200, against a hello-world Gradio
app on the same machine (Gradio alone takes seconds to import). Median of N launches each,
offline, no warm-up, nothing loaded.

    .venv/bin/python benchmarks/bench_launch.py [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
HELLO = """import gradio as gr

gr.Interface(lambda name: "Hello " + name, "text", "text").launch()
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_seconds(script: Path, cwd: Path) -> float:
    """Seconds from starting `script` to its first HTTP 200."""
    port = free_port()
    env = {
        **os.environ,
        "GRADIO_SERVER_NAME": "127.0.0.1",
        "GRADIO_SERVER_PORT": str(port),
        "GRADIO_ANALYTICS_ENABLED": "False",
        "HF_HUB_OFFLINE": "1",
        "LFQA_WARMUP": "0",
    }
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, str(script)], cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        while time.monotonic() - started < 120:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/", timeout=2).status_code == 200:
                    return time.monotonic() - started
            except httpx.HTTPError:
                pass
            if process.poll() is not None:
                raise RuntimeError(f"{script} exited with {process.returncode}")
            time.sleep(0.05)
        raise RuntimeError(f"{script} did not answer within 120 s")
    finally:
        process.terminate()
        process.wait(timeout=20)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        hello = Path(tmp) / "hello.py"
        hello.write_text(HELLO)
        apps = {"hello-world Gradio app": (hello, Path(tmp)), "lfqa-demo app.py": (ROOT / "app.py", ROOT)}
        for name, (script, cwd) in apps.items():
            runs = [launch_seconds(script, cwd) for _ in range(args.runs)]
            shown = ", ".join(f"{r:.2f}" for r in runs)
            print(f"{name:<24} median {statistics.median(runs):.2f} s  ({shown})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
