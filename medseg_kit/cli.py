"""``medseg-kit``: the command line.

    medseg-kit models                       the zoo: parameters, stages, default cut
    medseg-kit cut --model unet --size 128  every valid cut: what crosses, bytes, param share
    medseg-kit train --strategy sflv2 --out runs/a [--json] [--resume]
    medseg-kit demo                         centralized vs local vs SplitFed on 3 sites
    medseg-kit compare --models ... --datasets ...   the C/L/S comparison table
    medseg-kit data check|synth|download ...  check a folder, write synthetic data, fetch
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields, replace
from pathlib import Path

from .compare import add_compare_command
from .data.cli import add_data_commands
from .federated.config import OPTIMIZERS, SPLITS, STRATEGIES, RunConfig
from .units import MIB


def _cmd_models(args) -> int:
    from .models.summary import format_count, model_table

    rows = model_table(size=args.size)
    print(f"{'model':<15}{'params (teaching)':>20}{'params (paper)':>18}{'published':>11}"
          f"{'GFLOPs teaching':>17}{'GFLOPs paper':>14}{'stages':>8}  default cut")
    for r in rows:
        teach = f"{format_count(r['params_teaching'])} (w={r['teaching_width']})"
        paper = f"{format_count(r['params_paper'])} (w={r['paper_width']})"
        print(f"{r['name']:<15}{teach:>20}{paper:>18}{r['published_params']:>11}"
              f"{r['gflops_teaching']:>17.3f}{r['gflops_paper']:>14.2f}{r['stages']:>8}  "
              f"{tuple(r['default_cut'])}")
    print(f"\nFLOPs: forward pass of one {args.size}x{args.size} image (PyTorch's FLOP "
          "counter).")
    return 0


def _cmd_cut(args) -> int:
    from .models import create_model
    from .split import Split, valid_cuts

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
    return 0


def _config_from_args(args) -> RunConfig:
    names = {f.name for f in fields(RunConfig)}
    kw = {k: v for k, v in vars(args).items() if k in names and v is not None}
    if getattr(args, "synthetic", False):
        kw["data_root"] = None
    if kw.get("cut") is not None:
        kw["cut"] = tuple(kw["cut"])
    return RunConfig(**kw)


def _cmd_train(args) -> int:
    from . import viz
    from .federated import train

    out = Path(args.out)
    config = _config_from_args(args)
    if args.resume:
        saved = out / "config.json"
        if not saved.is_file():
            print(f"error: cannot resume: {saved} does not exist", file=sys.stderr)
            return 2
        config = RunConfig.load(saved)
        if args.rounds is not None:  # extending a run to more rounds
            config = replace(config, rounds=args.rounds)
    elif (out / "checkpoint.pt").exists():
        print(f"error: {out} already holds a run; use --resume to continue it or choose "
              "another --out", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(config.to_dict(), indent=1))
    history, _ = train(config, out, progress=not args.json, resume=args.resume)
    fig = viz.plot_curves({config.strategy: history})
    fig.savefig(out / "learning_curve.png", dpi=120)
    final = history.final()
    if args.json:
        print(json.dumps(final))
    else:
        print(f"{config.strategy}: test Dice {final['dice']:.3f}, IoU {final['iou']:.3f}, "
              f"{final['bytes_per_site_round'] / MIB:.2f} MiB per site per round, "
              f"{final['total_seconds']:.1f} s; wrote {out}/history.json, checkpoint.pt, "
              "learning_curve.png")
    return 0


def _cmd_demo(args) -> int:
    from .demo import DEMO, describe, lesson, results_table, run_demo

    config = replace(DEMO, **{k: getattr(args, k) for k in (
        "rounds", "size", "n_images", "sites", "partition", "concentration", "local_epochs",
        "device") if getattr(args, k) is not None})
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


def _add_run_options(p: argparse.ArgumentParser) -> None:
    d = RunConfig()
    p.add_argument("--model", default=d.model)
    p.add_argument("--width", type=int, default=None, help="default: the teaching width")
    p.add_argument("--cut", type=int, nargs=2, metavar=("FRONT", "BACK"), default=None)
    p.add_argument("--allow-raw", action="store_true", dest="allow_raw", default=None)
    p.add_argument("--strategy", choices=STRATEGIES, default=d.strategy)
    p.add_argument("--dataset", default=d.dataset)
    p.add_argument("--data-root", dest="data_root", default=None,
                   help="the dataset in its real layout (default: synthetic data)")
    p.add_argument("--synthetic", action="store_true", help="use synthetic data (default)")
    p.add_argument("--n-images", dest="n_images", type=int, default=d.n_images)
    p.add_argument("--size", type=int, default=d.size)
    p.add_argument("--sites", type=int, default=d.sites)
    p.add_argument("--partition", default=d.partition,
                   choices=("iid", "quantity", "label", "acquisition"))
    p.add_argument("--concentration", type=float, default=d.concentration,
                   help="Dirichlet concentration for quantity/label skew")
    p.add_argument("--partition-by", dest="partition_by", default=None,
                   help="label to skew by (dx, localization, lesion_size, dominant_class)")
    p.add_argument("--augment", action="store_true", default=None)
    p.add_argument("--rounds", type=int, default=None,
                   help=f"communication rounds (default {d.rounds}; with --resume: extend "
                   "the run to this many)")
    p.add_argument("--local-epochs", dest="local_epochs", type=int, default=d.local_epochs)
    p.add_argument("--batch-size", dest="batch_size", type=int, default=d.batch_size)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--optimizer", default=d.optimizer, choices=OPTIMIZERS)
    p.add_argument("--schedule", default=d.schedule, choices=("none", "cosine"))
    p.add_argument("--clip-grad", dest="clip_grad", type=float, default=None)
    p.add_argument("--weight-decay", dest="weight_decay", type=float, default=d.weight_decay)
    p.add_argument("--loss", default=d.loss, choices=("dice_ce", "ce", "dice"))
    p.add_argument("--dice-weight", dest="dice_weight", type=float, default=d.dice_weight)
    p.add_argument("--split", default=d.split, choices=SPLITS,
                   help="ushaped: labels stay at the site; vanilla: labels go to the server")
    p.add_argument("--site-dropout", dest="site_dropout", type=float, default=d.site_dropout,
                   help="probability that a site misses a round")
    p.add_argument("--loss-up", dest="loss_up", type=float, default=d.loss_up,
                   help="fraction of rows lost on the wire, site to server")
    p.add_argument("--loss-down", dest="loss_down", type=float, default=d.loss_down)
    p.add_argument("--noise-std", dest="noise_std", type=float, default=d.noise_std)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--device", default=d.device)
    p.add_argument("--codec", default=d.codec, choices=("none", "fp16", "int8"))


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
    p.set_defaults(func=_cmd_cut)

    p = sub.add_parser("train", help="train one configuration")
    _add_run_options(p)
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
    for name, kind in (("rounds", int), ("size", int), ("n-images", int), ("sites", int),
                       ("local-epochs", int), ("concentration", float)):
        p.add_argument(f"--{name}", dest=name.replace("-", "_"), type=kind, default=None,
                       help="default: the demo's setting (medseg_kit.demo.DEMO)")
    p.add_argument("--partition", default=None,
                   choices=("iid", "quantity", "label", "acquisition"))
    p.add_argument("--device", default=None)
    p.set_defaults(func=_cmd_demo)

    add_data_commands(sub)
    add_compare_command(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
