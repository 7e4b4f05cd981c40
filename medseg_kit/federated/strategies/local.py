"""Local: each site trains alone on its own data (the lower baseline); nothing is sent."""

from __future__ import annotations

import copy

from .base import RoundContext, Strategy, guarded, site_batches, train_whole


class Local(Strategy):
    name = "local"

    def __init__(self, ctx: RoundContext):
        super().__init__(ctx)
        self.nets = [copy.deepcopy(ctx.net) for _ in ctx.sites]
        self.opts = [ctx.make_optimizer(n.parameters()) for n in self.nets]

    def train_round(self, r, active):
        out, ctx = {}, self.ctx
        for i in active:
            net, opt = self.nets[i], self.opts[i]
            batches = site_batches(ctx, ctx.sites[i], r)
            out[i] = guarded([net], [opt], lambda net=net, opt=opt, b=batches: train_whole(
                net, opt, b, ctx.loss_fn, ctx.clip_grad))
        return out

    def model_for(self, site):
        return self.nets[site]

    def modules(self):
        return {f"net{i}": n for i, n in enumerate(self.nets)}

    def optimizers(self):
        return {f"opt{i}": o for i, o in enumerate(self.opts)}
