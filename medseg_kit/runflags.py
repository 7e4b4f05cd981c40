"""The command-line flags of a run, declared once for every command that trains.

``medseg-kit train`` takes all of them; ``medseg-kit compare`` and ``medseg-kit demo``
take a subset (the names they vary per cell are their own). Each flag is a field of
:class:`~medseg_kit.federated.RunConfig`; its choices come from the same lists the
config validates against, and its default is the config's. A flag that is not given
stays out of the parsed namespace (``argparse.SUPPRESS``), so a command can tell what
the user asked for from what it would have got anyway — ``train --resume`` refuses a
flag that contradicts the saved run instead of ignoring it.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from dataclasses import fields, replace

from .federated.config import CHOICES, RunConfig

#: flag help, by config field (the flag is ``--field-name``)
HELP = {
    "model": "the network (see `medseg-kit models`)",
    "width": "model width: an integer, 'teaching' (default) or 'paper'",
    "cut": "the cut: stages [0, FRONT) and [BACK, n) on the site (default: the model's)",
    "split": "ushaped: labels stay at the site; vanilla: labels go to the server",
    "allow_raw": "accept a cut that sends raw image data to the server",
    "strategy": "the learning scheme",
    "dataset": "the dataset",
    "data_root": "the dataset in its real layout (default: synthetic data)",
    "n_images": "synthetic images to generate",
    "size": "square input size (px)",
    "sites": "simulated hospital sites",
    "partition": "how images are dealt out to the sites",
    "concentration": "Dirichlet concentration for quantity/label skew (smaller: more skewed)",
    "partition_by": "label to skew by (dx, localization, lesion_size, dominant_class)",
    "augment": "flips, rotations, affine and colour jitter on training batches",
    "rounds": "communication rounds (with --resume: extend the run to this many)",
    "local_epochs": "passes over its shard a site makes per round",
    "batch_size": "images per step (>= 2)",
    "lr": "learning rate",
    "weight_decay": "weight decay",
    "optimizer": "the optimizer",
    "schedule": "learning-rate schedule over the rounds",
    "clip_grad": "clip each part's gradient norm to this value",
    "loss": "the training loss",
    "dice_weight": "the Dice share of dice_ce",
    "bn_calibration": "images per site that set the BatchNorm statistics after each round "
                      "(0: off)",
    "test_fraction": "share of the images held out for testing",
    "seed": "seeds the model, the split, the partition and the batch order",
    "device": "auto, cpu, cuda or cuda:N",
    "codec": "what the wire does to what it carries: a codec for activations and "
             "gradients (none, fp16, bf16, int8, int8c, topk:F) or rules such as "
             "activation=fp16,gradient=topk:0.05,model=int8",
    "site_dropout": "probability that a site misses a round",
    "loss_up": "fraction of rows lost on the wire, site to server",
    "loss_down": "fraction of rows lost on the wire, server to site",
    "noise_std": "standard deviation of the noise added to activations on the wire",
    "noise": "the noise's distribution",
    "nopeek": "NoPeek: weight of the distance correlation between images and what the "
              "site sends, added to its loss",
    "precision": "training's forward passes under autocast in this dtype (the loss in "
                 "fp32; fp16 scales it); evaluation stays fp32",
    "channels_last": "weights and training batches in channels-last memory format",
    "compile": "torch.compile every stage for training (compiles on first use)",
}
#: config fields with no flag (set them from Python)
NO_FLAG = ("dropout_schedule",)
_FLAGS = {"allow_raw": "--allow-raw", "augment": "--augment",  # switches
          "channels_last": "--channels-last", "compile": "--compile"}


def flag_name(field: str) -> str:
    return "--" + field.replace("_", "-")


def parse_width(text: str) -> int | str:
    """``--width``: an integer, ``teaching`` (the model's teaching width) or ``paper``."""
    if text == "teaching":
        return None
    if text == "paper":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an integer, 'teaching' or 'paper'; got {text!r}") from None


def add_run_flags(parser: argparse.ArgumentParser, *, skip: Iterable[str] = (),
                  only: Iterable[str] | None = None, base: RunConfig | None = None) -> None:
    """Add one flag per :class:`RunConfig` field: all but ``skip`` and :data:`NO_FLAG`, or
    just ``only``. ``base``: the config whose values the help shows as defaults (the
    command applies the flags to it; default ``RunConfig()``)."""
    skip = set(skip) | set(NO_FLAG)
    defaults = base or RunConfig()
    types = {"cut": int, "width": parse_width}
    only = set(only) if only is not None else None
    for f in fields(RunConfig):
        if f.name in skip or (only is not None and f.name not in only):
            continue
        default = getattr(defaults, f.name)
        help_ = HELP[f.name] + f" (default: {'teaching' if f.name == 'width' else default})"
        kw = dict(dest=f.name, default=argparse.SUPPRESS, help=help_)
        if f.name in _FLAGS:
            parser.add_argument(_FLAGS[f.name], action="store_true", **kw)
            continue
        if f.name in CHOICES:
            kw["choices"] = CHOICES[f.name]
        elif f.name in types:
            kw["type"] = types[f.name]
        elif isinstance(default, bool):
            kw["type"] = bool
        elif isinstance(default, int):
            kw["type"] = int
        elif isinstance(default, float) or f.name == "clip_grad":
            kw["type"] = float
        if f.name == "cut":
            kw.update(nargs=2, metavar=("FRONT", "BACK"))
        parser.add_argument(flag_name(f.name), **kw)
    if "data_root" not in skip and (only is None or "data_root" in only):
        parser.add_argument("--synthetic", dest="data_root", action="store_const",
                            const=None, default=argparse.SUPPRESS,
                            help="use synthetic data (the default)")


def given(args: argparse.Namespace) -> dict:
    """The run settings the user gave on the command line (``field -> value``)."""
    names = {f.name for f in fields(RunConfig)}
    out = {k: v for k, v in vars(args).items() if k in names}
    if out.get("cut") is not None:
        out["cut"] = tuple(out["cut"])
    return out


def config_from_flags(args: argparse.Namespace, base: RunConfig | None = None) -> RunConfig:
    """``base`` (default ``RunConfig()``) with the given flags applied."""
    return replace(base or RunConfig(), **given(args))
