"""SFLv2 (Thapa et al., AAAI 2022): one shared server part, the sites take turns.

Each round every reporting site starts from the global client part, trains its local
epochs with the one server part (updated batch by batch, site after site, in a random
order drawn per round), and at the end of the round the client parts are FedAvg-ed,
weighted by the number of training images.
"""

from __future__ import annotations

import copy

import numpy as np

from .base import (
    RoundContext,
    Strategy,
    average_states_into,
    download,
    guarded,
    site_batches,
    train_split,
    upload,
)


class SFLv2(Strategy):
    name = "sflv2"
    uses_split = True

    def __init__(self, ctx: RoundContext):
        super().__init__(ctx)
        self.split = ctx.split
        self.global_client = self.split.client_part(ctx.net)
        self.server = self.split.server_part(ctx.net)
        self.clients = [copy.deepcopy(self.global_client) for _ in ctx.sites]
        self.opt_clients = [ctx.make_optimizer(c.parameters()) for c in self.clients]
        self.opt_server = ctx.make_optimizer(self.server.parameters())

    def site_order(self, r: int, active) -> list[int]:
        rng = np.random.default_rng([self.ctx.seed, r, 7])
        return [int(i) for i in rng.permutation(sorted(active))]

    def train_round(self, r, active):
        out, received = {}, {}
        ctx = self.ctx
        wire = ctx.wire
        for i in self.site_order(r, active):
            c, oc = self.clients[i], self.opt_clients[i]
            up0, down0 = wire.bytes_up, wire.bytes_down
            download(wire, self.global_client, c)  # the federation sends the client part
            batches = site_batches(ctx, ctx.sites[i], r)
            out[i] = guarded([c, self.server], [oc, self.opt_server],
                             lambda c=c, oc=oc, b=batches: train_split(
                                 self.split, c, self.server, oc, self.opt_server, b,
                                 ctx.loss_fn, wire, ctx.clip_grad, ctx.front_penalty))
            if out[i]["status"] == "ok":
                received[i] = upload(wire, c)
            out[i].update(bytes_up=wire.bytes_up - up0, bytes_down=wire.bytes_down - down0)
        ok = [i for i in active if i in received]  # in site order, as before
        if ok:
            average_states_into([self.global_client], [received[i] for i in ok],
                                [ctx.sites[i].n_train for i in ok])
        return out

    def model_for(self, site):
        return self.ctx.net  # global client stages + the server stages

    def modules(self):
        return {"net": self.ctx.net, **{f"client{i}": c for i, c in enumerate(self.clients)}}

    def optimizers(self):
        return {"server": self.opt_server,
                **{f"client{i}": o for i, o in enumerate(self.opt_clients)}}
