"""The first start of ``abonent demo`` on a new machine: how soon does it answer?

A fresh working directory and an empty model cache, as after ``pip install``: the
demo is started as a user starts it, and the figures are the time until the port
opens, until the first question is answered (by the knowledge base's keywords, while
the model trains in the background) and until the trained model answers.

    python bench/cold_start.py            # prints the three figures
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

QUESTION = "как оплатить картой"  # found by the keywords at once
PARAPHRASE = "куда платить"  # only the trained model understands it
PAYMENT_ANSWER = "Оплатить электроэнергию можно"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Demo:
    """``abonent demo`` in its own directory and model cache, as a new user runs it."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = folder / "demo.log"
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("ABONENT_") or k.startswith("ABONENT_TEST_")
        }
        env["ABONENT_NLU_CACHE_DIR"] = str(folder / "cache")
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "abonent", "demo", "--port", str(self.port)],
            cwd=folder,
            env=env,
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
        )

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def wait_port(self, limit: float = 120) -> float:
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"demo exited: {self.log.read_text()}")
            try:
                httpx.get(f"{self.url}/healthz", timeout=1)
                return self.elapsed()
            except httpx.HTTPError:
                pass
            if self.elapsed() > limit:
                raise RuntimeError(f"port not open after {limit}s: {self.log.read_text()}")
            time.sleep(0.05)

    def stage(self) -> str:
        return str(httpx.get(f"{self.url}/readyz", timeout=5).json().get("consultant"))

    def ask(self, text: str, limit: float = 30) -> str:
        """Open a chat, ask ``text``, return the bot's answer to it."""
        api = f"{self.url}/api/client/v1"
        token = httpx.post(f"{api}/conversations", json={}, timeout=10).json()["token"]
        auth = {"Authorization": f"Bearer {token}"}
        sent = httpx.post(f"{api}/messages", json={"text": text}, headers=auth, timeout=10)
        asked = int(sent.json()["id"])
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            reply = httpx.get(
                f"{api}/messages", params={"after": asked, "wait": 5}, headers=auth, timeout=10
            )
            bot: list[dict[str, Any]] = [
                m for m in reply.json()["messages"] if m["author"] == "bot"
            ]
            if bot:
                return "\n".join(m["text"] for m in bot)
        raise RuntimeError(f"no answer to {text!r} in {limit}s")

    def wait_model(self, limit: float = 900) -> float:
        while self.stage() != "model":
            if self.elapsed() > limit:
                raise RuntimeError(f"model not in use after {limit}s: {self.log.read_text()}")
            time.sleep(0.5)
        return self.elapsed()

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="abonent-cold-") as tmp:
        demo = Demo(Path(tmp))
        try:
            port = demo.wait_port()
            answer = demo.ask(QUESTION)
            first = demo.elapsed()
            stage = demo.stage()
            model = demo.wait_model()
            later = demo.ask(PARAPHRASE)
        finally:
            demo.stop()
    print(f"port open:              {port:6.1f} s after the start")
    print(f"first answer:           {first:6.1f} s ({stage}; {answer.splitlines()[0][:50]}…)")
    print(f"trained model in use:   {model:6.1f} s")
    print(f"paraphrase understood:  {PAYMENT_ANSWER in later}")


if __name__ == "__main__":
    main()
