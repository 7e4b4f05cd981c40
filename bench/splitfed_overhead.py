"""How much does SplitFed cost over centralized training on the same data?

DESIGN.md's bar: the authors' public UNet SplitFed loop costs 2.0-2.7x a centralized epoch
on a 2-core CPU (5 sites x 40 images, 128x128); ours should cost at most 1.10x.

Times one training pass over the same 200 images: centralized (one model, one optimizer)
and sflv2 / sflv1 (5 sites, U-shaped default cut, per-batch hand-offs through the wire,
FedAvg at the end). Evaluation is not timed. Median of REPEATS passes after a warm-up.

    python bench/splitfed_overhead.py [--size 128] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from medseg_kit.data import SegData
from medseg_kit.federated import RunConfig
from medseg_kit.federated.run import Run
from medseg_kit.federated.strategies import make_strategy


def synthetic(n: int, size: int) -> SegData:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (n, size, size, 3), dtype=np.uint8)
    masks = (rng.random((n, size, size)) > 0.7).astype(np.uint8)
    return SegData("bench", images, masks, ("background", "fg"))


def time_pass(strategy: str, size: int, repeats: int) -> float:
    # 250 images with a 20 % test split: 200 training images, 40 per site
    config = RunConfig(strategy=strategy, sites=5, size=size, batch_size=8, device="cpu",
                       rounds=repeats + 1)
    run = Run(config, data=synthetic(250, size), progress=False)
    strat = make_strategy(strategy, run)
    active = [s.id for s in run.sites]
    times = []
    for r in range(repeats + 1):
        t0 = time.perf_counter()
        strat.train_round(r, active)
        times.append(time.perf_counter() - t0)
    return statistics.median(times[1:])


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, UNet (teaching "
          f"width), 5 sites x 40 images, {args.size}x{args.size}, batch 8")
    base = time_pass("centralized", args.size, args.repeats)
    print("| strategy | seconds per pass | x centralized |\n|---|---:|---:|")
    print(f"| centralized | {base:.2f} | 1.00 |")
    for s in ("sflv2", "sflv1", "fl"):
        t = time_pass(s, args.size, args.repeats)
        print(f"| {s} | {t:.2f} | {t / base:.2f} |")


if __name__ == "__main__":
    main()
