"""A JupyterLab server for browser tests: started on a free loopback port with a random
token, isolated settings, and stopped by the process ids it spawned (never by name).
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil

# JupyterLab settings for the test: every cell stays in the page (the default windowed
# notebook drops cells that are off screen), and nothing is fetched from the internet
# (news and update checks; the machines under test are offline).
SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false", "checkForUpdates": False},
}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class JupyterLab:
    """One ``jupyter lab`` process serving ``root`` on 127.0.0.1.

    Args:
        root: the folder JupyterLab serves (notebooks are opened relative to it).
        home: a scratch folder for its settings, workspaces, runtime files and log.
        env: extra environment variables for the server and its kernels.
    """

    def __init__(self, root: Path, home: Path, env: dict[str, str] | None = None):
        self.root, self.home = Path(root), Path(home)
        self.home.mkdir(parents=True, exist_ok=True)
        self.extra_env = dict(env or {})
        self.token = secrets.token_hex(16)
        self.port: int | None = None
        self.proc: subprocess.Popen | None = None
        self.log_path = self.home / "jupyter.log"
        self.attempts: list[dict] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _environment(self) -> dict[str, str]:
        settings = self.home / "settings"
        for name, value in SETTINGS.items():
            path = settings / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(value))
        env = dict(os.environ)
        env.update({
            "JUPYTERLAB_SETTINGS_DIR": str(settings),
            "JUPYTERLAB_WORKSPACES_DIR": str(self.home / "workspaces"),
            "JUPYTER_RUNTIME_DIR": str(self.home / "runtime"),
            "OMP_NUM_THREADS": env.get("OMP_NUM_THREADS", "1"),
        })
        env.update(self.extra_env)
        return env

    def start(self, attempts: int = 3, timeout: float = 60.0) -> None:
        """Start the server and wait until its API answers.

        A slow start is expected on a loaded machine: each attempt waits up to
        ``timeout`` seconds, and a server that died or did not answer is stopped and
        started again on a new port, at most ``attempts`` times.
        """
        lab = Path(sys.executable).with_name("jupyter")
        if not lab.exists():
            raise FileNotFoundError(f"{lab} is missing: run `make env` to build the venv")
        for attempt in range(1, attempts + 1):
            self.port = free_port()
            cmd = [str(lab), "lab", "--no-browser", "--allow-root",
                   "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={self.port}",
                   "--ServerApp.port_retries=0", f"--IdentityProvider.token={self.token}",
                   f"--ServerApp.root_dir={self.root}",
                   "--LabApp.check_for_updates_class="
                   "jupyterlab.handlers.announcements.NeverCheckForUpdate"]
            # A session of its own: the server and whatever it spawns in its process
            # group are ours to stop, and nothing else is.
            with open(self.log_path, "a") as log:
                self.proc = subprocess.Popen(cmd, cwd=self.root, env=self._environment(),
                                             stdout=log, stderr=subprocess.STDOUT,
                                             start_new_session=True)
            t0 = time.monotonic()
            ok = self._wait_ready(timeout)
            self.attempts.append({"attempt": attempt, "port": self.port, "ready": ok,
                                  "seconds": round(time.monotonic() - t0, 2)})
            if ok:
                return
            self.stop()
        raise RuntimeError(f"JupyterLab did not answer on 127.0.0.1 after {attempts} "
                           f"attempts ({self.attempts}); log {self.log_path}:\n"
                           f"{self.log_tail()}")

    def _wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(f"{self.url}/api/status?token={self.token}",
                                            timeout=5) as r:
                    if r.status == 200:
                        return True
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            time.sleep(0.5)
        return False

    def log_tail(self, n: int = 4000) -> str:
        try:
            return self.log_path.read_text()[-n:]
        except OSError:
            return ""

    def lab_url(self, path: str, workspace: str) -> str:
        """The address that opens ``path`` (relative to root) in a fresh workspace."""
        return f"{self.url}/lab/workspaces/{workspace}/tree/{path}?reset&token={self.token}"

    def stop(self) -> None:
        """Stop the server, its process group and the kernels it started.

        Kernels run in sessions of their own, so they are found as the server's child
        processes (by pid) before the server is asked to stop.
        """
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        try:
            children = psutil.Process(proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            children = []
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        for child in children:
            try:
                child.terminate()
            except psutil.NoSuchProcess:
                continue
        _, alive = psutil.wait_procs(children, timeout=10)
        for child in alive:
            try:
                child.kill()
            except psutil.NoSuchProcess:
                pass
