"""What a benchmark ran on: CPU model, cores, GPU, torch and its threads.

A ratio measured on a shared 2-core laptop and one measured on an H200 answer different
questions, so every result carries :func:`describe_machine` and every table prints
:func:`machine_line`.
"""

from __future__ import annotations

import os
import platform
import resource
import sys
from pathlib import Path

import torch

from ..units import MIB


def cpu_model() -> str:
    """The CPU's marketing name (``model name`` of ``/proc/cpuinfo``), else what
    :mod:`platform` says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def usable_cores() -> int:
    """Cores this process may run on (its affinity), else the machine's count."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def describe_machine(device: torch.device | str = "cpu") -> dict:
    """The machine as a dict: CPU, cores, load, GPU, torch, threads, Python, OS."""
    device = torch.device(device)
    out = {"cpu": cpu_model(), "cores": os.cpu_count(), "usable_cores": usable_cores(),
           "load_average": load_average(), "torch": torch.__version__,
           "torch_threads": torch.get_num_threads(),
           "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
           "python": sys.version.split()[0], "os": f"{platform.system()} {platform.release()}",
           "arch": platform.machine(), "device": str(device), "gpu": None, "cuda": None}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        out.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 1024 ** 3, 1),
                   cuda=torch.version.cuda)
    elif torch.cuda.is_available():
        out.update(gpu=f"{torch.cuda.get_device_name(0)} (not used)", cuda=torch.version.cuda)
    return out


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages (runnable processes; ``None`` where the OS
    does not say)."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def peak_rss_mib() -> float:
    """The largest resident memory this process has had so far (MiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / MIB


def machine_line(m: dict) -> str:
    """One line for a table's header: CPU, cores, GPU, torch, threads, load."""
    gpu = f"; GPU {m['gpu']} (CUDA {m['cuda']})" if m.get("gpu") else "; no GPU"
    load, end = m.get("load_average"), m.get("load_average_end")
    shared = ""
    if load and max(load[0], (end or load)[0]) >= 0.5:
        shared = (f"; load average {load[0]:g} at the start"
                  + (f", {end[0]:g} at the end" if end else "")
                  + " (other processes share the machine)")
    return (f"{m['cpu']}, {m['cores']} cores ({m['usable_cores']} usable){gpu}; torch "
            f"{m['torch']}, {m['torch_threads']} thread(s); Python {m['python']}, "
            f"{m['os']}{shared}")
