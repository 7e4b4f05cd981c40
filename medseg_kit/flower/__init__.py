"""The same SplitFed protocol on Flower's deployment runtime: one process per site.

A SuperLink (at the coordinating centre) and one SuperNode per hospital (it only makes
outbound connections); ``flwr run`` starts the ServerApp (:mod:`.server_app`, the round
loop of :mod:`.server`) and every message to a site runs the ClientApp
(:mod:`.client_app`, the site's work in :mod:`.site`). Both sides compute with the kit's
own protocol halves (:class:`~medseg_kit.protocol.SiteHalf`,
:class:`~medseg_kit.protocol.ServerHalf`) and count bytes with its
:class:`~medseg_kit.wire.Wire`; only the transport differs from the simulation.

For a notebook::

    from medseg_kit.flower import demo, run_flower, latency
    report = demo("outputs/flower")            # simulation and Flower, one table
    res = run_flower(config, "runs/fl1")       # one run; res["history"], res["wall"]

Needs the ``flower`` extra (``pip install 'medseg_kit[flower]'``).
"""

from __future__ import annotations

__all__ = ["FLOWER_DEMO", "LocalFederation", "demo", "latency", "prepare_sites", "run_flower"]


def __getattr__(name):  # Flower and PyTorch are imported when first used
    if name in ("FLOWER_DEMO", "demo", "latency", "run_flower"):
        from . import local

        return getattr(local, name)
    if name == "LocalFederation":
        from .launch import LocalFederation

        return LocalFederation
    if name == "prepare_sites":
        from .site import prepare_sites

        return prepare_sites
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
