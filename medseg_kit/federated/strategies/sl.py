"""SL: vanilla sequential split learning (Gupta and Raskar, 2018; Vepakomma et al., 2018).

One client part travels from site to site: in each round the sites take turns; each
downloads the client weights left by the previous site, trains them with the server part
on its own data, and uploads them again. The wire counts the activations, gradients and
the client-weight hand-overs. The client optimizer's state travels with the weights
(not counted: it never leaves the training software in a real deployment of SL either,
where one usually restarts it; keeping it makes SL with one site equal centralized).
"""

from __future__ import annotations

from ..tensors import load_into
from .base import (
    RoundContext,
    Strategy,
    download,
    guarded,
    site_batches,
    train_split,
    upload,
)


class SequentialSL(Strategy):
    name = "sl"
    uses_split = True

    def __init__(self, ctx: RoundContext):
        super().__init__(ctx)
        self.split = ctx.split
        self.client = self.split.client_part(ctx.net)
        self.server = self.split.server_part(ctx.net)
        self.opt_client = ctx.make_optimizer(self.client.parameters())
        self.opt_server = ctx.make_optimizer(self.server.parameters())

    def train_round(self, r, active):
        out = {}
        ctx = self.ctx
        wire = ctx.wire
        for i in active:
            up0, down0 = wire.bytes_up, wire.bytes_down
            download(wire, self.client, self.client)  # the previous site's weights arrive
            batches = site_batches(ctx, ctx.sites[i], r)
            out[i] = guarded(
                [self.client, self.server], [self.opt_client, self.opt_server],
                lambda b=batches: train_split(self.split, self.client, self.server,
                                              self.opt_client, self.opt_server, b, ctx.loss_fn,
                                              wire, ctx.clip_grad, ctx.front_penalty))
            load_into(self.client, upload(wire, self.client))  # handed on
            out[i].update(bytes_up=wire.bytes_up - up0, bytes_down=wire.bytes_down - down0)
        return out

    def model_for(self, site):
        return self.ctx.net

    def modules(self):
        return {"net": self.ctx.net}

    def optimizers(self):
        return {"client": self.opt_client, "server": self.opt_server}
