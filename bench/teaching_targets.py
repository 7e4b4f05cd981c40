"""Do the course defaults teach what the notebooks say? The learning targets of issue 8.

Trains the runs behind the targets at the course defaults (:mod:`medseg_kit.course`), one
thread, for every seed in ``course.SEEDS``, and prints the final pooled test Dice as
mean ± std per partition and strategy, the two gaps the notebooks assert and the cost of
one run (wall and CPU seconds: the machine may be shared, CPU seconds say what one core
spends):

- IID sites: ``sflv2`` within 3 Dice points of ``centralized``;
- the skewed partition of notebook 05 (quantity skew): ``sflv2`` ahead of ``local`` by
  at least 5 points.

``--all`` adds the other strategies of notebook 04 (fl, sl, sflv1) and every partition of
notebook 05. Timings and Dice are reported, never asserted (the notebooks assert them).

    OMP_NUM_THREADS=1 python bench/teaching_targets.py [--all] [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from medseg_kit import course  # noqa: E402
from medseg_kit.federated import train  # noqa: E402


def measure(config) -> dict:
    """Train one run (data already cached); its final Dice and its cost."""
    t0, c0 = time.perf_counter(), time.process_time()
    history, _ = train(config, progress=False)
    return {"dice": history.final()["dice"], "wall": time.perf_counter() - t0,
            "cpu": time.process_time() - c0}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--all", action="store_true", help="every strategy and partition")
    p.add_argument("--seeds", type=int, nargs="+", default=list(course.SEEDS))
    args = p.parse_args()
    torch.set_num_threads(1)
    iid = ("centralized", "local", "fl", "sl", "sflv1", "sflv2") if args.all else (
        "centralized", "local", "sflv2")
    configs = [c for c in course.runs(iid, args.seeds)]
    skew = [c for c in course.non_iid() if c.partition != "iid"
            and (args.all or c.partition == "quantity")]
    configs += [course.config(**{**c.to_dict(), "seed": s}) for c in skew
                if c.seed == course.SEEDS[0] for s in args.seeds]
    b = course.BASE
    print(f"course defaults: {b.model} width {b.width}, {b.dataset} x{b.n_images}, {b.size} px, "
          f"{b.sites} sites, {b.rounds} rounds, batch {b.batch_size}, {b.optimizer} lr {b.lr}, "
          f"bn_calibration {b.bn_calibration}; seeds {args.seeds}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} thread")
    for c in configs:  # synthesize the data first, so that no run's time includes it
        from medseg_kit.federated.run import resolve_data
        resolve_data(c, progress=False)
    results: dict[tuple, list[dict]] = {}
    for c in configs:
        key = (c.partition, c.concentration, c.sites, c.strategy)
        results.setdefault(key, []).append(measure(c))
    print("\n| partition | strategy | final Dice (mean ± std) | per seed | s/run wall | "
          "s/run CPU |\n|---|---|---:|---|---:|---:|")
    means = {}
    for (part, conc, sites, strat), rs in results.items():
        d = np.array([r["dice"] for r in rs])
        means[(part, strat)] = d.mean()
        label = part if part in ("iid", "acquisition") else f"{part} (α {conc}, {sites} sites)"
        print(f"| {label} | {strat} | {d.mean():.3f} ± {d.std():.3f} | "
              f"{', '.join(f'{x:.3f}' for x in d)} | {np.mean([r['wall'] for r in rs]):.1f} | "
              f"{np.mean([r['cpu'] for r in rs]):.1f} |")
    gap = means[("iid", "centralized")] - means[("iid", "sflv2")]
    print(f"\nIID: centralized - sflv2 = {100 * gap:+.1f} Dice points (target <= 3)")
    for part in ("quantity", "label", "acquisition"):
        if (part, "sflv2") in means and (part, "local") in means:
            lead = means[(part, "sflv2")] - means[(part, "local")]
            print(f"{part}: sflv2 - local = {100 * lead:+.1f} Dice points (target >= 5)")


if __name__ == "__main__":
    main()
