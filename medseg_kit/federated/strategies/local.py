"""Local: each site trains alone on its own data (the lower baseline); nothing is sent."""

from __future__ import annotations

import copy

from .base import Strategy, guarded, site_batches, train_whole


class Local(Strategy):
    name = "local"

    def __init__(self, run):
        super().__init__(run)
        self.nets = [copy.deepcopy(run.net) for _ in run.sites]
        self.opts = [run.make_optimizer(n.parameters()) for n in self.nets]

    def train_round(self, r, active):
        out = {}
        for i in active:
            net, opt = self.nets[i], self.opts[i]
            batches = site_batches(self.run, self.run.sites[i], r)
            out[i] = guarded([net], [opt], lambda net=net, opt=opt, b=batches: train_whole(
                net, opt, b, self.run.loss_fn, self.run.config.clip_grad))
        return out

    def model_for(self, site):
        return self.nets[site]

    def modules(self):
        return {f"net{i}": n for i, n in enumerate(self.nets)}

    def optimizers(self):
        return {f"opt{i}": o for i, o in enumerate(self.opts)}
