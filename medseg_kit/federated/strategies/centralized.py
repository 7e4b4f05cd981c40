"""Centralized: all sites' data pooled on one machine (the upper baseline)."""

from __future__ import annotations

import time

import numpy as np

from .base import Strategy, train_whole


class Centralized(Strategy):
    name = "centralized"

    def __init__(self, run):
        super().__init__(run)
        self.net = run.net
        self.opt = run.make_optimizer(self.net.parameters())
        self.all_idx = np.sort(np.concatenate([s.train_idx for s in run.sites]))

    def train_round(self, r: int) -> dict[int, dict]:
        t0 = time.perf_counter()
        batches = (b for e in range(self.run.config.local_epochs)
                   for b in self.run.batches(self.all_idx, r, 0, e))
        st = train_whole(self.net, self.opt, batches, self.run.loss_fn)
        st["seconds"] = time.perf_counter() - t0
        return {0: st}

    def model_for(self, site: int):
        return self.net

    def state_dict(self) -> dict:
        return {"net": self.net.state_dict(), "opt": self.opt.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.net.load_state_dict(state["net"])
        self.opt.load_state_dict(state["opt"])
