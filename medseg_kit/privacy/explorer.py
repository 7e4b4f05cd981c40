"""ReconstructionExplorer: move the cut and see what the server reconstructs.

Controls only: a model menu and a slider over the attacked front depths, wired to
:func:`~medseg_kit.privacy.report.plot_reconstructions` on attacks already computed
(moving the slider trains nothing).
"""

from __future__ import annotations

import html
import io
import time
from collections.abc import Sequence

import matplotlib.pyplot as plt

from .attack import InversionResult
from .report import plot_reconstructions


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


def readout(attack: InversionResult) -> str:
    """The facts of one attack, as HTML."""
    raw = (" <b style='color:#b00020'>raw image data: "
           f"{html.escape(', '.join(attack.raw))}</b>" if attack.raw else "")
    return (f"<b>{html.escape(attack.model)}</b>, cut ({attack.front}, {attack.back}): the "
            f"server receives <code>{html.escape(', '.join(attack.up))}</code>{raw}. "
            f"Mean SSIM <b>{attack.ssim:.3f}</b>, PSNR <b>{attack.psnr:.1f} dB</b> (a blind "
            f"guess of the mean auxiliary image: SSIM {attack.baseline_ssim:.3f}, PSNR "
            f"{attack.baseline_psnr:.1f} dB).")


class ReconstructionExplorer:
    """A model menu and a front-depth slider over precomputed inversion attacks.

    Args:
        attacks: :class:`InversionResult` s (any models, any fronts; one per pair).
        n_images: target images shown.

    Attributes:
        widget: the box to display; ``model`` (Dropdown), ``front`` (SelectionSlider),
        ``picture`` (Image) and ``info`` (HTML); ``last_redraw_s``.

    Example:
        >>> ReconstructionExplorer(sweep.attacks.values())   # doctest: +SKIP
    """

    def __init__(self, attacks: Sequence[InversionResult], n_images: int = 4):
        import ipywidgets as W

        self.by_model: dict[str, dict[int, InversionResult]] = {}
        for a in attacks:
            self.by_model.setdefault(a.model, {})[a.front] = a
        if not self.by_model:
            raise ValueError("no attack to explore")
        self.n_images = n_images
        self.last_redraw_s = 0.0
        self._switching = False
        first = next(iter(self.by_model))
        self.model = W.Dropdown(options=list(self.by_model), value=first, description="model")
        self.front = W.SelectionSlider(options=self._fronts(first), description="front depth",
                                       continuous_update=False,
                                       style={"description_width": "initial"})
        self.picture = W.Image(format="png")
        self.info = W.HTML()
        self.widget = W.VBox([W.HBox([self.model, self.front]), self.info, self.picture])
        self.model.observe(self._on_model, names="value")
        self.front.observe(lambda _: self._switching or self._draw(), names="value")
        self._draw()

    def _fronts(self, model: str) -> list[int]:
        return sorted(self.by_model[model])

    @property
    def attack(self) -> InversionResult:
        """The attack shown now."""
        return self.by_model[self.model.value][self.front.value]

    def show(self, model: str, front: int) -> None:
        """Select ``model`` and ``front`` (as a user would)."""
        self.model.value = model
        self.front.value = front

    def _on_model(self, _change) -> None:
        self._switching = True  # one redraw, not one for the slider's reset too
        try:
            self.front.options = self._fronts(self.model.value)
        finally:
            self._switching = False
        self._draw()

    def _draw(self) -> None:
        t0 = time.perf_counter()
        a = self.attack
        self.info.value = readout(a)
        self.picture.value = _png(plot_reconstructions([a], self.n_images))
        self.last_redraw_s = time.perf_counter() - t0

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)
