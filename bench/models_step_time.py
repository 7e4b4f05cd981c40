"""Time one training step of every model at its teaching width on this CPU.

One step = forward, binary cross-entropy, backward and an Adam step, on a batch of 8
random 128x128 images. The models are timed round-robin (one step of each in turn), so
that load from other processes falls on all of them alike; the figures are medians over
the repeats after the warm-up steps. Two clocks: the CPU time of this process (the cost
of the step, little affected by other processes on a shared machine) and the wall time.
The default is one thread, the setting in which CPU time is the cost; ``--threads 2``
measures what a 2-core laptop sees. Prints a markdown table with the parameter counts
and FLOPs of :func:`medseg_kit.zoo.model_table`, the step times and the
ratio of each model's CPU time to the teaching UNet's — the teaching widths are chosen
so that this ratio is at most about 1.

Usage:
    python bench/models_step_time.py [--size 128] [--batch 8] [--repeats 7] [--warmup 2]
                                     [--threads 1] [--models unet,segnet,...]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch
import torch.nn.functional as F

from medseg_kit.models import create_model, list_models
from medseg_kit.zoo import markdown_table, model_table


def step_times(names: list[str], size: int, batch: int, repeats: int, warmup: int
               ) -> dict[str, tuple[float, float]]:
    """Median (CPU seconds, wall seconds) per training step of each model, round-robin."""
    torch.manual_seed(0)
    x = torch.randn(batch, 3, size, size)
    y = (torch.rand(batch, 1, size, size) > 0.5).float()
    runs = []
    for name in names:
        net = create_model(name, in_channels=3, num_classes=1).train()
        runs.append((name, net, torch.optim.Adam(net.parameters(), lr=1e-3), []))
    for _ in range(warmup + repeats):
        for _name, net, opt, times in runs:
            c0, t0 = time.process_time(), time.perf_counter()
            opt.zero_grad(set_to_none=True)
            F.binary_cross_entropy_with_logits(net(x), y).backward()
            opt.step()
            times.append((time.process_time() - c0, time.perf_counter() - t0))
    return {name: (statistics.median(t[0] for t in times[warmup:]),
                   statistics.median(t[1] for t in times[warmup:]))
            for name, _, _, times in runs}


def main(argv: list[str] | None = None) -> str:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--models", default=",".join(list_models()))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    names = args.models.split(",")
    rows = model_table(size=args.size, names=names)
    secs = step_times(names, args.size, args.batch, args.repeats, args.warmup)
    extra = {"CPU s/step": {n: f"{c:.3f}" for n, (c, _) in secs.items()},
             "wall s/step": {n: f"{w:.3f}" for n, (_, w) in secs.items()}}
    if "unet" in secs:
        ref = secs["unet"][0]
        extra["CPU × unet"] = {n: f"{c / ref:.2f}" for n, (c, _) in secs.items()}
    table = markdown_table(rows, extra)
    print(f"One training step (Adam), batch {args.batch}, {args.size}x{args.size}, teaching "
          f"widths; torch {torch.__version__}, {platform.machine()}, {args.threads} "
          f"thread(s); median of {args.repeats} steps after {args.warmup} warm-up, "
          f"round-robin. GFLOPs: forward, one image.")
    print(table)
    return table


if __name__ == "__main__":
    main()
