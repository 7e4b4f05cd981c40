"""Start a SuperLink and SuperNodes on this machine, run the app on them, stop exactly them.

Everything here is **insecure and loopback only** (``--insecure``, ``127.0.0.1``): it is
the local stand-in for a deployment, where the SuperLink runs at the coordinating centre
with TLS, and each hospital runs one SuperNode that only connects out to it (with node
authentication). See Flower's documentation ("Enable TLS connections", "Authenticate
SuperNodes") for those steps; the commands are the same, with certificates and keys added.

Each process is started in its own process group, and :meth:`LocalFederation.close` stops
exactly those groups (the SuperLink's and the SuperNodes' helpers — SuperExec, the
ServerApp and ClientApp processes — live in them): first ``SIGTERM``, then ``SIGKILL``
after a grace period. ``with LocalFederation(...) as fed:`` closes them on every exit,
Ctrl-C included.
"""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

#: environment every Flower process gets: no telemetry, no update check (offline)
QUIET = {"FLWR_TELEMETRY_ENABLED": "0", "FLWR_DISABLE_UPDATE_CHECK": "1"}
#: Flower's own knobs this kit sets (see MEASUREMENTS.md): how often a SuperExec asks its
#: SuperNode (or SuperLink) for a task to launch; Flower's default is 1 s. (0.05 s saved
#: no more time per exchange than 0.2 s, and kept an idle SuperLink or SuperNode busy at
#: 7 % of a core instead of 2 %.)
TUNED = {"FLWR_SUPEREXEC_TASK_POLL_INTERVAL": "0.2"}
FEDERATION = "medseg-local"
HOST = "127.0.0.1"


def free_port() -> int:
    """A TCP port on loopback that nothing listens on now."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _wait_port(port: int, proc: subprocess.Popen, what: str, log: Path,
               timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode} before it "
                               f"listened on {HOST}:{port}; its log: {log}\n"
                               + _tail(log))
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex((HOST, port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not listen on {HOST}:{port} within {timeout:.0f} s; "
                       f"its log: {log}\n" + _tail(log))


def _tail(path: Path, n: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


@dataclass
class Node:
    """One started SuperNode: its site, node config, process and log."""

    site: int
    node_config: str
    proc: subprocess.Popen
    log: Path
    port: int


@dataclass
class LocalFederation:
    """A SuperLink and one SuperNode per entry of ``node_configs`` on loopback.

    Args:
        workdir: where ``FLWR_HOME`` (Flower's config and installed apps) and the logs go.
        node_configs: one ``--node-config`` string per SuperNode, e.g.
            ``'site=0 data="/data/site0"'``.
        tuned: set Flower's supported knobs for lower latency (:data:`TUNED`).
        verbose: print what is started and stopped.
    """

    workdir: Path
    node_configs: list[str]
    tuned: bool = True
    verbose: bool = True
    nodes: list[Node] = field(default_factory=list)
    superlink: subprocess.Popen | None = None
    control_port: int = 0

    def __post_init__(self):
        self.workdir = Path(self.workdir).resolve()
        self.home = self.workdir / "flwr_home"
        self.logs = self.workdir / "logs"

    # ---------------------------------------------------------------- processes
    def env(self) -> dict[str, str]:
        """The environment of every Flower process (and of ``flwr run``)."""
        env = dict(os.environ, FLWR_HOME=str(self.home), **QUIET)
        env.setdefault("OMP_NUM_THREADS", "1")
        if self.tuned:
            env.update(TUNED)
        # Flower starts its helpers (flower-superexec, flwr-clientapp) by name: put this
        # interpreter's scripts first on the PATH
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
        return env

    def _start(self, args: list[str], log: Path) -> subprocess.Popen:
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as f:
            return subprocess.Popen(args, stdout=f, stderr=subprocess.STDOUT, env=self.env(),
                                    cwd=self.workdir, start_new_session=True)

    def _say(self, text: str) -> None:
        if self.verbose:
            print(text, flush=True)

    def start(self) -> LocalFederation:
        """Start the SuperLink, then the SuperNodes; write the federation's connection."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.home.mkdir(parents=True, exist_ok=True)
        bin_ = Path(sys.executable).parent
        # Flower 1.42 serves the Fleet, Control and Runtime APIs on one HTTP port
        self.control_port = link = free_port()
        self._say("=" * 78 + "\nINSECURE LOCAL FEDERATION: no TLS, no node authentication, "
                  f"loopback ({HOST}) only.\nFor real sites use TLS and SuperNode "
                  "authentication (Flower docs). Logs: " + str(self.logs) + "\n" + "=" * 78)
        log = self.logs / "superlink.log"
        self.superlink = self._start(
            [str(bin_ / "flower-superlink"), "--insecure", "--host", HOST, "--port",
             str(link), "--disable-runtime-dependency-installation"], log)
        self._say(f"started SuperLink (pid {self.superlink.pid}) on {HOST}:{link}")
        _wait_port(link, self.superlink, "the SuperLink", log)
        for i, cfg in enumerate(self.node_configs):
            port = free_port()
            log = self.logs / f"supernode{i}.log"
            proc = self._start(
                [str(bin_ / "flower-supernode"), "--insecure", "--superlink",
                 f"{HOST}:{link}", "--host", HOST, "--port", str(port),
                 "--node-config", cfg], log)
            self.nodes.append(Node(i, cfg, proc, log, port))
            self._say(f"started SuperNode {i} (pid {proc.pid}) with node config {cfg}")
        for n in self.nodes:
            _wait_port(n.port, n.proc, f"SuperNode {n.site}", n.log)
        (self.home / "config.toml").write_text(
            f'[superlink]\ndefault = "{FEDERATION}"\n\n[superlink.{FEDERATION}]\n'
            f'address = "{HOST}:{self.control_port}"\ninsecure = true\n')
        return self

    def run(self, app_dir: str | Path, run_config: dict | None = None,
            timeout: float | None = None, log: Path | None = None
            ) -> subprocess.CompletedProcess:
        """``flwr run <app_dir> <federation> --stream`` with ``--run-config`` overrides;
        the ServerApp's log is streamed into ``log`` (default ``logs/run.log``) and echoed
        when ``verbose``."""
        args = [str(Path(sys.executable).parent / "flwr"), "run", str(app_dir), FEDERATION,
                "--stream"]
        if run_config:
            args += ["--run-config", " ".join(f"{k}={_toml(v)}" for k, v in
                                              run_config.items())]
        log = log or self.logs / "run.log"
        self._say("$ " + " ".join(shlex.quote(a) for a in args))
        with open(log, "w") as f:
            proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    env=self.env(), cwd=self.workdir, text=True,
                                    start_new_session=True)
            end = None if timeout is None else time.monotonic() + timeout
            try:
                for line in proc.stdout:
                    f.write(line)
                    f.flush()
                    if self.verbose:
                        print(line, end="", flush=True)
                    if end is not None and time.monotonic() > end:
                        raise TimeoutError(f"flwr run took more than {timeout:.0f} s; "
                                           f"log: {log}")
                proc.wait(timeout=30)
            finally:
                _stop_group(proc)
        return subprocess.CompletedProcess(args, proc.returncode, log.read_text(), "")

    def stop_site(self, site: int, sig: int = signal.SIGTERM) -> None:
        """Stop the SuperNode of ``site`` (and its helpers) with ``sig``: a site that
        disappears."""
        node = self.nodes[site]
        self._say(f"stopping SuperNode {site} (pid {node.proc.pid}) with "
                  f"{signal.Signals(sig).name}")
        _signal_group(node.proc, sig)

    def close(self) -> None:
        """Stop every process group this object started (SuperNodes, then the SuperLink)."""
        procs = [n.proc for n in self.nodes] + ([self.superlink] if self.superlink else [])
        for p in procs:
            _signal_group(p, signal.SIGTERM)
        for p in procs:
            _stop_group(p)
        if procs:
            self._say("stopped the SuperLink and SuperNodes this run started (pids "
                      + ", ".join(str(p.pid) for p in procs) + ")")
        self.nodes, self.superlink = [], None

    def __enter__(self) -> LocalFederation:
        # a SIGTERM (``timeout``, a job runner) ends this process through ``__exit__`` too,
        # as Ctrl-C does, so the processes started here are stopped with it
        self._sigterm = None
        if threading.current_thread() is threading.main_thread():
            self._sigterm = signal.signal(signal.SIGTERM, _raise_exit)
        try:
            return self.start()
        except BaseException:
            self.__exit__()
            raise

    def __exit__(self, *exc) -> None:
        try:
            self.close()
        finally:
            if self._sigterm is not None:
                signal.signal(signal.SIGTERM, self._sigterm)
                self._sigterm = None


def _raise_exit(signum, frame):
    raise SystemExit(128 + signum)


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)  # the group this object started (start_new_session)
    except (ProcessLookupError, PermissionError):
        pass


def _stop_group(proc: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM the process group of ``proc``, SIGKILL it after ``grace`` seconds."""
    if proc.poll() is None:
        _signal_group(proc, signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
    _signal_group(proc, signal.SIGKILL)  # helpers the leader left behind
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass


def _toml(v) -> str:
    """A run-config value as Flower's ``--run-config`` parses it (TOML)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'
