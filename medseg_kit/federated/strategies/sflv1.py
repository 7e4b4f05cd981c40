"""SFLv1 (Thapa et al., AAAI 2022): one server copy per site, everything averaged.

The sites train in parallel (simulated one after the other), each with its own copy of
the server part; at the end of the round the server copies are FedAvg-ed by the server
and the client parts by the federation, both weighted by the sites' training images.
"""

from __future__ import annotations

import copy

from ..tensors import load_into
from .base import (
    RoundContext,
    Strategy,
    average_into,
    average_states_into,
    download,
    guarded,
    site_batches,
    train_split,
    upload,
)


class SFLv1(Strategy):
    name = "sflv1"
    uses_split = True

    def __init__(self, ctx: RoundContext):
        super().__init__(ctx)
        self.split = ctx.split
        self.global_client = self.split.client_part(ctx.net)
        self.global_server = self.split.server_part(ctx.net)
        n = len(ctx.sites)
        self.clients = [copy.deepcopy(self.global_client) for _ in range(n)]
        self.servers = [copy.deepcopy(self.global_server) for _ in range(n)]
        self.opt_clients = [ctx.make_optimizer(c.parameters()) for c in self.clients]
        self.opt_servers = [ctx.make_optimizer(s.parameters()) for s in self.servers]

    def train_round(self, r, active):
        out, received = {}, {}
        ctx = self.ctx
        wire = ctx.wire
        for i in active:
            c, s, oc, os_ = self.clients[i], self.servers[i], self.opt_clients[i], \
                self.opt_servers[i]
            up0, down0 = wire.bytes_up, wire.bytes_down
            download(wire, self.global_client, c)  # the federation sends the client part
            load_into(s, self.global_server.state_dict(keep_vars=True))  # server: no wire
            batches = site_batches(ctx, ctx.sites[i], r)
            out[i] = guarded([c, s], [oc, os_], lambda c=c, s=s, oc=oc, os_=os_, b=batches:
                             train_split(self.split, c, s, oc, os_, b, ctx.loss_fn, wire,
                                         ctx.clip_grad, ctx.front_penalty))
            if out[i]["status"] == "ok":
                received[i] = upload(wire, c)
            out[i].update(bytes_up=wire.bytes_up - up0, bytes_down=wire.bytes_down - down0)
        if received:
            w = [ctx.sites[i].n_train for i in received]
            average_states_into([self.global_client], list(received.values()), w)
            average_into([self.global_server], [self.servers[i] for i in received], w)
        return out

    def model_for(self, site):
        return self.ctx.net

    def modules(self):
        return {"net": self.ctx.net, **{f"client{i}": c for i, c in enumerate(self.clients)},
                **{f"server{i}": s for i, s in enumerate(self.servers)}}

    def optimizers(self):
        return {**{f"client{i}": o for i, o in enumerate(self.opt_clients)},
                **{f"server{i}": o for i, o in enumerate(self.opt_servers)}}
