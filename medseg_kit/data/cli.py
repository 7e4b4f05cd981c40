"""The ``data`` commands of ``medseg-kit``: ``check``, ``synth`` and ``download``.

Wire them into a top-level parser with :func:`add_data_commands`; every command stores
its handler as ``func`` (``args.func(args)`` returns the exit status)::

    parser = argparse.ArgumentParser(prog="medseg-kit")
    add_data_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["data", "check", "--dataset", "kvasir", "--root", "d"])
    sys.exit(args.func(args))

``data_scripts/download.py`` uses :func:`download_main`, the same download code with one
sub-command per dataset.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .base import data_dir, list_datasets, synthesize
from .check import check_dataset
from .download import (
    SOURCES,
    DownloadError,
    LicenseNotAccepted,
    ManualDownloadRequired,
    install,
    license_text,
)

# Exit statuses of the download command.
EXIT_OK, EXIT_ERROR, EXIT_LICENSE, EXIT_MANUAL = 0, 1, 2, 3


def add_data_commands(subparsers) -> argparse.ArgumentParser:
    """Add ``data check``, ``data synth`` and ``data download`` to ``subparsers``."""
    data = subparsers.add_parser("data", help="check, synthesize or download datasets",
                                 description="Check, synthesize or download datasets.")
    sub = data.add_subparsers(dest="data_command", required=True)
    names = list_datasets()

    check = sub.add_parser("check", help="report every problem in a dataset folder",
                           description="Scan and decode a dataset folder; list every "
                           "missing, unreadable or inconsistent file. Exits 1 on problems.")
    check.add_argument("--dataset", required=True, choices=names)
    check.add_argument("--root", required=True, type=Path, help="the dataset folder")
    check.add_argument("--no-decode", action="store_true",
                       help="only check the layout (fast; reads no pixels)")
    check.add_argument("--limit", type=int, default=None, help="decode at most N samples")
    check.add_argument("--layout", default=None, help="blastocyst: blastsonline or gray")
    check.set_defaults(func=cmd_check)

    synth = sub.add_parser("synth", help="write a synthetic look-alike in the real layout",
                           description="Write synthetic data in the dataset's real layout.")
    synth.add_argument("--dataset", required=True, choices=names)
    synth.add_argument("--out", required=True, type=Path, help="output folder")
    synth.add_argument("--n", type=int, default=200, help="number of images (default 200)")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--layout", default=None,
                       help="blastocyst: blastsonline (default) or gray")
    synth.set_defaults(func=cmd_synth)

    dl = sub.add_parser("download", help="download, verify and unpack a real dataset",
                        description="Download, verify and unpack a real dataset into "
                        "MEDSEG_DATA_DIR.")
    dl.add_argument("--dataset", required=True, choices=sorted(SOURCES))
    add_download_arguments(dl)
    dl.set_defaults(func=cmd_download)
    return data


def add_download_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--accept-license", action="store_true",
                   help="accept the dataset's license (shown first); required")
    p.add_argument("--data-dir", type=Path, default=None,
                   help="where datasets live (default: MEDSEG_DATA_DIR or ~/.medseg_kit/data)")
    p.add_argument("--archive", type=Path, action="append", default=[],
                   help="a local copy of a file of the dataset (by its file name); repeat "
                   "for several; required where no automatic download exists")
    p.add_argument("--force", action="store_true", help="replace an existing dataset folder")
    p.add_argument("--delete-archives", action="store_true",
                   help="delete the downloads after unpacking")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def cmd_check(args) -> int:
    options = {"layout": args.layout} if args.layout else {}
    report = check_dataset(args.dataset, args.root, decode=not args.no_decode,
                           limit=args.limit, progress=sys.stderr.isatty(), **options)
    print(report.format())
    return 0 if report.ok else 1


def cmd_synth(args) -> int:
    options = {"layout": args.layout} if args.layout else {}
    t0 = time.perf_counter()
    out = synthesize(args.dataset, args.out, n=args.n, seed=args.seed,
                     progress=sys.stderr.isatty(), **options)
    dt = time.perf_counter() - t0
    print(f"wrote {args.n} synthetic {args.dataset} images to {out} in {dt:.1f} s "
          f"({args.n / max(dt, 1e-9):.1f} images/s)")
    return 0


def _archives(name: str, paths: list[Path]) -> dict[str, Path]:
    files = [f.name for f in SOURCES[name].files]
    out = {}
    for p in paths:
        if p.name in files:
            out[p.name] = p
        elif len(files) == 1:
            out[files[0]] = p
        else:
            raise DownloadError(f"--archive {p}: its name matches none of {', '.join(files)}")
    return out


def run_download(name: str, args) -> int:
    print(f"== {name} license ==\n{license_text(name)}\n")
    try:
        folder = install(name, accept_license=args.accept_license, root=args.data_dir,
                         archives=_archives(name, args.archive), force=args.force,
                         progress=not args.quiet, keep_archives=not args.delete_archives)
    except LicenseNotAccepted:
        print(f"Not downloaded: pass --accept-license to accept the license of {name}.",
              file=sys.stderr)
        return EXIT_LICENSE
    except ManualDownloadRequired as e:
        print(f"Manual step needed for {name}:\n{e}", file=sys.stderr)
        return EXIT_MANUAL
    except DownloadError as e:
        print(f"Download of {name} failed: {e}", file=sys.stderr)
        return EXIT_ERROR
    print(f"{name} is ready in {folder}")
    return EXIT_OK


def cmd_download(args) -> int:
    return run_download(args.dataset, args)


def download_main(argv: list[str] | None = None) -> int:
    """``data_scripts/download.py``: one sub-command per dataset (or ``all``)."""
    parser = argparse.ArgumentParser(
        prog="download.py",
        description=f"Download, verify and unpack the real datasets into {data_dir()} "
        "(MEDSEG_DATA_DIR). Each shows its license and needs --accept-license.")
    sub = parser.add_subparsers(dest="dataset", required=True)
    for name, src in [*SOURCES.items(), ("all", None)]:
        p = sub.add_parser(name, help=(src.homepage if src else "every dataset that "
                                       "downloads automatically"))
        add_download_arguments(p)
    args = parser.parse_args(argv)
    if args.dataset != "all":
        return run_download(args.dataset, args)
    codes = [run_download(n, args) for n, s in SOURCES.items() if all(f.url for f in s.files)]
    return max(codes)


def main(argv: list[str] | None = None) -> int:
    """``python -m medseg_kit.data.cli data ...`` (the same commands as ``medseg-kit``)."""
    parser = argparse.ArgumentParser(prog="python -m medseg_kit.data.cli")
    add_data_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
