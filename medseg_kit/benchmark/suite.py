"""The benchmark: settings in, one result dict out (:func:`run_bench`).

For each model, every contender — the plain loop, the kit's centralized training, each
federated strategy with each number of sites, in each variant — trains one pass over the
same training images, in turns (:func:`~medseg_kit.benchmark.timing.interleave`); the
result holds each contender's seconds per pass and the ratios the targets are stated in:

* kit centralized against the plain loop (what the run loop costs over a bare loop);
* each strategy and number of sites against kit centralized (what SplitFed costs over
  training on pooled data: the same images in total, one round of one local epoch);
* each variant's centralized against fp32's (what bf16, channels_last, compile gain).

Only training is timed: the BatchNorm calibration is off (``bn_calibration=0``) and
nothing is evaluated. Besides: the decoded-data cache (loading the dataset from the
cache against decoding every image), optionally one profiled ``sflv2`` round and the
course notebooks' wall time and peak memory.
"""

from __future__ import annotations

import gc
import shlex
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

from ..data import load_dataset
from ..data.base import ensure_synthetic
from ..federated import RunConfig
from ..federated.config import STRATEGIES
from ..federated.run import pick_device, resolve_data
from ..models import check_input_size, list_models, model_info
from .machine import describe_machine, load_average, peak_rss_mib
from .notebooks import time_notebooks
from .passes import (
    VARIANTS,
    Contender,
    KitPass,
    PlainLoop,
    missing_fields,
    run_key,
    run_label,
    training_subset,
)
from .profiling import profile_pass
from .tables import write
from .timing import device_sync, interleave, paired_ratio, summary

#: the models whose CPU targets issue 11 states (teaching width, 128 px, batch 8)
CPU_MODELS = ("unet", "segnet", "deeplabv3plus", "swin_unet")
#: what ``--quick`` shrinks (anything given explicitly wins)
QUICK = {"size": 32, "batch_size": 4, "images": 10, "repeats": 1, "warmup": 0}
#: variants timed when none are asked for, by device type
DEFAULT_VARIANTS = {"cpu": ("fp32",), "cuda": ("fp32", "bf16-cl", "compile")}
#: the targets of issue 11: (device type, run, reference, variants, kind, limit). "time":
#: wall time ratio <= limit; "speed": throughput ratio (reference time / run time) >= limit
TARGETS = (
    ("cpu", "sflv2@5", "centralized", None, "time", 1.05),
    ("cpu", "sflv1@5", "centralized", None, "time", 1.10),
    ("cuda", "sflv2@5", "centralized", None, "speed", 0.95),
    ("cuda", "sflv1@5", "centralized", None, "speed", 0.95),
    ("cuda", "centralized", "plain", ("fp32",), "speed", 0.97),
)


@dataclass
class BenchSettings:
    """What ``medseg-kit bench`` measures (every field is a flag of the command)."""

    models: tuple[str, ...] = ("unet",)
    width: str | int | None = None  # None: each model's teaching width; "paper"
    size: int = 128
    batch_size: int = 8
    images: int = 200
    sites: tuple[int, ...] = (1, 5)
    strategies: tuple[str, ...] = ("sflv2", "sflv1")
    variants: tuple[str, ...] | None = None  # None: DEFAULT_VARIANTS of the device
    repeats: int = 3
    warmup: int = 1
    device: str = "auto"
    threads: int | None = None
    data_cache: bool = True
    profile: bool = False
    notebooks: bool = False
    seed: int = 0
    quick: bool = False
    notes: list[str] = field(default_factory=list)

    def __post_init__(self):
        self.models, self.strategies = tuple(self.models), tuple(self.strategies)
        self.sites = tuple(sorted(set(int(s) for s in self.sites)))
        for name in self.models:
            model_info(name)  # an unknown name lists the models
            check_input_size(name, self.size)
        bad = [s for s in self.strategies if s not in STRATEGIES or s == "centralized"]
        if bad:
            raise ValueError(f"unknown or reference strategy {bad}; choose among "
                             f"{', '.join(s for s in STRATEGIES if s != 'centralized')} "
                             "(centralized and the plain loop are always timed)")
        if self.variants is not None:
            self.variants = tuple(self.variants)
            bad = [v for v in self.variants if v not in VARIANTS]
            if bad:
                raise ValueError(f"unknown variant(s) {bad}; choose among "
                                 f"{', '.join(VARIANTS)}")
        for name, lo in (("size", 1), ("batch_size", 2), ("repeats", 1), ("warmup", 0)):
            if getattr(self, name) < lo:
                raise ValueError(f"{name} must be >= {lo}; got {getattr(self, name)}")
        if not self.sites or self.sites[0] < 1:
            raise ValueError(f"sites must be positive counts; got {self.sites}")
        if self.images < 2 * self.sites[-1]:
            raise ValueError(f"{self.images} images cannot give each of {self.sites[-1]} "
                             "sites the 2 training images BatchNorm needs; use more --images")

    def command(self) -> str:
        """The ``medseg-kit bench`` command line that measures exactly this."""
        parts = ["medseg-kit", "bench", "--models", ",".join(self.models)]
        if self.width == "paper":
            parts.append("--paper")
        elif self.width is not None:
            parts += ["--width", str(self.width)]
        parts += ["--size", str(self.size), "--batch-size", str(self.batch_size),
                  "--images", str(self.images), "--sites", ",".join(map(str, self.sites)),
                  "--strategies", ",".join(self.strategies)]
        if self.variants is not None:
            parts += ["--variants", ",".join(self.variants)]
        parts += ["--repeats", str(self.repeats), "--warmup", str(self.warmup),
                  "--device", self.device]
        if self.threads is not None:
            parts += ["--threads", str(self.threads)]
        parts += [flag for flag, on in (("--no-data-cache", not self.data_cache),
                                        ("--profile", self.profile),
                                        ("--notebooks", self.notebooks)) if on]
        if self.seed:
            parts += ["--seed", str(self.seed)]
        return shlex.join(parts)


def quick_settings(**given) -> BenchSettings:
    """Settings for ``--quick``: :data:`QUICK`'s tiny sizes under what is ``given``."""
    return BenchSettings(**{**QUICK, **given, "quick": True})


def run_bench(settings: BenchSettings, out: str | Path | None = None,
              progress: bool = True) -> dict:
    """Measure ``settings``; return the result (see the module docstring).

    The dict holds ``machine``, ``settings``, ``command``, ``runs`` (one row per
    contender and variant: seconds per pass, images per second), ``ratios``,
    ``targets``, ``data_cache``, ``profile``, ``notebooks`` and ``notes``. With ``out``,
    ``bench.md`` and ``bench.json`` there hold the models measured so far after each one
    (a run stopped by a time limit keeps them), and the notebooks' runner writes its
    report there (``--notebooks``).
    """
    s = settings
    if s.threads is not None:
        torch.set_num_threads(s.threads)
    device = pick_device(s.device)
    variants = s.variants or DEFAULT_VARIANTS.get(device.type, ("fp32",))
    machine = describe_machine(device)
    notes = list(s.notes)
    timed, plain_only = [], []
    for v in variants:
        missing = missing_fields(v)
        if missing:
            plain_only.append(v)
            notes.append(f"variant {v}: the kit's rows skipped, only the plain loop timed "
                         f"(this kit's RunConfig has no {' or '.join(missing)} field yet)")
        else:
            timed.append(v)
    sync = device_sync(device)
    base, data = _data(s, device, progress)
    result = {"machine": machine, "settings": _settings_dict(s, variants),
              "command": s.command(), "runs": [], "ratios": [], "targets": [],
              "data_cache": None, "profile": None, "notebooks": None, "notes": notes}
    for model in s.models:
        rows, ratios, extra = _bench_model(s, model, variants, plain_only, base, data,
                                           device, sync, progress)
        result["runs"] += rows
        result["ratios"] += ratios
        notes += extra
        result["targets"] = check_targets(result["ratios"], device.type)
        if out is not None:  # the models so far, kept should a later one not finish
            write(result, out)
    if s.data_cache:
        result["data_cache"] = _bench_cache(s, base, sync, progress)
    if s.profile and timed:
        try:
            result["profile"] = _profile(s, timed[0], base, data, device, sync)
        except Exception as e:  # a profile is a look, not a result: say why it is missing
            notes.append(f"--profile failed: {type(e).__name__}: {e}")
    elif s.profile:
        notes.append("--profile: no variant the kit can run was asked for")
    if s.notebooks:
        folder = Path(out or "outputs/bench") / "notebooks"
        rows, note = time_notebooks(folder)
        result["notebooks"] = rows
        if note:
            notes.append(note)
    result["machine"].update(peak_rss_mib=round(peak_rss_mib()),
                             load_average_end=load_average())
    if device.type == "cuda":
        result["machine"]["peak_gpu_mib"] = round(torch.cuda.max_memory_allocated(device)
                                                  / 2 ** 20)
    return result


def _settings_dict(s: BenchSettings, variants) -> dict:
    d = asdict(s)
    d.pop("notes")
    d["variants"] = list(variants)
    return d


def _data(s: BenchSettings, device: torch.device, progress: bool):
    """The base config and the synthetic Kvasir set every contender trains on:
    ``images`` training images plus one test image per site (the run loop needs them;
    nothing is evaluated)."""
    test = s.sites[-1]
    total = s.images + test
    # the split takes whole groups until it holds >= total * test_fraction images
    base = RunConfig(model=s.models[0], width=s.width, size=s.size, batch_size=s.batch_size,
                     n_images=total, test_fraction=(test - 0.5) / total, bn_calibration=0,
                     rounds=1, seed=s.seed, device=str(device))
    return base, resolve_data(base, progress)


def _variant_config(base: RunConfig, variant: str, **kw) -> RunConfig:
    return RunConfig.from_dict({**base.to_dict(), **VARIANTS[variant], **kw})


def _contenders(s: BenchSettings, model: str, variants, plain_only, base: RunConfig, data,
                device) -> tuple[list[Contender], list[str]]:
    """Every contender of ``model``: for the variants in ``plain_only`` only the plain
    loop; a variant the kit refuses is left out, with a note."""
    out, notes = [], []
    central = replace(base, model=model, strategy="centralized", sites=1)
    train = training_subset(KitPass(central, data).run)
    if len(train) != s.images:
        raise AssertionError(f"the benchmark's split gave {len(train)} training images, "
                             f"not {s.images}")
    for v in variants:
        try:
            runs = [("plain", 1, PlainLoop(central, train, data.in_channels,
                                           data.model_classes, device, VARIANTS[v]))]
            if v in plain_only:
                out += [Contender(f"{v} plain", "plain", model, v, "plain", 1, s.images,
                                  runs[0][2])]
                continue
            config = _variant_config(central, v)
            runs.append(("centralized", 1, KitPass(config, data)))
            for strategy in s.strategies:
                for n in s.sites:
                    config = _variant_config(base, v, model=model, strategy=strategy,
                                             sites=n)
                    runs.append((strategy, n, KitPass(config, data)))
        except (ValueError, TypeError, RuntimeError) as e:  # the kit refuses the variant
            notes.append(f"{model} {v}: skipped ({e})")
            continue
        out += [Contender(f"{v} {run_key(st, n)}", run_label(st, n), model, v, st, n,
                          s.images, step) for st, n, step in runs]
    return out, notes


def _bench_model(s, model, variants, plain_only, base, data, device, sync, progress):
    contenders, notes = _contenders(s, model, variants, plain_only, base, data, device)
    if not contenders:
        return [], [], notes
    width = resolve_width(model, s.width)
    times = interleave(contenders, s.repeats, s.warmup, sync, desc=model, progress=progress)
    for c in contenders:
        if "error" in times[c.key]:
            notes.append(f"{model} {c.variant} {c.label}: failed, not timed "
                         f"({times[c.key]['error']})")
    contenders = [c for c in contenders if "error" not in times[c.key]]
    times = {k: t for k, t in times.items() if "error" not in t}
    rows = []
    for c in contenders:
        wall, cpu = summary(times[c.key]["wall"]), summary(times[c.key]["cpu"])
        rows.append({"model": model, "width": width, "variant": c.variant,
                     "run": run_key(c.strategy, c.sites), "label": c.label,
                     "strategy": c.strategy, "sites": c.sites, "images": c.images,
                     "wall_s": wall, "cpu_s": cpu, "img_per_s": c.images / wall["median"],
                     "wall_all": times[c.key]["wall"], "cpu_all": times[c.key]["cpu"]})
    ratios = []

    def ratio(v, run, v_ref, ref):
        a, b = times.get(f"{v} {run}"), times.get(f"{v_ref} {ref}")
        if a is None or b is None:
            return
        ratios.append({"model": model, "variant": v, "run": run,
                       "reference": ref if v == v_ref else f"{ref} {v_ref}",
                       "wall": paired_ratio(a["wall"], b["wall"]),
                       "cpu": paired_ratio(a["cpu"], b["cpu"]),
                       "wall_turns": [x / y for x, y in zip(a["wall"], b["wall"])],
                       "cpu_turns": [x / y for x, y in zip(a["cpu"], b["cpu"])]})

    for v in variants:
        ratio(v, "centralized", v, "plain")
        for strategy in s.strategies:
            for n in s.sites:
                ratio(v, run_key(strategy, n), v, "centralized")
        if v != "fp32":
            ratio(v, "centralized", "fp32", "centralized")
            ratio(v, "plain", "fp32", "plain")
    del contenders
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return rows, ratios, notes


def check_targets(ratios: list[dict], device_type: str) -> list[dict]:
    """Each of :data:`TARGETS` for ``device_type`` against the measured ``ratios``, in
    both clocks; ``holds`` when the wall clock meets it or, on a CPU, the CPU clock does
    (a shared machine's load lands on single passes' wall time, not on their CPU time)."""
    out = []
    for dev, run, ref, only, kind, limit in TARGETS:
        if dev != device_type:
            continue
        for r in ratios:
            if r["run"] != run or r["reference"] != ref or (only and r["variant"] not in only):
                continue
            row = {"model": r["model"], "variant": r["variant"], "run": run,
                   "reference": ref, "kind": kind, "limit": limit,
                   "turns": r.get(f"{'cpu' if device_type == 'cpu' else 'wall'}_turns", [])}
            for clock in ("wall", "cpu"):
                measured = r[clock] if kind == "time" else 1 / r[clock]
                row[f"measured_{clock}"] = measured
                row[f"holds_{clock}"] = (measured <= limit if kind == "time"
                                         else measured >= limit)
            # the CPU clock says what a pass costs where other processes share the cores
            # (one thread); on a GPU only the wall clock means anything
            row["holds"] = row["holds_wall"] or (device_type == "cpu" and row["holds_cpu"])
            out.append(row)
    return out


def _bench_cache(s: BenchSettings, base: RunConfig, sync, progress) -> dict:
    """Loading the dataset from the decoded-data cache against decoding every image."""
    root = ensure_synthetic(base.dataset, base.n_images, base.seed, progress=False)

    def load(cache):
        return lambda k: load_dataset(base.dataset, root, size=base.size, cache=cache,
                                      progress=False)

    both = [Contender(f"cache {name}", f"cache {name}", "-", "-", "-", 0, base.n_images,
                      load(on)) for name, on in (("on", True), ("off", False))]
    times = interleave(both, s.repeats if s.quick else max(s.repeats, 3), 1, sync,
                       desc="data cache",
                       progress=progress)
    on, off = times["cache on"]["wall"], times["cache off"]["wall"]
    return {"dataset": base.dataset, "images": base.n_images, "size": base.size,
            "cache_on_s": summary(on), "cache_off_s": summary(off),
            "on_over_off": paired_ratio(on, off)}


def _profile(s: BenchSettings, variant: str, base: RunConfig, data, device, sync) -> dict:
    """One profiled round of ``sflv2`` (or the first strategy) with the most sites, of
    the first model, after one warm-up round."""
    strategy = "sflv2" if "sflv2" in s.strategies else s.strategies[0]
    n = s.sites[-1]
    config = _variant_config(base, variant, model=s.models[0], strategy=strategy, sites=n)
    step = KitPass(config, data)
    step(0)
    out = profile_pass(step, device, sync)
    out.update(model=s.models[0], variant=variant, run=run_key(strategy, n),
               images=s.images)
    return out


def resolve_width(model: str, width) -> int:
    """The width ``model`` is built at: its teaching width, its paper width or ``width``."""
    info = model_info(model)
    if width is None or width == "teaching":
        return info.teaching_width
    return info.paper_width if width == "paper" else int(width)


def resolve_models(text: str | None, paper: bool) -> tuple[str, ...]:
    """``--models``: a comma-separated list, ``all`` (the ten) or ``cpu`` (the CPU target
    list); default: ``unet``, or all ten with ``--paper``."""
    if text is None:
        return tuple(list_models()) if paper else ("unet",)
    if text == "all":
        return tuple(list_models())
    if text == "cpu":
        return CPU_MODELS
    return tuple(t.strip() for t in text.split(",") if t.strip())
