"""An ipywidgets front-end for the site partitions; it only wires controls to
:func:`~medseg_kit.data.partition.make_sites` and :func:`~medseg_kit.data.plots.plot_partition`.
"""

from __future__ import annotations

import matplotlib.pyplot as plt

from .base import SegData
from .partition import SCHEMES, make_sites
from .plots import plot_partition

BY_CHOICES = ("dx", "localization", "dataset", "lesion_size", "class_presence",
              "dominant_class")


def _by_options(data: SegData) -> list[str]:
    return [b for b in BY_CHOICES
            if b in ("lesion_size", "class_presence", "dominant_class")
            or any(b in m for m in data.meta)]


def sites_explorer(datasets: dict[str, SegData], num_sites: int = 3, seed: int = 0):
    """Dropdowns and sliders (dataset, scheme, label, sites, concentration) that redraw
    the per-site label histogram. Returns the widget (display it, or let the notebook)."""
    import ipywidgets as W
    from IPython.display import display

    first = next(iter(datasets.values()))
    dataset = W.Dropdown(options=list(datasets), description="dataset")
    scheme = W.Dropdown(options=SCHEMES, value="label", description="scheme")
    by = W.Dropdown(options=_by_options(first), description="label")
    sites = W.IntSlider(value=num_sites, min=2, max=8, description="sites")
    conc = W.FloatLogSlider(value=0.5, base=10, min=-2, max=2, step=0.1,
                            description="concentration")
    out = W.Output()

    def redraw(*_):
        data = datasets[dataset.value]
        part = make_sites(data, scheme.value, sites.value, seed, conc.value, by.value)
        with out:
            out.clear_output(wait=True)
            fig = plot_partition(part, title=f"{dataset.value}: {scheme.value} by {by.value}")
            display(fig)
            plt.close(fig)

    def new_dataset(change):
        by.options = _by_options(datasets[change["new"]])

    dataset.observe(new_dataset, names="value")
    for w in (dataset, scheme, by, sites, conc):
        w.observe(redraw, names="value")
    redraw()
    return W.VBox([W.HBox([dataset, scheme, by]), W.HBox([sites, conc]), out])
