"""Centralized: all sites' data pooled on one machine (the upper baseline).

The images of the sites that report in a round are pooled (all of them, without faults).
"""

from __future__ import annotations

import numpy as np

from .base import RoundContext, Strategy, guarded, train_whole


class Centralized(Strategy):
    name = "centralized"

    def __init__(self, ctx: RoundContext):
        super().__init__(ctx)
        self.net = ctx.net
        self.opt = ctx.make_optimizer(self.net.parameters())

    def train_round(self, r, active):
        ctx = self.ctx
        idx = np.sort(np.concatenate([ctx.sites[i].train_idx for i in active]))
        batches = (b for e in range(ctx.local_epochs) for b in ctx.batches(idx, r, 0, e))
        return {0: guarded([self.net], [self.opt], lambda: train_whole(
            self.net, self.opt, batches, ctx.loss_fn, ctx.clip_grad))}

    def model_for(self, site):
        return self.net

    def modules(self):
        return {"net": self.net}

    def optimizers(self):
        return {"opt": self.opt}
