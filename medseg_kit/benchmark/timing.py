"""Interleaved timing: every contender of a group, pass after pass, in rotating order.

A shared machine's load changes from second to second. Timing A five times and then B
five times lets that change fall on one of them; timing them in turn (A B C, then B C A,
then C A B ...) spreads it over all, and the ratio of two passes made within one turn of
the rotation cancels most of it. So :func:`interleave` times ``warmup + repeats`` turns,
drops the warm-up turns (first-touch allocations, compilation, caches), and
:func:`paired_ratio` takes the median over the turns of the ratio within each turn.

Two clocks per pass: wall seconds (what a user waits; on a GPU after synchronising the
device) and the CPU seconds of this process (what the pass costs the CPU; on a shared
machine it moves less than the wall time does).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence

import torch
from tqdm.auto import tqdm

from .passes import Contender


def device_sync(device: torch.device) -> Callable[[], None]:
    """A function that waits for ``device``'s queued work (a no-op on the CPU)."""
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


def interleave(contenders: Sequence[Contender], repeats: int, warmup: int,
               sync: Callable[[], None], desc: str = "bench", progress: bool = True
               ) -> dict[str, dict[str, list[float]]]:
    """Time ``warmup + repeats`` turns of every contender, each turn in an order rotated
    by one; returns ``{key: {"wall": [...], "cpu": [...]}}`` for the timed turns (the
    list index is the turn).

    A contender whose pass raises (a compiler missing for ``torch.compile``, memory
    running out) is timed no more; its entry holds ``"error"``, the first line of the
    exception, and the others go on.
    """
    n = len(contenders)
    times = {c.key: {"wall": [], "cpu": []} for c in contenders}
    with tqdm(total=(warmup + repeats) * n, desc=desc, disable=not progress,
              leave=False) as bar:
        for k in range(warmup + repeats):
            for c in [*contenders[k % n:], *contenders[:k % n]]:
                bar.update()
                if "error" in times[c.key]:
                    continue
                bar.set_postfix_str(f"{c.variant} {c.label}")
                sync()
                t0, c0 = time.perf_counter(), time.process_time()
                try:
                    c.step(k)
                    sync()
                except Exception as e:  # reported in the result; the others go on
                    first = (str(e).strip().splitlines() or [""])[0][:300]
                    times[c.key]["error"] = f"{type(e).__name__}: {first}"
                    continue
                wall, cpu = time.perf_counter() - t0, time.process_time() - c0
                if k >= warmup:
                    times[c.key]["wall"].append(wall)
                    times[c.key]["cpu"].append(cpu)
    return times


def paired_ratio(a: Sequence[float], b: Sequence[float]) -> float:
    """Median over the turns of ``a[k] / b[k]`` (both timed in turn ``k``)."""
    return statistics.median(x / y for x, y in zip(a, b, strict=True))


def summary(values: Sequence[float]) -> dict[str, float]:
    """Median, minimum and maximum of some timings."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}
