"""Sites: how a dataset is dealt out to simulated hospitals.

Four schemes, each deterministic from ``seed`` and each covering every index exactly once:

- **iid** (:func:`partition_iid`): shuffled, equal shards.
- **quantity skew** (:func:`partition_quantity`): site sizes drawn from a Dirichlet
  distribution — a few big hospitals, several small ones.
- **label / attribute skew** (:func:`partition_dirichlet`): for each value of a per-sample
  label (HAM10000 ``dx`` or ``localization``, lesion size, class presence — see
  :func:`site_labels`), its samples are spread over the sites with Dirichlet proportions;
  a small ``concentration`` (0.1) gives sites that each see mostly a few labels, a large
  one (100) is nearly IID.
- **acquisition shift** (:func:`partition_acquisition` + :func:`apply_site_shift`): IID
  indices, but each site gets a fixed colour / contrast / blur / noise profile
  (:func:`acquisition_profile`), like different scanners, applied to its images.

Every partitioner returns a :class:`Partition`: a plain list of sorted index arrays (so
old code that did ``for idx in partition_iid(...)`` keeps working) that also carries a
``summary`` — counts per site and, when labels are given, a site x label histogram.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace

import numpy as np
from scipy.ndimage import gaussian_filter

from .base import SegData

# The partition schemes, in teaching order: the one list the CLI, the run config, the
# widgets and the tests read (``make_sites`` accepts exactly these).
PARTITIONS: tuple[str, ...] = ("iid", "quantity", "label", "acquisition")


class Partition(list):
    """Indices per site (a list of sorted int64 arrays) plus ``scheme``, ``params`` and
    ``summary`` (``counts`` per site, and with labels ``label_names`` and ``histogram``:
    a sites x labels count matrix)."""

    def __init__(self, parts: Sequence[np.ndarray], scheme: str, params: dict | None = None,
                 labels: Sequence | None = None, profiles: list | None = None):
        super().__init__(np.sort(np.asarray(p, dtype=np.int64)) for p in parts)
        self.scheme = scheme
        self.params = dict(params or {})
        self.profiles = profiles
        self.summary = summarize(self, labels)
        if profiles is not None:
            self.summary["profiles"] = [asdict(p) for p in profiles]

    @property
    def num_sites(self) -> int:
        return len(self)

    def site_of(self) -> np.ndarray:
        """The site of every index (an array of length n)."""
        n = sum(len(p) for p in self)
        out = np.full(n, -1, np.int64)
        for s, p in enumerate(self):
            out[p] = s
        return out


def summarize(parts: Sequence[np.ndarray], labels: Sequence | None = None) -> dict:
    """``counts`` per site; with ``labels`` also ``label_names`` and the sites x labels
    ``histogram`` (a list of lists of ints)."""
    out = {"counts": [int(len(p)) for p in parts]}
    if labels is not None:
        labels = np.asarray(labels, dtype=object).astype(str)
        names, inv = np.unique(labels, return_inverse=True)
        hist = np.zeros((len(parts), len(names)), np.int64)
        for s, p in enumerate(parts):
            hist[s] = np.bincount(inv[np.asarray(p, dtype=np.int64)], minlength=len(names))
        out["label_names"] = [str(x) for x in names]
        out["histogram"] = hist.tolist()
    return out


def _check(n: int, num_sites: int, min_size: int = 1) -> None:
    if num_sites < 1 or num_sites * min_size > n:
        raise ValueError(f"need 1 <= num_sites and num_sites * min_size <= {n} samples; got "
                         f"num_sites={num_sites}, min_size={min_size}")


def partition_iid(n: int, num_sites: int, seed: int = 0,
                  labels: Sequence | None = None) -> Partition:
    """Split ``range(n)`` into ``num_sites`` shards of (nearly) equal size at random."""
    if num_sites < 1 or num_sites > n:
        raise ValueError(f"need 1 <= num_sites <= {n} samples; got num_sites={num_sites}")
    perm = np.random.default_rng(seed).permutation(n)
    return Partition(np.array_split(perm, num_sites), "iid", {"seed": seed}, labels)


def partition_quantity(n: int, num_sites: int, seed: int = 0, concentration: float = 1.0,
                       min_size: int = 2, labels: Sequence | None = None) -> Partition:
    """Random shards whose sizes follow Dirichlet(``concentration``) proportions.

    Each site gets at least ``min_size`` samples; the rest are dealt by a multinomial draw,
    so small concentrations (0.3) give very unequal sites, large ones (100) nearly equal.
    """
    _check(n, num_sites, min_size)
    rng = np.random.default_rng([seed, 1])
    p = rng.dirichlet(np.full(num_sites, float(concentration)))
    sizes = min_size + rng.multinomial(n - num_sites * min_size, p)
    perm = rng.permutation(n)
    parts = np.split(perm, np.cumsum(sizes)[:-1])
    return Partition(parts, "quantity", {"seed": seed, "concentration": concentration,
                                         "min_size": min_size}, labels)


def partition_dirichlet(labels: Sequence, num_sites: int, concentration: float = 0.5,
                        seed: int = 0, min_size: int = 2) -> Partition:
    """Label skew: each label's samples are split over the sites by Dirichlet proportions.

    Args:
        labels: one label per sample (any hashable; compared as strings).
        num_sites: number of sites.
        concentration: Dirichlet concentration; small = skewed, large = nearly IID.
        seed: random seed.
        min_size: every site ends with at least this many samples (moved, at random, from
            the largest site when the draw left a site short).
    """
    labels = np.asarray(labels, dtype=object).astype(str)
    n = len(labels)
    _check(n, num_sites, min_size)
    rng = np.random.default_rng([seed, 2])
    site = np.empty(n, np.int64)
    for value in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == value))
        p = rng.dirichlet(np.full(num_sites, float(concentration)))
        cuts = np.round(np.cumsum(p)[:-1] * len(idx)).astype(int)
        for s, chunk in enumerate(np.split(idx, cuts)):
            site[chunk] = s
    counts = np.bincount(site, minlength=num_sites)
    while counts.min() < min_size:  # top up short sites from the largest one
        short, big = int(np.argmin(counts)), int(np.argmax(counts))
        donor = rng.choice(np.flatnonzero(site == big))
        site[donor] = short
        counts[big] -= 1
        counts[short] += 1
    parts = [np.flatnonzero(site == s) for s in range(num_sites)]
    return Partition(parts, "label", {"seed": seed, "concentration": concentration,
                                      "min_size": min_size}, labels)


# ------------------------------------------------------------------ labels
def site_labels(data: SegData, by: str, bins: int = 3) -> np.ndarray:
    """A categorical label per sample to skew sites by.

    Args:
        data: the dataset.
        by: a metadata field (``dx``, ``localization``, ``dataset``, ``sex`` ... for
            HAM10000), or ``lesion_size`` (foreground fraction in ``bins`` quantile bins:
            ``small`` / ``medium`` / ``large``), ``class_presence`` (``all classes``, or
            which foreground classes are absent, e.g. ``no inner cell mass``; ``none`` for
            an empty mask) or ``dominant_class`` (the foreground class with the most
            pixels; ``none`` for an empty mask).
        bins: number of size bins for ``lesion_size``.
    """
    masks = data.masks.reshape(len(data), -1)
    if by == "lesion_size":
        frac = (masks > 0).mean(axis=1)
        edges = np.quantile(frac, np.linspace(0, 1, bins + 1)[1:-1])
        names = (["small", "medium", "large"] if bins == 3
                 else [f"size{i + 1}" for i in range(bins)])
        return np.array([names[i] for i in np.searchsorted(edges, frac, side="right")],
                        dtype=object)
    if by in ("class_presence", "dominant_class"):
        k = data.num_classes
        counts = np.stack([np.bincount(m, minlength=k) for m in masks])[:, 1:]
        fg = data.class_names[1:]
        if by == "dominant_class":
            return np.array([fg[int(np.argmax(c))] if c.sum() else "none" for c in counts],
                            dtype=object)
        def presence(c):
            if not c.any():
                return "none"
            missing = [fg[j] for j in np.flatnonzero(c == 0)]
            return "no " + ", ".join(missing) if missing else "all classes"

        return np.array([presence(c) for c in counts], dtype=object)
    if not any(by in m for m in data.meta):
        raise ValueError(f"the {data.name} metadata has no field {by!r}; use lesion_size, "
                         f"class_presence, dominant_class or one of "
                         f"{sorted(set().union(*(m.keys() for m in data.meta)))}")
    return np.array([str(m.get(by, "unknown")) for m in data.meta], dtype=object)


# ------------------------------------------------------------- acquisition
@dataclass(frozen=True)
class AcquisitionProfile:
    """A site's fixed imaging profile, applied as
    ``noise(blur(saturation(gain * (contrast * (x - 0.5) + 0.5 + brightness) ** gamma)))``
    on images in [0, 1]."""

    site: int
    gain: tuple[float, float, float]
    brightness: float
    contrast: float
    gamma: float
    saturation: float
    blur_sigma: float
    noise_sigma: float


def acquisition_profile(site: int, seed: int = 0, strength: float = 1.0
                        ) -> AcquisitionProfile:
    """The profile of ``site``: the same (site, seed, strength) always gives the same one.

    ``strength`` scales every deviation from the identity (0 = no shift, 1 = clearly
    visible, like scanners of different makes).
    """
    rng = np.random.default_rng([seed, site, 3])
    u = rng.uniform(-1, 1, size=8)
    s = float(strength)
    return AcquisitionProfile(
        site=site,
        gain=tuple(float(1 + 0.12 * s * v) for v in u[:3]),
        brightness=float(0.06 * s * u[3]),
        contrast=float(1 + 0.25 * s * u[4]),
        gamma=float(np.exp(0.25 * s * u[5])),
        saturation=float(1 + 0.35 * s * u[6]),
        blur_sigma=float(max(0.0, s * (0.6 + 0.6 * u[7]))),
        noise_sigma=float(s * 0.02 * rng.uniform(0, 1)),
    )


def apply_acquisition(images: np.ndarray, profile: AcquisitionProfile, seed: int = 0
                      ) -> np.ndarray:
    """``images`` (uint8, N x H x W x C) as the site of ``profile`` would record them.

    Deterministic: the noise comes from a generator seeded by ``(seed, profile.site)``.
    The blur sigma is in pixels of ``images`` (so relative to the loaded size).
    """
    x = images.astype(np.float32) / 255.0
    c = x.shape[-1]
    x = np.clip(profile.contrast * (x - 0.5) + 0.5 + profile.brightness, 0, 1) ** profile.gamma
    gain = np.asarray(profile.gain, np.float32)
    x = x * (gain if c == 3 else gain.mean())
    if c == 3:
        grey = x.mean(axis=-1, keepdims=True)
        x = grey + profile.saturation * (x - grey)
    if profile.blur_sigma > 0.05:
        x = gaussian_filter(x, sigma=(0, profile.blur_sigma, profile.blur_sigma, 0))
    if profile.noise_sigma > 0:
        rng = np.random.default_rng([seed, profile.site, 4])
        x = x + rng.normal(0, profile.noise_sigma, x.shape).astype(np.float32)
    return np.clip(np.round(x * 255), 0, 255).astype(np.uint8)


def partition_acquisition(n: int, num_sites: int, seed: int = 0, strength: float = 1.0,
                          labels: Sequence | None = None) -> Partition:
    """IID indices plus one :class:`AcquisitionProfile` per site (``partition.profiles``);
    pass the result to :func:`apply_site_shift` to get the shifted images."""
    parts = partition_iid(n, num_sites, seed)
    profiles = [acquisition_profile(s, seed, strength) for s in range(num_sites)]
    return Partition(parts, "acquisition", {"seed": seed, "strength": strength}, labels,
                     profiles)


def apply_site_shift(data: SegData, partition: Partition, seed: int = 0) -> SegData:
    """A copy of ``data`` whose images are recorded by their site's profile (masks, meta
    unchanged; ``meta['site']`` added). A partition without profiles gets the default
    ones (:func:`acquisition_profile` with ``seed``)."""
    profiles = partition.profiles or [acquisition_profile(s, seed)
                                      for s in range(len(partition))]
    images = data.images.copy()
    meta = [dict(m) for m in data.meta]
    for s, idx in enumerate(partition):
        if len(idx):
            images[idx] = apply_acquisition(data.images[idx], profiles[s], seed)
        for i in idx:
            meta[i]["site"] = s
    return replace(data, images=images, masks=data.masks.copy(), meta=meta)


def profile_table(partition: Partition) -> str:
    """The acquisition profiles of a partition as a small text table."""
    if not partition.profiles:
        return "no acquisition profiles (scheme is not 'acquisition')"
    lines = ["site  gain (R, G, B)       bright  contrast  gamma  satur.  blur px  noise"]
    for p in partition.profiles:
        gain = ", ".join(f"{g:.2f}" for g in p.gain)
        lines.append(f"{p.site:>4}  ({gain})  {p.brightness:+.2f}   {p.contrast:6.2f}  "
                     f"{p.gamma:5.2f}  {p.saturation:6.2f}  {p.blur_sigma:7.2f}  "
                     f"{p.noise_sigma:.3f}")
    return "\n".join(lines)


# ---------------------------------------------------------------- one door
def make_sites(data: SegData, scheme: str = "iid", num_sites: int = 3, seed: int = 0,
               concentration: float = 0.5, by: str | None = None,
               strength: float = 1.0) -> Partition:
    """One call for every scheme (what the notebook widget uses).

    Args:
        data: the dataset to deal out.
        scheme: one of :data:`PARTITIONS` (``iid``, ``quantity``, ``label``,
            ``acquisition``).
        num_sites: number of sites.
        seed: random seed.
        concentration: Dirichlet concentration (``quantity`` and ``label``).
        by: what to skew / summarise by (see :func:`site_labels`); default ``dx`` when the
            metadata has it, else ``lesion_size`` for binary masks and ``dominant_class``
            for multi-class ones.
        strength: acquisition shift strength (``acquisition``).
    """
    if scheme not in PARTITIONS:
        raise ValueError(f"unknown partition scheme {scheme!r}; choose from "
                         f"{', '.join(PARTITIONS)}")
    if by is None:
        by = ("dx" if any("dx" in m for m in data.meta)
              else "lesion_size" if data.num_classes == 2 else "dominant_class")
    labels = site_labels(data, by)
    n = len(data)
    if scheme == "iid":
        part = partition_iid(n, num_sites, seed, labels)
    elif scheme == "quantity":
        part = partition_quantity(n, num_sites, seed, concentration, labels=labels)
    elif scheme == "label":
        part = partition_dirichlet(labels, num_sites, concentration, seed)
    elif scheme == "acquisition":
        part = partition_acquisition(n, num_sites, seed, strength, labels)
    else:  # unreachable while every name in PARTITIONS has its branch above
        raise AssertionError(f"partition scheme {scheme!r} has no branch in make_sites")
    part.params["by"] = by
    part.summary["by"] = by
    return part
