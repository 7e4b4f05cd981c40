"""``medseg-kit``: the command line.

    medseg-kit models                       the zoo: parameters, stages, default cut
    medseg-kit cut --model unet --size 128  every valid cut: what crosses, bytes, param share
    medseg-kit train --strategy sflv2 --out runs/a [--json] [--resume]
    medseg-kit demo                         centralized vs local vs SplitFed on 3 sites
    medseg-kit compare --models ... --datasets ...   the C/L/S comparison table
    medseg-kit privacy --model unet --cuts 1,2,3   what the server could reconstruct or infer
    medseg-kit data check|synth|download ...  check a folder, write synthetic data, fetch
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

from . import runflags
from .benchmark import add_bench_command
from .comparison import add_compare_command
from .data.cli import add_data_commands
from .flower.cli import add_flower_command
from .privacy.cli import add_privacy_command
from .units import MIB


def _cmd_models(args) -> int:
    from .zoo import models_report

    print(models_report(size=args.size))
    return 0


def _cmd_cut(args) -> int:
    from .models import check_input_size, create_model
    from .split import Split, valid_cuts

    check_input_size(args.model, args.size)
    net = create_model(args.model, width=args.width)
    print(f"{args.model}: {len(net)} stages, default cut {net.default_cut}, input "
          f"{args.size}x{args.size}, bytes per image per training step")
    print(net.describe())
    print()
    print(f"{'cut':<9}{'up (KiB)':>10}{'down (KiB)':>11}{'client params':>15}"
          f"{'server':>8}  crossing up | down | kept on site")
    cuts = valid_cuts(net, allow_raw=args.allow_raw, include_vanilla=args.vanilla)
    for f, b in cuts:
        s = Split(net, f, b, allow_raw=args.allow_raw)
        by = s.bytes_per_image(args.size)
        cp, sp = s.param_share()
        share = cp / max(cp + sp, 1)
        raw = f"  RAW IMAGE DATA: {s.raw_up}" if s.raw_up else ""
        print(f"({f},{b}){'':<{8 - len(f'({f},{b})')}}{by['up'] / 1024:>10.1f}"
              f"{by['down'] / 1024:>11.1f}{share:>14.1%}{1 - share:>9.1%}  "
              f"{','.join(s.up)} | {','.join(s.down) or '-'} | {','.join(s.kept) or '-'}{raw}")
    if not args.allow_raw:
        all_cuts = valid_cuts(net, allow_raw=True, include_vanilla=args.vanilla)
        refused = len(all_cuts) - len(cuts)
        if refused:
            print(f"\n{refused} cut(s) not listed: they send raw image data to the server "
                  "(see them with --allow-raw)")
    if args.link is not None:
        _print_round_prices(net, args, cuts)
    return 0


def _parse_link(text: str):
    """``--link DOWN/UP[/LATENCY_MS]`` in Mbit/s, the way links are sold (100/20: 100
    down, 20 up)."""
    from .link import Link

    parts = text.split("/")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) not in (2, 3):
        raise argparse.ArgumentTypeError(f"expected DOWN/UP[/LATENCY_MS] in Mbit/s and ms, "
                                         f"e.g. 100/20 or 100/20/15; got {text!r}")
    try:
        return Link(up_mbps=values[1], down_mbps=values[0],
                    latency_ms=values[2] if len(values) == 3 else 0.0)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _print_round_prices(net, args, cuts) -> None:
    from .traffic import price_cuts
    from .units import format_bytes
    from .wire import Wire

    link, n = args.link, args.images_per_site
    rows = price_cuts(net, args.size, n, link, cuts=cuts, wire=Wire(codec=args.codec),
                      batch_size=args.batch_size, bn_calibration=args.bn_calibration)
    print(f"\nper site and round with {n} images, batches of {args.batch_size}, codec "
          f"{args.codec}, on a {link.down_mbps:g}/{link.up_mbps:g} Mbit/s link (down/up, "
          f"{link.latency_ms:g} ms latency per message):")
    fl = rows[0] if rows else None
    if fl is not None:
        print(f"fl (no cut): {format_bytes(fl['fl_up'])} up, {format_bytes(fl['fl_down'])} "
              f"down, {fl['fl_seconds']:.2f} s")
    print(f"{'cut':<9}{'sflv2 up':>12}{'sflv2 down':>12}{'seconds':>10}{'vs fl':>8}"
          f"{'break-even images/site':>24}")
    for r in rows:
        f, b = r["cut"]
        be = r["break_even"]
        print(f"({f},{b}){'':<{8 - len(f'({f},{b})')}}{format_bytes(r['sflv2_up']):>12}"
              f"{format_bytes(r['sflv2_down']):>12}{r['sflv2_seconds']:>10.2f}"
              f"{r['sflv2_seconds'] / r['fl_seconds']:>7.1f}x"
              f"{'never cheaper' if be is None else f'<= {be:,}':>24}")


def _cmd_train(args) -> int:
    from . import viz
    from .federated import train
    from .federated.run import CHECKPOINT, jsonable

    out = Path(args.out)
    asked = runflags.given(args)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; expected a run folder")
    if args.resume:
        config = _resumed_config(out, asked)
    elif (out / CHECKPOINT).exists():
        raise ValueError(f"{out} already holds a run; use --resume to continue it or choose "
                         "another --out")
    else:
        config = runflags.config_from_flags(args)
    history, _ = train(config, out, progress=not args.json, resume=args.resume)
    fig = viz.plot_curves({config.strategy: history})
    fig.savefig(out / "learning_curve.png", dpi=120)
    viz.plt.close(fig)
    faults = _report_faults(history)
    final = history.final()
    if args.json:
        print(json.dumps(jsonable(final)))
    else:
        print(f"{config.strategy}: test Dice {final['dice']:.3f}, IoU {final['iou']:.3f}, "
              f"{final['bytes_per_site_round'] / MIB:.2f} MiB per site per round, "
              f"{final['total_seconds']:.1f} s; wrote {out}/history.json, checkpoint.pt, "
              "learning_curve.png")
    return faults


def _resumed_config(out: Path, asked: dict):
    """The saved config of the run in ``out``, with ``--rounds`` applied; any other flag
    that contradicts it is refused, naming the flag."""
    from .federated import RunConfig
    from .federated.run import CHECKPOINT, CONFIG

    if not (out / CHECKPOINT).is_file():
        raise FileNotFoundError(f"cannot resume: {out / CHECKPOINT} does not exist (start "
                                "the run without --resume)")
    saved = RunConfig.load(out / CONFIG)
    conflicts = {k: v for k, v in asked.items()
                 if k not in ("rounds", "device") and getattr(saved, k) != v}
    if conflicts:
        detail = ", ".join(f"{runflags.flag_name(k)} {v!r} (the run has {getattr(saved, k)!r})"
                           for k, v in conflicts.items())
        raise ValueError(f"--resume continues the run in {out} with its own settings; "
                         f"these flags contradict them: {detail}. Only --rounds (to extend "
                         "it) and --device may change")
    changed = {k: v for k, v in asked.items() if k in ("rounds", "device")
               and getattr(saved, k) != v}
    if changed:
        print("resuming with " + ", ".join(f"{k} {getattr(saved, k)!r} -> {v!r}"
                                           for k, v in changed.items()), file=sys.stderr)
    return replace(saved, **changed)


def _report_faults(history) -> int:
    """Print the run's events and a one-line summary to stderr; the exit status: 3 when
    every update was rejected (the model never trained), else 0."""
    f = history.faults()
    if f["rejected"] or f["dropped"]:
        print(f"faults: {f['rejected']} update(s) rejected as NaN or Inf, {f['dropped']} "
              f"site turn(s) dropped, {f['ok']} accepted (events in history.json)",
              file=sys.stderr)
    if history.never_trained():
        c = history.config
        print(f"error: every update was rejected (NaN or Inf loss or weights), so the model "
              f"never trained; lower --lr (it is {c['lr']:g}) or set --clip-grad",
              file=sys.stderr)
        return 3
    return 0


def _cmd_demo(args) -> int:
    from .demo import DEMO, describe, lesson, results_table, run_demo

    config = runflags.config_from_flags(args, DEMO)
    seeds = list(range(args.seeds)) if args.seed_list is None else args.seed_list
    report = run_demo(args.out, config, seeds=seeds)
    print()
    print(describe(config, seeds))
    print()
    print(results_table(report["summary"]))
    print()
    print(lesson(report["margins"]))
    print(f"\nfigures and results written to {args.out}/ (learning_curves.png, "
          "predictions.png, split.png, results.md, results.json)")
    return 0


#: the run settings ``medseg-kit demo`` lets one change (the rest are the demo's)
DEMO_FLAGS = ("rounds", "size", "n_images", "sites", "partition", "concentration",
              "local_epochs", "device")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="medseg-kit", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("models", help="list the models")
    p.add_argument("--size", type=int, default=128, help="input size for the FLOP count")
    p.set_defaults(func=_cmd_models)

    p = sub.add_parser("cut", help="every valid cut of a model: what crosses and its bytes")
    p.add_argument("--model", default="unet")
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--width", type=int, default=None)
    p.add_argument("--allow-raw", action="store_true", help="also list raw-data cuts")
    p.add_argument("--vanilla", action="store_true", help="also list cuts with back = n")
    p.add_argument("--link", type=_parse_link, default=None, metavar="DOWN/UP[/MS]",
                   help="price a round on this link (Mbit/s down/up, optional latency in "
                   "ms per message): bytes and seconds for sflv2 per cut and for fl, and the "
                   "images per site up to which sflv2 sends less")
    p.add_argument("--images-per-site", dest="images_per_site", type=int, default=500,
                   help="training images per site, for --link")
    p.add_argument("--batch-size", dest="batch_size", type=int, default=8,
                   help="images per training step, for --link")
    p.add_argument("--bn-calibration", dest="bn_calibration", type=int, default=16,
                   help="BatchNorm calibration images per site and round, for --link")
    p.add_argument("--codec", default="none", help="the wire's codec spec, for --link")
    p.set_defaults(func=_cmd_cut)

    p = sub.add_parser("train", help="train one configuration")
    runflags.add_run_flags(p)
    p.add_argument("--out", required=True, help="run folder (history, checkpoint, curve)")
    p.add_argument("--json", action="store_true", help="print the final metrics as JSON")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("demo", help="centralized vs local vs sflv2 on synthetic polyps, "
                       "mean ± std over seeds")
    p.add_argument("--out", default="outputs")
    p.add_argument("--seeds", type=int, default=3, help="seeds 0 .. N-1 (default 3)")
    p.add_argument("--seed-list", dest="seed_list", type=int, nargs="+", default=None,
                   help="these seeds instead of --seeds")
    from .demo import DEMO

    runflags.add_run_flags(p, only=DEMO_FLAGS, base=DEMO)
    p.set_defaults(func=_cmd_demo)

    add_data_commands(sub)
    add_compare_command(sub)
    add_privacy_command(sub)
    add_bench_command(sub)
    add_flower_command(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, OSError) as e:  # bad input: one line, naming the file or value
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
