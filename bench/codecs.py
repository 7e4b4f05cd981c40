"""What each wire codec saves in bytes and costs in Dice, in the course's teaching setting.

Trains ``sflv2`` in :data:`medseg_kit.course.BASE` (UNet width 8, 120 synthetic Kvasir
images at 64 px, 3 sites, 6 rounds, batch 4) once per codec spec of
:func:`medseg_kit.course.communication` (seed 0), through the teaching cache
(``MEDSEG_DATA_DIR/teaching``: a second run only loads), and prints a Markdown table: the
bytes a site sends up and receives down per round (what the wire counted; the ``exact``
column says every site row equals :func:`medseg_kit.traffic.site_round_bytes`), their
ratio to no codec, the final pooled test Dice and its change against no codec, in points.

One seed: Dice changes of a point or two are within seed-to-seed spread (notebook 04's
three seeds of ``sflv2`` spread over about a point).

Usage:
    OMP_NUM_THREADS=1 python bench/codecs.py [--seed 0] [--codecs none fp16 ...]
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from medseg_kit import communication, course, teaching
from medseg_kit.federated.run import resolve_data
from medseg_kit.models import create_model

COLUMNS = {"codec": "codec", "bytes_up": "up / site / round",
           "bytes_down": "down / site / round", "ratio": "ratio to none", "dice": "final Dice",
           "dice_change": "Dice change (points)", "exact": "wire = formula"}


def main(argv: list[str] | None = None) -> str:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--codecs", nargs="+", default=None,
                    help="codec specs (default: those of course.communication())")
    args = ap.parse_args(argv)
    kw = {"codecs": args.codecs} if args.codecs else {}
    configs = course.communication(seed=args.seed, **kw)
    t0, c0 = time.perf_counter(), time.process_time()
    runs = teaching.run_many(configs)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    c = configs[0]
    data = resolve_data(c, progress=False)
    net = create_model(c.model, in_channels=data.in_channels, num_classes=data.model_classes,
                       width=c.width)
    rows = communication.codec_rows(runs, net)
    text = "\n".join([
        f"sflv2, {c.model} width {c.width}, {c.dataset} synthetic {c.n_images} images at "
        f"{c.size} px, {c.sites} sites, {c.rounds} rounds, batch {c.batch_size}, "
        f"{c.bn_calibration} calibration images, seed {c.seed}; torch {torch.__version__}, "
        f"{platform.machine()}, {torch.get_num_threads()} thread(s); "
        f"{wall:.0f} s wall / {cpu:.0f} s CPU (0 when cached)", "",
        communication.to_markdown(rows, COLUMNS)])
    print(text)
    return text


if __name__ == "__main__":
    main()
