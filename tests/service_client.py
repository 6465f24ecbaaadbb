"""Starts the real server in a subprocess on a free loopback port (through
tests/service_harness.py) and hands out clients; used by test_service*.py."""
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import grpc

HARNESS = Path(__file__).resolve().parent / "service_harness.py"
START_TIMEOUT_S = 60


class ServerProcess:
    """`annlib serve` options in, a running server out; `port` once it listens."""

    def __init__(self, *args, command=None, env=None, wait_until_serving=True):
        cmd = command or [sys.executable, str(HARNESS)]
        self.log = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen([*cmd, "--port", "0", *args], stdout=subprocess.PIPE, stderr=self.log,
                                     text=True, env={**os.environ, **(env or {})})
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()
        listening = self.wait_for("listening on")
        self.port = int(listening.split("listening on ")[1].split()[0].rsplit(":", 1)[1])
        self.address = f"127.0.0.1:{self.port}"
        if wait_until_serving:
            self.wait_for("serving ")

    def _pump(self):
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def wait_for(self, text: str, timeout: float = START_TIMEOUT_S) -> str:
        while True:
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                raise TimeoutError(f"server did not print {text!r}; log:\n{self.stderr()}") from None
            if line is None:
                raise RuntimeError(f"server exited ({self.proc.wait()}) before printing {text!r}; "
                                   f"log:\n{self.stderr()}")
            if text in line:
                return line

    def stderr(self) -> str:
        """What the server wrote to stderr (also after terminate())."""
        if self.log.closed:
            return self.final_log
        self.log.seek(0)
        return self.log.read()

    def channel(self, **kwargs) -> grpc.Channel:
        return grpc.insecure_channel(self.address, **kwargs)

    def send_sigterm(self):
        self.proc.send_signal(signal.SIGTERM)
        self.sigterm_sent = True

    def terminate(self, timeout: float = 60) -> int:
        """SIGTERM (unless sent already), then the exit code."""
        if self.proc.poll() is None and not getattr(self, "sigterm_sent", False):
            self.send_sigterm()
        try:
            return self.proc.wait(timeout)
        finally:
            self.final_log = self.stderr()
            self.log.close()

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
