"""Time one training step of every model at its teaching width on this CPU.

One step = forward, binary cross-entropy, backward and an Adam step, on a batch of 8
random 128x128 images. The models are timed round-robin (one step of each in turn), so
that load from other processes falls on all of them alike; the figure is the median
over the repeats after the warm-up steps. Prints a markdown table with the parameter
counts and FLOPs of :func:`medseg_kit.models.summary.model_table` beside the step time
and its ratio to the teaching UNet's.

Usage:
    python bench/models_step_time.py [--size 128] [--batch 8] [--repeats 5] [--warmup 2]
                                     [--threads 2] [--models unet,segnet,...]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
import warnings

import torch
import torch.nn.functional as F

from medseg_kit.models import create_model, list_models
from medseg_kit.models.summary import markdown_table, model_table


def step_times(names: list[str], size: int, batch: int, repeats: int, warmup: int
               ) -> dict[str, float]:
    """Median seconds per training step for each model, timed round-robin."""
    torch.manual_seed(0)
    x = torch.randn(batch, 3, size, size)
    y = (torch.rand(batch, 1, size, size) > 0.5).float()
    runs = []
    for name in names:
        net = create_model(name, in_channels=3, num_classes=1).train()
        runs.append((name, net, torch.optim.Adam(net.parameters(), lr=1e-3), []))
    for _ in range(warmup + repeats):
        for _name, net, opt, times in runs:
            t0 = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            F.binary_cross_entropy_with_logits(net(x), y).backward()
            opt.step()
            times.append(time.perf_counter() - t0)
    return {name: statistics.median(times[warmup:]) for name, _, _, times in runs}


def main(argv: list[str] | None = None) -> str:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--models", default=",".join(list_models()))
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore", message="Using padding='same'")
    torch.set_num_threads(args.threads)
    names = args.models.split(",")
    rows = model_table(size=args.size, names=names)
    secs = step_times(names, args.size, args.batch, args.repeats, args.warmup)
    ref = secs.get("unet")
    extra = {f"step s (b={args.batch}, {args.size}²)": {n: f"{t:.3f}" for n, t in secs.items()}}
    if ref:
        extra["× unet"] = {n: f"{t / ref:.2f}" for n, t in secs.items()}
    table = markdown_table(rows, extra)
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"{args.threads} threads; median of {args.repeats} steps after {args.warmup} "
          f"warm-up, round-robin")
    print(table)
    return table


if __name__ == "__main__":
    main()
