"""``medseg-kit compare``: the matrix from the command line.

    medseg-kit compare --models unet,segnet --datasets kvasir,ham10000,blastocyst \\
        --seeds 2 --out runs/compare

(add ``--size 256 --width paper --rounds 50 --real`` on a GPU for the paper's setting).
:func:`add_compare_command` adds the subcommand to the CLI's parser; it trains with
:func:`~medseg_kit.comparison.run_matrix` and prints the IoU and ordering tables.
"""

from __future__ import annotations

from .. import runflags
from ..data import list_datasets
from ..federated.config import STRATEGIES
from .runner import run_matrix
from .stats import BASELINES, ordering_checks, summarize_cells
from .tables import metric_table, ordering_table

#: what each cell sets itself (the rest of the run flags are shared with ``train``)
PER_CELL = ("model", "strategy", "dataset", "seed", "data_root", "cut")


def _names(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def add_compare_command(subparsers) -> None:
    """Add ``medseg-kit compare`` to the CLI's subparsers."""
    import argparse

    p = subparsers.add_parser(
        "compare", help="models x strategies x datasets x seeds: the paper-style table",
        description="Train every (dataset, model, strategy, seed) cell, skipping finished "
                    "ones, and write results.csv, results.json and results.md to --out.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--models", type=_names, default="unet", help="comma-separated")
    p.add_argument("--strategies", type=_names, default="centralized,local,sflv2",
                   help="comma-separated: the baselines centralized (C) and local (L) and "
                        "any of " + ", ".join(s for s in STRATEGIES if s not in BASELINES)
                        + " (S)")
    p.add_argument("--datasets", type=_names, default="kvasir",
                   help="comma-separated: " + ", ".join(list_datasets()))
    p.add_argument("--seeds", default="1", help="a count (2: seeds 0,1) or a list (0,3,7)")
    p.add_argument("--out", required=True, help="matrix folder (one sub-folder per cell)")
    runflags.add_run_flags(p, skip=PER_CELL)
    p.add_argument("--real", action="store_true",
                   help="use the real datasets installed under MEDSEG_DATA_DIR (see "
                        "`medseg-kit data`); default: synthetic stand-ins")
    p.add_argument("--data-root", dest="data_root", action="append", default=[],
                   metavar="DATASET=FOLDER", help="a real dataset's folder (repeatable)")
    p.add_argument("--hd95", action="store_true", help="also compute HD95 (final evaluation)")
    p.add_argument("--worst", type=int, default=6, help="worst test images kept per cell")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_compare)


def _cmd_compare(args) -> int:
    base = runflags.config_from_flags(args)
    roots = {}
    for item in args.data_root:
        name, sep, folder = item.partition("=")
        if not sep or not folder:
            raise ValueError(f"--data-root wants DATASET=FOLDER; got {item!r}")
        roots[name] = folder
    if args.real:
        from ..data.catalog import find_real

        for name in args.datasets:
            if name not in roots:
                found = find_real(name)
                if found is None:
                    raise FileNotFoundError(f"--real: no complete {name} dataset under "
                                            "MEDSEG_DATA_DIR; see `medseg-kit data --help`")
                roots[name] = str(found)
    results = run_matrix(args.models, args.strategies, args.datasets, args.seeds, args.out,
                         base, progress=not args.quiet, hd95=args.hd95, worst=args.worst,
                         data_roots=roots)
    summary = summarize_cells(results)
    print(metric_table(summary, "iou"))
    print()
    print(ordering_table(ordering_checks(summary)))
    print(f"\nwrote {args.out}/results.md, results.csv, results.json and one folder per cell")
    return 0
