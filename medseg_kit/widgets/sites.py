"""SiteExplorer: deal a dataset out to simulated sites and see each site's labels.

Controls only: the partition comes from :func:`medseg_kit.data.partition.make_sites`, the
picture from :func:`medseg_kit.data.plots.plot_partition`.
"""

from __future__ import annotations

import html

from ..data.base import SegData
from ..data.partition import PARTITIONS, make_sites
from ..data.plots import plot_partition
from ._base import WidgetBase, figure_png

#: The concentrations the slider offers (plus the one it is given).
CONCENTRATIONS = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)
#: Metadata fields worth skewing sites by, when a dataset has them.
META_CHOICES = ("dx", "localization", "dataset")
#: Labels derived from the masks, and their names in the dropdown.
MASK_LABELS = {"lesion_size": "lesion size", "dominant_class": "dominant class",
               "class_presence": "classes present"}


def label_choices(data: SegData) -> list[str]:
    """The labels that mean something for ``data``, most telling first: metadata fields it
    has (``dx``, ``localization``, ``dataset``), then for a binary task ``lesion_size``,
    for a multi-class task ``dominant_class`` and ``class_presence`` (an embryo has no
    lesion)."""
    out = [b for b in META_CHOICES if any(b in m for m in data.meta)]
    return out + (["lesion_size"] if data.num_classes == 2
                  else ["dominant_class", "class_presence"])


def partition_title(name: str, scheme: str, by: str, num_sites: int,
                    concentration: float) -> str:
    """The plot title: dataset, scheme, label, sites and (where it matters) concentration."""
    t = f"{name}: {scheme}, {num_sites} sites, labels by {MASK_LABELS.get(by, by)}"
    if scheme in ("quantity", "label"):
        t += f", concentration {concentration:.3g}"
    return t


class SiteExplorer(WidgetBase):
    """Dropdowns and sliders (dataset, scheme, label, sites, concentration) that redraw
    the per-site label histogram.

    Args:
        datasets: ``{name: SegData}``.
        num_sites, scheme, concentration, by, seed: initial values (pass the notebook's
            parameters); ``by=None`` picks the first meaningful label of each dataset
            (:func:`label_choices`).
        dataset: the dataset shown first (default: the first of ``datasets``).

    Attributes:
        widget, dataset, scheme, by, sites, concentration (the controls), picture (the
        ``Image`` with the plot), partition (the current
        :class:`~medseg_kit.data.partition.Partition`), title (the plot's title).
    """

    def __init__(self, datasets: dict[str, SegData], num_sites: int = 3, scheme: str = "label",
                 concentration: float = 0.5, by: str | None = None, seed: int = 0, *,
                 dataset: str | None = None):
        import ipywidgets as W

        if not datasets:
            raise ValueError("datasets is empty; pass {name: SegData}")
        if scheme not in PARTITIONS:
            raise ValueError(f"unknown scheme {scheme!r}; choose from {', '.join(PARTITIONS)}")
        if not concentration > 0:
            raise ValueError(f"concentration={concentration!r}: expected > 0")
        self.datasets, self.seed = datasets, seed
        first = dataset if dataset is not None else next(iter(datasets))
        choices = label_choices(datasets[first])
        if by is not None and by not in choices:
            raise ValueError(f"by={by!r} is not a label of {first}; choose from {choices}")
        style = {"description_width": "initial"}
        self.dataset = W.Dropdown(options=list(datasets), value=first, description="dataset",
                                  style=style)
        self.scheme = W.Dropdown(options=list(PARTITIONS), value=scheme, description="scheme",
                                 style=style)
        self.scheme.add_class("medseg-site-scheme")
        self.by = W.Dropdown(options=choices, value=by or choices[0], description="label",
                             style=style)
        self.sites = W.IntSlider(value=num_sites, min=2, max=max(8, num_sites),
                                 description="sites", style=style)
        # a selection slider over round values (and the notebook's own), so the initial
        # value is exactly the notebook's parameter, not the nearest point of a log grid
        steps = sorted({*CONCENTRATIONS, float(concentration)})
        self.concentration = W.SelectionSlider(options=[(f"{c:g}", c) for c in steps],
                                               value=float(concentration),
                                               description="concentration", style=style)
        self.picture = W.Image(format="png")
        self.picture.add_class("medseg-site-plot")
        self.widget = W.VBox([W.HBox([self.dataset, self.scheme, self.by]),
                              W.HBox([self.sites, self.concentration]), self.picture])
        self.widget.add_class("medseg-site-explorer")
        self._quiet = False
        self.dataset.observe(self._on_dataset, names="value")
        for w in (self.scheme, self.by, self.sites, self.concentration):
            w.observe(self._on_change, names="value")
        self._redraw()

    def _on_dataset(self, change) -> None:
        self._quiet = True  # one redraw for the new dataset, not one per reset control
        try:
            choices = label_choices(self.datasets[change["new"]])
            self.by.options = choices
            self.by.value = choices[0]
        finally:
            self._quiet = False
        self._redraw()

    def _on_change(self, _change) -> None:
        if not self._quiet:
            self._redraw()

    def _redraw(self) -> None:
        self._timed(self._draw)

    def _draw(self) -> None:
        name = self.dataset.value
        self.partition = make_sites(self.datasets[name], self.scheme.value, self.sites.value,
                                    self.seed, self.concentration.value, self.by.value)
        self.title = partition_title(name, self.scheme.value, self.by.value, self.sites.value,
                                     self.concentration.value)
        self.picture.value = figure_png(plot_partition(self.partition, title=self.title),
                                        tight=True)  # keep the legend inside

    @property
    def description(self) -> str:
        """The title of the current plot, HTML-escaped (for a readout)."""
        return html.escape(self.title)
