"""What every widget shares: showing itself, timing its redraws, and turning a figure into
the bytes of an image widget."""

from __future__ import annotations

import io
import time

import matplotlib.pyplot as plt


def figure_png(fig, dpi: int = 100, tight: bool = False) -> bytes:
    """``fig`` as PNG bytes; the figure is closed (it lives on only as the picture).

    ``tight`` crops to what is drawn, legends outside the axes included (one more layout
    pass: used where a legend sits outside the axes)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight" if tight else None)
    plt.close(fig)
    return buf.getvalue()


class WidgetBase:
    """A widget object that shows its ``.widget`` box when it is a cell's last value and
    remembers how long its last redraw took (``last_redraw_s``, seconds)."""

    widget = None
    last_redraw_s: float = 0.0

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)

    def _timed(self, fn):
        t0 = time.perf_counter()
        try:
            return fn()
        finally:
            self.last_redraw_s = time.perf_counter() - t0
