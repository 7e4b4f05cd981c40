"""TrainingMonitor: live learning curves and bytes while a run trains in the notebook, and a
Stop button that ends the run at the next round boundary.

Pass :meth:`TrainingMonitor.on_round` to :func:`medseg_kit.federated.train` (``on_round=``):
the run calls it after each round is recorded and checkpointed, and stops there when it
returns True, so the checkpoint stays valid and ``resume=True`` continues from it.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

from .. import viz
from ..units import MIB, format_bytes
from ._base import WidgetBase, figure_png

BYTES_KEY = "MiB sent (all sites, total)"


def monitor_rows(history) -> list[dict]:
    """The pooled rows of ``history`` with the running total of bytes (both ways, all
    sites) in MiB under :data:`BYTES_KEY`: what the monitor plots."""
    rows, total = [], 0
    for r in history.rows():
        total += r["bytes_up"] + r["bytes_down"]
        rows.append({**r, BYTES_KEY: total / MIB, "bytes_total": total})
    return rows


def run_label(history) -> str:
    """``"<strategy> seed <seed>"`` for a history's config."""
    c = history.config
    return f"{c.get('strategy', 'run')} seed {c.get('seed', 0)}"


class TrainingMonitor(WidgetBase):
    """Live learning curves (pooled test rows) and bytes sent, with a Stop button.

    One monitor can watch several runs one after the other (one line each). Pressing Stop
    ends the run that is training at its next round boundary (a press before the first
    round ends the run after round 1); once a run has stopped, the next run clears the
    request and enables the button again.

    Args:
        metrics: pooled-row keys to plot, one panel each (a bytes panel is added).

    Attributes:
        widget: the box to display.
        stop_button: the Stop button; stop_requested: True once it was pressed.
        status: ``HTML`` with the round, the metrics and the bytes so far.
        picture: ``Image`` with the curves.
        runs: ``{label: rows}`` of every run seen.

    Example:
        >>> monitor = TrainingMonitor()                                   # doctest: +SKIP
        >>> monitor                                                       # doctest: +SKIP
        >>> history, _ = train(config, out, on_round=monitor.on_round)    # doctest: +SKIP
    """

    def __init__(self, metrics: Sequence[str] = ("train_loss", "dice")):
        import ipywidgets as W

        self.metrics = tuple(metrics)
        self.runs: dict[str, list[dict]] = {}
        self.stop_requested = False
        self._history = None
        self._stop_honoured = False
        self.stop_button = W.Button(description="Stop", button_style="danger", icon="stop",
                                    tooltip="stop the run after the current round")
        self.stop_button.add_class("medseg-monitor-stop")
        self.status = W.HTML("waiting for the first round")
        self.status.add_class("medseg-monitor-readout")
        self.picture = W.Image(format="png")
        self.picture.add_class("medseg-monitor-plot")
        self.widget = W.VBox([W.HBox([self.stop_button, self.status]), self.picture])
        self.widget.add_class("medseg-training-monitor")
        self.stop_button.on_click(self._on_stop)
        self.subshell = _button_subshell(self.stop_button)

    def _keep_route(self) -> None:
        """A button update sent from the main thread routes its replies back there; send
        them to the subshell again."""
        comm = getattr(self.stop_button, "comm", None)
        if self.subshell is not None and comm is not None:
            comm._reply_subshell_id = self.subshell

    def _on_stop(self, _button=None) -> None:
        self.stop_requested = True
        self.stop_button.disabled = True
        self.status.value += " &mdash; <b>stopping after this round</b>"

    def on_round(self, history, r: int) -> bool:
        """Record round ``r`` of ``history`` and redraw; True asks the run to stop here."""
        if history is not self._history:  # a new run: a new line
            self._history = history
            if self._stop_honoured:  # the last run stopped: the button works again
                self.stop_requested = self._stop_honoured = False
                self.stop_button.disabled = False
                self._keep_route()
        if self.subshell is None:
            _poll_ui_events()
        label = run_label(history)
        rows = monitor_rows(history)
        self.runs[label] = rows
        self._timed(lambda: self._draw(label, rows, r, history.config.get("rounds")))
        if self.subshell is None:
            _poll_ui_events()
        if self.stop_requested:
            self._stop_honoured = True
        return self.stop_requested

    def _draw(self, label: str, rows: list[dict], r: int, rounds) -> None:
        last = rows[-1]
        vals = ", ".join(f"{m} {last[m]:.3f}" for m in self.metrics if m in last)
        self.status.value = (f"<b>{html.escape(label)}</b>: round {r + 1} of {rounds}; {vals};"
                             f" sent so far {format_bytes(last['bytes_total'])}"
                             + (" &mdash; <b>stopping after this round</b>"
                                if self.stop_requested else ""))
        fig = viz.plot_curves(self.runs, (*self.metrics, BYTES_KEY))
        self.picture.value = figure_png(fig)


def _button_subshell(button) -> str | None:
    """Route ``button``'s messages to a kernel subshell (its own thread), so that a click
    is handled while the notebook's main thread is busy in ``train(...)``.

    A kernel runs one cell at a time and handles widget messages between cells; ipykernel 7
    adds *subshells*, each with its own thread, and routes a comm's messages to the
    subshell named by its ``_reply_subshell_id``. Returns the subshell id, or None where
    that is not available (no kernel, an older ipykernel): then the click is handled after
    the cell, unless ``jupyter-ui-poll`` is installed (:func:`_poll_ui_events`).
    """
    try:
        import threading

        from ipykernel.kernelbase import Kernel

        if not Kernel.initialized():
            return None
        kernel = Kernel.instance()
        if not getattr(kernel, "_supports_kernel_subshells", False):
            return None
        manager = kernel.shell_channel_thread.manager
        made, box = threading.Event(), {}

        def create():  # must run on the shell channel thread
            try:
                box["id"] = manager._create_subshell()
            finally:
                made.set()

        manager._shell_channel_io_loop.add_callback(create)
        if not made.wait(5.0) or "id" not in box:
            return None
        button.comm._reply_subshell_id = box["id"]
        return box["id"]
    except Exception:  # any other kernel: fall back to handling the click after the cell
        return None


def _poll_ui_events() -> None:
    """Let a button click reach the kernel while a cell is still running, on kernels
    without subshells (:func:`_button_subshell`).

    A notebook kernel handles widget messages between cells only; during a long
    ``train(...)`` call the Stop click would wait until the run is over. With the optional
    ``jupyter-ui-poll`` package installed, the pending messages are handled here (between
    rounds); without it, the click is handled after the cell ends.
    """
    try:
        from jupyter_ui_poll import ui_events
    except ImportError:
        return
    try:
        with ui_events() as poll:
            poll(100)
    except Exception:  # outside a kernel (tests, scripts) there is nothing to poll
        return
