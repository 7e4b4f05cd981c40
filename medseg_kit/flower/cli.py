"""``medseg-kit flower demo|latency``: the protocol on Flower's deployment runtime, locally.

    medseg-kit flower demo [--out outputs/flower] [--rounds 2]
        a SuperLink and one SuperNode per site on loopback (INSECURE, this machine only),
        sflv2 through them beside the in-process simulation; the results table of both
    medseg-kit flower latency [--n 6] [--stock]
        seconds per empty round trip between the ServerApp and a SuperNode

Needs the ``flower`` extra (``pip install 'medseg_kit[flower]'``).
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path


def _need_flower() -> None:
    try:
        import flwr  # noqa: F401
    except ImportError:
        raise ValueError("Flower is not installed: pip install 'medseg_kit[flower]'") from None


def _cmd_demo(args) -> int:
    _need_flower()
    from .local import FLOWER_DEMO, demo

    overrides = {k: getattr(args, k) for k in ("rounds", "sites", "n_images", "strategy")
                 if getattr(args, k) is not None}
    demo(args.out, replace(FLOWER_DEMO, **overrides))
    return 0


def _cmd_latency(args) -> int:
    _need_flower()
    from .local import latency

    seconds = latency(Path(args.out), args.n, tuned=not args.stock, torch=not args.no_torch)
    s = sorted(seconds)
    print(f"{'stock' if args.stock else 'tuned'} Flower, ClientApp "
          f"{'without' if args.no_torch else 'importing'} PyTorch: round trips "
          + " ".join(f"{t:.2f}" for t in seconds) + f" s; median {s[len(s) // 2]:.2f} s")
    return 0


def add_flower_command(subparsers) -> None:
    """Add ``medseg-kit flower`` to the CLI's subparsers."""
    p = subparsers.add_parser("flower", help="SplitFed on Flower's deployment runtime "
                              "(local demo, latency)", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="flower_command", required=True)
    d = sub.add_parser("demo", help="sflv2 on a local SuperLink + SuperNodes beside the "
                       "simulation")
    d.add_argument("--out", default="outputs/flower")
    d.add_argument("--rounds", type=int, default=None)
    d.add_argument("--sites", type=int, default=None)
    d.add_argument("--n-images", dest="n_images", type=int, default=None)
    d.add_argument("--strategy", choices=("sflv2", "sflv1", "fl"), default=None)
    d.set_defaults(func=_cmd_demo)
    lat = sub.add_parser("latency", help="seconds per ServerApp <-> SuperNode round trip")
    lat.add_argument("--out", default="outputs/flower-latency")
    lat.add_argument("--n", type=int, default=6, help="round trips (default 6)")
    lat.add_argument("--stock", action="store_true", help="Flower's default poll settings")
    lat.add_argument("--no-torch", dest="no_torch", action="store_true",
                     help="the ClientApp does not import PyTorch")
    lat.set_defaults(func=_cmd_latency)
