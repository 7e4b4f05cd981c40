"""``medseg-kit bench``: the benchmark from the command line.

    medseg-kit bench                                  UNet, teaching width, this CPU
    medseg-kit bench --models cpu                     the four models of the CPU targets
    medseg-kit bench --paper --size 256               the ten models at paper width (GPU)
    medseg-kit bench --quick                          tiny sizes, one turn: a smoke test

:func:`add_bench_command` adds the subcommand to the CLI's parser; it prints the Markdown
tables and writes ``bench.md`` and ``bench.json`` to ``--out``.
"""

from __future__ import annotations

import argparse
import sys

from .passes import VARIANTS
from .suite import CPU_MODELS, QUICK, BenchSettings, resolve_models, run_bench
from .tables import write


def _ints(text: str) -> list[int]:
    try:
        return [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers such as 1,5; "
                                         f"got {text!r}") from None


def _names(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def add_bench_command(subparsers) -> None:
    """Add ``medseg-kit bench`` to the CLI's subparsers."""
    p = subparsers.add_parser(
        "bench", help="time the kit against a plain loop and SplitFed against centralized",
        description="Time, in one process on the same data and device, one training pass "
                    "of a plain PyTorch loop, the kit's centralized training and each "
                    "federated strategy with 1 and 5 sites, in turns, and print the ratios "
                    "(Markdown; bench.md and bench.json in --out).",
        epilog="defaults: unet at teaching width, 128 px, batch 8, 200 images, 3 turns; "
               "--paper: all ten models at paper width, 256 px; --quick: "
               + ", ".join(f"{k} {v}" for k, v in QUICK.items()) + ". Variants: "
               + ", ".join(VARIANTS) + " (default: fp32 on a CPU; fp32, bf16-cl, compile "
               "on a GPU).")
    p.add_argument("--models", default=None,
                   help="comma-separated names, 'all' (the ten) or 'cpu' (the CPU target "
                        f"list: {','.join(CPU_MODELS)}); default unet, all with --paper")
    p.add_argument("--paper", action="store_true",
                   help="paper widths (for a GPU); default: teaching widths")
    p.add_argument("--width", type=int, default=None, help="one width for every model")
    p.add_argument("--size", type=int, default=None, help="square input (128; 256 --paper)")
    p.add_argument("--batch-size", dest="batch_size", type=int, default=None,
                   help="images per step (8)")
    p.add_argument("--images", type=int, default=None,
                   help="training images per pass, in total over the sites (200)")
    p.add_argument("--sites", type=_ints, default=None, help="site counts (1,5)")
    p.add_argument("--strategies", type=_names, default=None,
                   help="strategies timed against centralized (sflv2,sflv1)")
    p.add_argument("--variants", type=_names, default=None,
                   help="comma-separated: " + ", ".join(VARIANTS))
    p.add_argument("--repeats", type=int, default=None, help="timed turns (3)")
    p.add_argument("--warmup", type=int, default=None, help="untimed turns first (1)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads (default: OMP_NUM_THREADS or every core)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-data-cache", dest="data_cache", action="store_false",
                   help="skip the decoded-data cache's on/off timing")
    p.add_argument("--profile", action="store_true",
                   help="profile one sflv2 round of the first model: the top operators")
    p.add_argument("--notebooks", action="store_true",
                   help="also time every course notebook at its defaults (make course's "
                        "runner; minutes)")
    p.add_argument("--quick", action="store_true", help="tiny sizes, one turn (CI)")
    p.add_argument("--out", default="outputs/bench", help="folder for bench.md, bench.json")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_bench)


def settings_from_args(args) -> BenchSettings:
    given = {k: getattr(args, k) for k in ("size", "batch_size", "images", "sites",
                                           "strategies", "variants", "repeats", "warmup")
             if getattr(args, k) is not None}
    if args.quick:
        given = {**QUICK, **given}
    if "size" not in given and args.paper:
        given["size"] = 256
    width = args.width if args.width is not None else ("paper" if args.paper else None)
    return BenchSettings(models=resolve_models(args.models, args.paper), width=width,
                         device=args.device, threads=args.threads, seed=args.seed,
                         data_cache=args.data_cache, profile=args.profile,
                         notebooks=args.notebooks, quick=args.quick, **given)


def _cmd_bench(args) -> int:
    from .tables import to_markdown

    settings = settings_from_args(args)
    result = run_bench(settings, out=args.out, progress=not args.quiet)
    print(to_markdown(result))
    md, js = write(result, args.out)
    print(f"wrote {md} and {js}", file=sys.stderr)
    return 0
