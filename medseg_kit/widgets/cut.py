"""CutExplorer: move the cut of a network and see what crosses, what it costs and what the
server sees. Controls only: the facts come from :func:`medseg_kit.split.cut_report`, the
pictures from :func:`medseg_kit.viz.plot_cut` and :func:`medseg_kit.viz.plot_smashed`."""

from __future__ import annotations

import html

import numpy as np

from .. import viz
from ..link import Link
from ..models.staged import StagedNet
from ..models.summary import stage_flops
from ..split import CutError, activations, cut_report
from ..traffic import price_round
from ..units import format_bytes
from ._base import WidgetBase, figure_png


def sample_image(size: int, seed: int = 0) -> np.ndarray:
    """A synthetic colonoscopy frame (``size`` x ``size`` x 3, uint8) to look through."""
    from ..data.kvasir import synth_polyp_image

    img = synth_polyp_image(np.random.default_rng(seed), size, size)[0]
    return np.asarray(img, dtype=np.uint8)


def readout_html(rep: dict) -> str:
    """The readout of :class:`CutExplorer` for one :func:`~medseg_kit.split.cut_report`."""
    if "error" in rep:
        return (f"<div style='color:#b00020'><b>Not a valid cut.</b> "
                f"{html.escape(rep['error'])}</div>")
    rows = []
    for d in ("up", "down"):
        for c in rep[d]:
            arrow = "site &rarr; server" if d == "up" else "server &rarr; site"
            raw = " <b style='color:#b00020'>raw image data</b>" if c["raw"] else ""
            shape = " &times; ".join(str(s) for s in c["shape"])
            rows.append(f"<tr><td>{arrow}</td><td><code>{html.escape(c['name'])}</code>{raw}"
                        f"</td><td>{shape}</td><td style='text-align:right'>"
                        f"{format_bytes(c['bytes'])}</td></tr>")
    size = rep["size"]
    parts = [
        f"<b>{html.escape(rep['model'])}, cut ({rep['front']}, {rep['back']}), one {size}x{size}"
        f" image</b>",
        "<table><tr><th>direction</th><th>tensor</th><th>shape</th><th>activation</th></tr>"
        + "".join(rows) + "</table>",
        f"per image and training step (activations + gradients): <b>"
        f"{format_bytes(rep['bytes_up'])} up</b> ({rep['bytes_up']:,} B), <b>"
        f"{format_bytes(rep['bytes_down'])} down</b> ({rep['bytes_down']:,} B)",
        f"kept on the site (skips): {', '.join(rep['kept']) or 'none'}",
        f"parameters: site {rep['params_site']:,} ({rep['params_site_share']:.0%}), server "
        f"{rep['params_server']:,} ({1 - rep['params_site_share']:.0%})",
    ]
    if "flops_site" in rep:
        parts.append(f"FLOPs per image (forward): site {rep['flops_site'] / 1e6:,.1f} M "
                     f"({rep['flops_site_share']:.0%}), server {rep['flops_server'] / 1e6:,.1f} M"
                     f" ({1 - rep['flops_site_share']:.0%})")
    if "seconds_per_round" in rep:
        parts.append(f"one round, {rep['images_per_site']} images per site: "
                     f"{format_bytes(rep['bytes_round_up'])} up, "
                     f"{format_bytes(rep['bytes_round_down'])} down (the client part both "
                     f"ways, training, BatchNorm calibration) &rArr; "
                     f"<b>{rep['seconds_per_round']:.2f} s</b> on the link")
    if rep["labels_to_server"]:
        parts.append("<span style='color:#b00020'>back = number of stages: the vanilla split;"
                     " the labels go to the server.</span>")
    if rep["refused"]:
        parts.append("<div style='color:#b00020;border:2px solid #b00020;padding:4px'>"
                     f"&#9888; <b>Refused by Split</b> (RawDataError): "
                     f"{html.escape(rep['refused'])}</div>")
    return "<br>".join(parts)


class CutExplorer(WidgetBase):
    """A two-handled slider over a network's stages (the cut ``(front, back)``) that
    redraws the stage diagram, what crosses with shapes and bytes per image, the site and
    server shares of parameters and FLOPs, the raw-data refusal, what the server sees for
    a sample image and the time per round on a link.

    The whole network runs once on the sample image at construction (every named tensor
    kept), and the FLOPs per stage are counted once: moving the cut recomputes nothing.

    Args:
        model: a registered model name (built at its teaching width) or a StagedNet.
        size: image side for the byte counts and the sample image.
        image: H x W x 3 sample image (default: a synthetic colonoscopy frame).
        images_per_site: training images per site and round (for the link time).
        link_mbps: link speed both ways in Mbit/s (10**6 bit/s).
        width: width to build ``model`` at when it is a name (default: teaching width).

    Attributes:
        widget: the box to display.
        cut: the ``IntRangeSlider`` (value ``(front, back)``).
        readout: ``HTML`` with the facts of the current cut.
        diagram, smashed: ``Image`` widgets with the stage diagram and the channel mosaics.
        mbps, images: the link controls.

    Example:
        >>> ex = CutExplorer("unet", 64)          # doctest: +SKIP
        >>> ex.set_cut(2, 8); ex.report["bytes_up"]  # doctest: +SKIP
    """

    def __init__(self, model: str | StagedNet = "unet", size: int = 64, *, image=None,
                 images_per_site: int = 32, link_mbps: float = 20.0, width=None):
        import ipywidgets as W

        from ..models import create_model

        if isinstance(model, str):
            model = create_model(model, width=width)
        self.net, self.size = model, size
        self.n = len(model)
        self.image = sample_image(size) if image is None else np.asarray(image)
        self.acts = activations(model, self.image)  # one forward pass, all tensors
        self.stage_flops = stage_flops(model, size)
        name = getattr(model, "model_name", "model")
        self.cut = W.IntRangeSlider(value=tuple(model.default_cut), min=1, max=self.n, step=1,
                                    description="cut", continuous_update=False,
                                    style={"description_width": "initial"},
                                    layout=W.Layout(width="420px"))
        self.cut.add_class("medseg-cut-slider")
        self.mbps = W.FloatLogSlider(value=link_mbps, base=10, min=-1, max=3, step=0.1,
                                     description="link Mbit/s", continuous_update=False,
                                     style={"description_width": "initial"})
        self.images = W.IntSlider(value=images_per_site, min=1, max=1000,
                                  description="images/site", continuous_update=False,
                                  style={"description_width": "initial"})
        self.stages_html = W.HTML(self._stage_list())
        self.readout = W.HTML()
        self.readout.add_class("medseg-cut-readout")
        self.diagram = W.Image(format="png")
        self.diagram.add_class("medseg-cut-diagram")
        self.smashed = W.Image(format="png")
        self.smashed.add_class("medseg-cut-smashed")
        self.widget = W.VBox([
            W.HTML(f"<b>{html.escape(name)}</b>: {self.n} stages; front = stages the site runs "
                   "before the server, back = first stage the site runs again"),
            W.HBox([self.cut, self.mbps, self.images]), self.stages_html, self.diagram,
            self.readout, self.smashed])
        self.widget.add_class("medseg-cut-explorer")
        self.cut.observe(self._on_cut, names="value")
        self.mbps.observe(lambda _: self._refresh_readout(), names="value")
        self.images.observe(lambda _: self._refresh_readout(), names="value")
        self._redraw()

    # ------------------------------------------------------------ controls
    def set_cut(self, front: int, back: int) -> None:
        """Move the slider to ``(front, back)`` (redraws, like a user dragging it)."""
        self.cut.value = (int(front), int(back))

    @property
    def report(self) -> dict:
        """The facts of the current cut (:func:`medseg_kit.split.cut_report`) and its round
        on the link (:func:`medseg_kit.traffic.price_round`: SplitFed, float32), or
        ``{"error": message, "front": .., "back": ..}`` for an invalid cut."""
        front, back = self.cut.value
        try:
            rep = cut_report(self.net, front, back, self.size, stage_flops=self.stage_flops)
        except CutError as e:
            return {"error": str(e), "front": front, "back": back}
        return {**rep, **price_round(self.net, (front, back), self.size,
                                     Link(self.mbps.value, self.mbps.value),
                                     images_per_site=self.images.value)}

    # -------------------------------------------------------------- drawing
    def _stage_list(self) -> str:
        return ("<small>" + " &middot; ".join(f"{i}:{html.escape(s)}" for i, s in
                                              enumerate(self.net.stage_names)) + "</small>")

    def _on_cut(self, _change) -> None:
        self._redraw()

    def _refresh_readout(self) -> None:
        self.readout.value = readout_html(self.report)

    def _redraw(self) -> None:
        self._timed(self._draw)

    def _draw(self) -> None:
        rep = self.report
        self.readout.value = readout_html(rep)
        if "error" in rep:
            return  # keep the last good pictures; the readout says what is wrong
        self.diagram.value = figure_png(viz.plot_cut(self.net, rep["front"], rep["back"],
                                                     self.size))
        up = [c["name"] for c in rep["up"] if c["name"] in self.acts]
        raw = [c["name"] for c in rep["up"] if c["raw"]]
        title = ("what the server sees: the tensors sent up for one image"
                 + (" (RAW IMAGE DATA in red)" if raw else ""))
        self.smashed.value = figure_png(viz.plot_smashed(self.acts, up, raw=raw, title=title))
