"""Local: each site trains alone on its own data (the lower baseline); nothing is sent."""

from __future__ import annotations

import copy
import time

from .base import Strategy, site_batches, train_whole


class Local(Strategy):
    name = "local"
    single_global_model = False

    def __init__(self, run):
        super().__init__(run)
        self.nets = [copy.deepcopy(run.net) for _ in run.sites]
        self.opts = [run.make_optimizer(n.parameters()) for n in self.nets]

    def train_round(self, r: int) -> dict[int, dict]:
        out = {}
        for site, net, opt in zip(self.run.sites, self.nets, self.opts):
            t0 = time.perf_counter()
            st = train_whole(net, opt, site_batches(self.run, site, r), self.run.loss_fn)
            st["seconds"] = time.perf_counter() - t0
            out[site.id] = st
        return out

    def model_for(self, site: int):
        return self.nets[site]

    def state_dict(self) -> dict:
        return {"nets": [n.state_dict() for n in self.nets],
                "opts": [o.state_dict() for o in self.opts]}

    def load_state_dict(self, state: dict) -> None:
        for n, o, sn, so in zip(self.nets, self.opts, state["nets"], state["opts"]):
            n.load_state_dict(sn)
            o.load_state_dict(so)
