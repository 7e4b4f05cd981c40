"""Attacks against trained SplitFed runs, by cut depth and by defense strength.

:func:`privacy_sweep` is the one loop behind the notebook, the CLI and the tests. For each
strength of a defense it trains one SplitFed run (:func:`medseg_kit.federated.train`,
the defense switched on: ``noise_std`` for ``noise``, ``nopeek`` for ``nopeek``), then

* attacks the trained network at each front depth (:func:`~.attack.depth_cut`): the
  server inverts what the site's front sends, through a wire like the run's (its noise
  and its codec; packet loss is left out);
* infers the masks of the same site from the gradients it receives at the run's cut
  (U-shaped), at the end of training and at the start (an untrained network of the same
  family and seed: the first round's gradients), and from the label itself in the vanilla
  split (``back = n``, Dice 1 by construction);
* records the run's test Dice: the price of the defense.

The target is site 0: its training images, which is what the server received during
training. The server's auxiliary images are another synthetic set of the run's dataset
(:func:`aux_images`, a different seed: no image in common).

Each trained run is kept for the life of the process (keyed by its full config), so a
strength 0 shared by two sweeps, or a notebook cell run twice, trains once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from tqdm.auto import tqdm

from ..data import SegData, load_dataset
from ..data.base import ensure_synthetic
from ..federated import RunConfig, train
from ..federated.run import resolve_data
from ..federated.strategies import STRATEGY_CLASSES
from ..models import create_model
from ..split import RawDataError, Split
from ..wire import NOISES
from .attack import attackable_fronts, depth_cut, inversion_attack, smashed, to_uint8
from .labels import LabelResult, label_inference

#: the defenses a sweep can switch on, and the config field each strength sets
DEFENSES = {"none": None, "noise": "noise_std", "nopeek": "nopeek"}
#: offset between a run's seed and the seed of the server's auxiliary synthetic set
AUX_SEED_OFFSET = 1000

_TRAINED: dict[str, tuple] = {}
_KEEP = 24  # trained runs kept in memory (small networks; oldest dropped first)


def aux_images(dataset: str = "kvasir", n: int = 96, seed: int = AUX_SEED_OFFSET,
               size: int = 64, progress: bool = False) -> torch.Tensor:
    """The server's own images: a synthetic set of ``dataset`` (written once under
    ``MEDSEG_DATA_DIR``), N x C x H x W floats in [0, 1]."""
    data = load_dataset(dataset, ensure_synthetic(dataset, n, seed, progress), size=size,
                        progress=progress)
    return data.batch(np.arange(len(data)))[0]


def trained_run(config: RunConfig, data: SegData | None = None) -> tuple:
    """``(history, strategy)`` of ``config`` on ``data`` (default: the config's own),
    trained once per process (no progress bar); keyed by the full config and a hash of the
    data's pixels and masks."""
    data = data if data is not None else resolve_data(config, progress=False)
    digest = hashlib.sha1(data.images.tobytes())
    digest.update(data.masks.tobytes())
    key = repr(sorted(config.to_dict().items())) + digest.hexdigest()
    if key not in _TRAINED:
        if len(_TRAINED) >= _KEEP:
            _TRAINED.pop(next(iter(_TRAINED)))
        _TRAINED[key] = train(config, data=data, progress=False)
    return _TRAINED[key]


def clear_trained() -> None:
    """Forget the runs :func:`trained_run` keeps (the next call trains again)."""
    _TRAINED.clear()


def site_images(run, site: int = 0, limit: int | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """A site's training images and masks (what its front sent during training)."""
    idx = run.sites[site].train_idx
    idx = idx[:limit] if limit is not None else idx
    return run.train.batch(idx)


def check_strengths(defense: str, strengths: Sequence[float]) -> list[float]:
    """The strengths as floats; a bad one is a one-line ValueError naming it."""
    if defense not in DEFENSES:
        raise ValueError(f"defense must be one of {', '.join(DEFENSES)}; got {defense!r}")
    out = []
    for s in strengths:
        try:
            v = float(s)
        except (TypeError, ValueError):
            raise ValueError(f"a strength must be a number >= 0; got {s!r}") from None
        if not np.isfinite(v) or v < 0:
            raise ValueError(f"a strength must be a number >= 0; got {s!r}")
        out.append(v)
    if not out:
        raise ValueError("give at least one strength (0 is the undefended run)")
    if defense == "none" and any(v != 0 for v in out):
        raise ValueError(f"defense 'none' has only strength 0; got {strengths!r}")
    return out


@dataclass
class SweepResult:
    """Everything one :func:`privacy_sweep` measured.

    Attributes:
        model, dataset: the network and the data.
        defense, noise: the defense swept (``none``, ``noise``, ``nopeek``) and, for
            ``noise``, its distribution.
        trained_cut: the cut every run was trained at.
        rows: one dict per (strength, front): the inversion attack's scores beside the
            run's test Dice (see :meth:`InversionResult.row`; ``refused`` holds the
            message of a cut that sends raw image data when that was not allowed).
        label_rows: one dict per (strength, split, when): the label inference's Dice.
        attacks: ``(strength, front) -> InversionResult`` (pictures).
        labels: ``(strength, split, when) -> LabelResult``.
        images: the attacked images of site 0, N x H x W x C ``uint8``.
    """

    model: str
    dataset: str
    defense: str
    noise: str
    trained_cut: tuple[int, int]
    rows: list[dict] = field(default_factory=list)
    label_rows: list[dict] = field(default_factory=list)
    attacks: dict = field(default_factory=dict, repr=False)
    labels: dict = field(default_factory=dict, repr=False)
    images: np.ndarray | None = field(default=None, repr=False)

    def at(self, strength: float = 0.0, front: int | None = None) -> dict:
        """The row of ``strength`` at ``front`` (default: the trained cut's front)."""
        front = self.trained_cut[0] if front is None else front
        for r in self.rows:
            if r["strength"] == strength and r["front"] == front:
                return r
        raise KeyError(f"no row for strength {strength} at front {front}")

    def label(self, strength: float = 0.0, split: str = "ushaped", when: str = "trained"
              ) -> dict:
        for r in self.label_rows:
            if (r["strength"], r["split"], r["when"]) == (strength, split, when):
                return r
        raise KeyError(f"no label row for strength {strength}, {split}, {when}")


def privacy_sweep(config: RunConfig, *, fronts: Sequence[int] | None = None,
                  defense: str = "none", strengths: Sequence[float] = (0.0,),
                  aux: torch.Tensor | None = None, n_aux: int = 96, n_targets: int | None = 32,
                  steps: int = 100, batch_size: int = 8, width: int = 32,
                  allow_raw: bool = False, labels: bool = True, data: SegData | None = None,
                  progress: bool = True, on_step: Callable[[str], None] | None = None
                  ) -> SweepResult:
    """Train ``config`` once per strength of ``defense`` and attack it.

    Args:
        config: the run (its model, cut, data, rounds ...); it must split the network
            (``sflv1``, ``sflv2`` or ``sl``). Its ``noise_std`` / ``nopeek`` is replaced
            by each strength of the matching defense.
        fronts: front depths to attack (default: every front whose cut
            :class:`~medseg_kit.split.Split` accepts). A front that only has raw-data cuts
            gets a row with ``refused`` unless ``allow_raw``.
        defense: ``none``, ``noise`` (wire noise of standard deviation ``strength``, of
            the config's ``noise`` kind) or ``nopeek`` (NoPeek weight ``strength``).
        strengths: the defense's strengths (0: undefended).
        aux: the server's images (default: :func:`aux_images` of the run's dataset).
        n_aux: auxiliary images to synthesize when ``aux`` is not given.
        n_targets: site 0's training images to attack (``None``: all).
        steps, batch_size, width: the inversion decoder's training.
        allow_raw: also attack cuts that send raw image data.
        labels: also run the label inference.
        data: the run's loaded dataset (default: loaded from the config).
        progress: a progress bar over the steps.
        on_step: called with a short description before each step (tests, logs).

    Raises:
        ValueError: an unknown defense, a bad strength, a config that does not split.
    """
    values = check_strengths(defense, strengths)
    if config.noise not in NOISES:
        raise ValueError(f"noise must be one of {', '.join(NOISES)}; got {config.noise!r}")
    if not STRATEGY_CLASSES[config.strategy].uses_split:
        raise ValueError(f"strategy {config.strategy!r} does not split the network: nothing "
                         "crosses to attack; use sflv1, sflv2 or sl")
    if config.split != "ushaped":
        raise ValueError("privacy_sweep trains U-shaped runs (the vanilla split is measured "
                         f"beside each); got split={config.split!r}")
    data = data if data is not None else resolve_data(config, progress=False)
    if aux is None:
        aux = aux_images(config.dataset, n_aux, config.seed + AUX_SEED_OFFSET, config.size)
    probe = create_model(config.model, in_channels=data.in_channels,
                         num_classes=data.model_classes, width=config.width)
    fronts = list(fronts) if fronts is not None else attackable_fronts(probe,
                                                                       allow_raw=allow_raw)
    _check_fronts(probe, fronts)
    field_name = DEFENSES[defense]
    steps_total = len(values) * (1 + len(fronts) + (1 if labels else 0)) + (2 if labels else 0)
    bar = tqdm(total=steps_total, desc=f"privacy {config.model} {defense}", unit="step",
               disable=not progress)
    result = None
    try:
        for v in values:
            c = replace(config, **({field_name: v} if field_name else {}))
            _say(bar, on_step, f"train {config.model} {defense}={v:g}")
            history, strategy = trained_run(c, data)
            bar.update()
            run, net = strategy.run, strategy.run.net
            if result is None:
                result = SweepResult(config.model, config.dataset, defense, config.noise,
                                     (run.split.front, run.split.back))
            dice = float(history.final()["dice"])
            x, y = site_images(run, 0, n_targets)
            if result.images is None:
                result.images = to_uint8(x)
            noise_std = c.noise_std
            for f in fronts:
                _say(bar, on_step, f"invert {config.model} front {f} {defense}={v:g}")
                base = {"model": config.model, "defense": defense, "strength": v,
                        "trained_cut": str(result.trained_cut), "dice": dice,
                        "signal_std": float("nan"), "refused": ""}
                try:
                    cut = depth_cut(net, f, allow_raw=allow_raw)
                except RawDataError as e:
                    cut = depth_cut(net, f, allow_raw=True)
                    result.rows.append({**base, "front": f, "back": cut[1], "up": "",
                                        "raw": True, "noise": c.noise, "noise_std": noise_std,
                                        "ssim": float("nan"), "psnr": float("nan"),
                                        "baseline_ssim": float("nan"),
                                        "baseline_psnr": float("nan"),
                                        "refused": str(e).split(". ")[0]})
                    bar.update()
                    continue
                att = inversion_attack(net, cut, aux, x, noise_std=noise_std, noise=c.noise,
                                       steps=steps, batch_size=batch_size, width=width,
                                       seed=c.seed, allow_raw=allow_raw, codec=c.codec)
                result.attacks[(v, f)] = att
                result.rows.append({**base, **att.row(), "model": config.model,
                                    "signal_std": signal_std(net, cut, x)})
                bar.update()
            if labels:
                _labels(result, c, v, net, x, y, data, bar, on_step, first=v == values[0])
    finally:
        bar.close()
    return result


def _labels(result: SweepResult, c: RunConfig, v: float, net, x, y, data, bar, on_step, *,
            first: bool) -> None:
    """U-shaped at the end of training for every strength; for the first strength also
    at the start (an untrained network of the run's family and seed) and vanilla."""
    front, back = result.trained_cut
    todo = [("ushaped", "trained", net, (front, back))]
    if first:
        torch.manual_seed(c.seed)
        fresh = create_model(c.model, in_channels=data.in_channels,
                             num_classes=data.model_classes, width=c.width).to(x.device)
        todo += [("ushaped", "start", fresh, (front, back)),
                 ("vanilla", "trained", net, (front, len(net)))]
    for split, when, model, cut in todo:
        _say(bar, on_step, f"labels {c.model} {split} {when} {result.defense}={v:g}")
        res: LabelResult = label_inference(model, cut, x, y, loss=c.loss,
                                           noise_std=c.noise_std, noise=c.noise, seed=c.seed,
                                           batch_size=c.batch_size, allow_raw=c.allow_raw,
                                           codec=c.codec)
        result.labels[(v, split, when)] = res
        result.label_rows.append({"model": c.model, "defense": result.defense, "strength": v,
                                  "noise": c.noise, "when": when, **res.row()})
        bar.update()


@torch.no_grad()
def signal_std(net, cut: tuple[int, int], x: torch.Tensor) -> float:
    """Standard deviation of what the front sends at ``cut`` (before any noise): the
    scale a wire noise must be read against."""
    got = smashed(net, Split(net, *cut, allow_raw=True), x.to(next(net.parameters()).device))
    return float(torch.cat([v.flatten() for v in got.values()]).std())


def _check_fronts(net, fronts: Sequence[int]) -> None:
    n = len(net)
    for f in fronts:
        if isinstance(f, bool) or not isinstance(f, int | np.integer) or not 1 <= f <= n - 2:
            raise ValueError(f"front {f!r} is not a cut depth of "
                             f"{getattr(net, 'model_name', 'the model')}: a U-shaped cut "
                             f"needs 1 <= front <= {n - 2} ({n} stages: "
                             f"{', '.join(net.stage_names)})")


def _say(bar, on_step, text: str) -> None:
    bar.set_postfix_str(text)
    if on_step is not None:
        on_step(text)
