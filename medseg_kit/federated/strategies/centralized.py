"""Centralized: all sites' data pooled on one machine (the upper baseline).

The images of the sites that report in a round are pooled (all of them, without faults).
"""

from __future__ import annotations

import numpy as np

from .base import Strategy, guarded, train_whole


class Centralized(Strategy):
    name = "centralized"

    def __init__(self, run):
        super().__init__(run)
        self.net = run.net
        self.opt = run.make_optimizer(self.net.parameters())

    def train_round(self, r, active):
        idx = np.sort(np.concatenate([self.run.sites[i].train_idx for i in active]))
        batches = (b for e in range(self.run.config.local_epochs)
                   for b in self.run.batches(idx, r, 0, e))
        return {0: guarded([self.net], [self.opt], lambda: train_whole(
            self.net, self.opt, batches, self.run.loss_fn, self.run.config.clip_grad))}

    def model_for(self, site):
        return self.net

    def modules(self):
        return {"net": self.net}

    def optimizers(self):
        return {"opt": self.opt}
