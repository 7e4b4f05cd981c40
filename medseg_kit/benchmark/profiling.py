"""Where the time of one round goes: ``torch.profiler`` over one pass, the top operators.

The ops that take the most self time say what the round computes; the ops called most
often say what it does besides computing (a finiteness check per tensor, state copies,
kernel launches), which is what keeps a GPU idle in an eager loop.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from torch.profiler import ProfilerActivity, profile


def _device_us(event) -> float:
    for name in ("self_device_time_total", "self_cuda_time_total"):
        v = getattr(event, name, None)
        if v:
            return float(v)
    return 0.0


def profile_pass(step: Callable[[int], None], device: torch.device, sync: Callable[[], None],
                 top: int = 15, k: int = 1) -> dict:
    """Profile ``step(k)`` (warm it up first); return the wall seconds of the profiled
    pass, the number of operator calls, the CPU and device self time in all and the
    ``top`` operators by self CPU time and by calls."""
    activities = [ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(ProfilerActivity.CUDA)
    sync()
    with profile(activities=activities) as prof:
        t0 = time.perf_counter()
        step(k)
        sync()
        wall = time.perf_counter() - t0
    events = list(prof.key_averages())

    def row(e) -> dict:
        return {"op": e.key, "calls": int(e.count),
                "self_cpu_ms": round(e.self_cpu_time_total / 1000, 2),
                "self_device_ms": round(_device_us(e) / 1000, 2)}

    by_time = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:top]
    by_calls = sorted(events, key=lambda e: e.count, reverse=True)[:top]
    launches = sum(e.count for e in events if e.key in ("cudaLaunchKernel",
                                                         "cuLaunchKernel"))
    return {"wall_s": round(wall, 3), "op_calls": int(sum(e.count for e in events)),
            "self_cpu_s": round(sum(e.self_cpu_time_total for e in events) / 1e6, 3),
            "self_device_s": round(sum(_device_us(e) for e in events) / 1e6, 3),
            "kernel_launches": int(launches),
            "by_time": [row(e) for e in by_time], "by_calls": [row(e) for e in by_calls]}
