"""``medseg-kit privacy``: attack the cut from the command line.

    medseg-kit privacy --model unet --cuts 1,2,3 --out runs/privacy
    medseg-kit privacy --model unet --cuts 1 --defense noise --strength 0,1,4 --out runs/noise
    medseg-kit privacy --model unet --cuts 1 --defense nopeek --strength 0,1,3 --out runs/nopeek

For each strength of the defense one SplitFed run is trained (at the model's default cut,
or ``--train-cut``); the server's inversion attack runs at each front depth of ``--cuts``
and the label inference at the trained cut. Writes ``attacks.csv``, ``labels.csv``,
``tradeoff.csv``, ``results.json``, ``results.md`` and the figures to ``--out``.
:func:`add_privacy_command` adds the subcommand to the CLI's parser.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from ..federated import RunConfig
from ..models import list_models
from ..wire import NOISES
from .report import cut_table, label_table, tradeoff_rows, tradeoff_table, write_results
from .sweep import DEFENSES, check_strengths, privacy_sweep

#: the scale the command trains at unless told otherwise: the course's teaching run
#: (64 px, 120 synthetic Kvasir images, three sites, six rounds of sflv2, batches of 4)
TEACHING = RunConfig(strategy="sflv2", size=64, n_images=120, sites=3, rounds=6,
                     batch_size=4, bn_calibration=8)


def _ints(flag: str, text: str) -> list[int]:
    try:
        out = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise ValueError(f"{flag} wants comma-separated integers such as 1,2,3; got "
                         f"{text!r}") from None
    if not out:
        raise ValueError(f"{flag} wants comma-separated integers such as 1,2,3; got {text!r}")
    return out


def _floats(flag: str, text: str) -> list[float]:
    try:
        return [float(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise ValueError(f"{flag} wants comma-separated numbers such as 0,0.5,1; got "
                         f"{text!r}") from None


def add_privacy_command(subparsers, base: RunConfig | None = None) -> None:
    """Add ``medseg-kit privacy`` to the CLI's subparsers. ``base``: the run settings the
    flags change (default :data:`TEACHING`)."""
    base = base or TEACHING
    p = subparsers.add_parser(
        "privacy", help="what the server can reconstruct and infer at each cut; defenses",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=base.model, help=f"one of {', '.join(list_models())} "
                   f"(default {base.model})")
    p.add_argument("--cuts", default=None, help="comma-separated front depths to attack "
                   "(default: every front the model allows)")
    p.add_argument("--defense", default="none", help=f"one of {', '.join(DEFENSES)} "
                   "(default none)")
    p.add_argument("--strength", default="0", help="comma-separated strengths: noise "
                   "standard deviation or NoPeek weight (default 0)")
    p.add_argument("--noise", default=base.noise, help=f"noise kind: {', '.join(NOISES)} "
                   f"(default {base.noise})")
    p.add_argument("--out", required=True, help="folder for the tables and figures")
    p.add_argument("--train-cut", dest="train_cut", type=int, nargs=2, default=None,
                   metavar=("FRONT", "BACK"), help="the cut the runs train at (default: the "
                   "model's default cut)")
    for flag, field, kind, what in (
            ("--size", "size", int, "square input size (px)"),
            ("--n-images", "n_images", int, "synthetic images to generate"),
            ("--sites", "sites", int, "simulated hospital sites"),
            ("--rounds", "rounds", int, "SplitFed rounds per run"),
            ("--batch-size", "batch_size", int, "images per training step"),
            ("--seed", "seed", int, "seeds the runs, the data and the attacks")):
        p.add_argument(flag, dest=field, type=kind, default=getattr(base, field),
                       help=f"{what} (default {getattr(base, field)})")
    p.add_argument("--width", type=int, default=base.width,
                   help="model width (default: the model's teaching width)")
    p.add_argument("--device", default=base.device, help=f"auto, cpu, cuda (default "
                   f"{base.device})")
    p.add_argument("--aux-images", dest="aux_images", type=int, default=96,
                   help="the server's own synthetic images (default 96)")
    p.add_argument("--targets", type=int, default=32,
                   help="site 0's training images attacked (default 32)")
    p.add_argument("--steps", type=int, default=100,
                   help="training steps of the inversion decoder (default 100)")
    p.add_argument("--allow-raw", dest="allow_raw", action="store_true",
                   help="also attack cuts that send raw image data (refused by default)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_privacy, privacy_base=base)


def _cmd_privacy(args) -> int:
    if args.model not in list_models():
        raise ValueError(f"unknown model {args.model!r}; choose one of "
                         f"{', '.join(list_models())}")
    if args.defense not in DEFENSES:
        raise ValueError(f"--defense must be one of {', '.join(DEFENSES)}; got "
                         f"{args.defense!r}")
    if args.noise not in NOISES:
        raise ValueError(f"--noise must be one of {', '.join(NOISES)}; got {args.noise!r}")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; expected a folder")
    strengths = check_strengths(args.defense, _floats("--strength", args.strength))
    fronts = _ints("--cuts", args.cuts) if args.cuts is not None else None
    for flag, v, lo in (("--aux-images", args.aux_images, 2), ("--targets", args.targets, 1),
                        ("--steps", args.steps, 1)):
        if v < lo:
            raise ValueError(f"{flag} must be an integer >= {lo}; got {v}")
    config = replace(args.privacy_base, model=args.model, width=args.width, size=args.size,
                     n_images=args.n_images, sites=args.sites, rounds=args.rounds,
                     batch_size=args.batch_size, seed=args.seed, device=args.device,
                     noise=args.noise, allow_raw=args.allow_raw,
                     cut=tuple(args.train_cut) if args.train_cut else None)
    result = privacy_sweep(config, fronts=fronts, defense=args.defense, strengths=strengths,
                           n_aux=args.aux_images, n_targets=args.targets, steps=args.steps,
                           allow_raw=args.allow_raw, progress=not args.quiet)
    write_results(args.out, [result], config=config.to_dict())
    print(cut_table(result.rows))
    print()
    print(label_table(result.label_rows))
    if args.defense != "none":
        print()
        print(tradeoff_table(tradeoff_rows(result)))
    print(f"\nwrote {args.out}/attacks.csv, labels.csv, tradeoff.csv, results.json, "
          "results.md and the figures")
    return 0
