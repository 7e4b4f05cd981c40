"""FL: federated averaging of the whole model (McMahan et al., AISTATS 2017).

Every round each reporting site downloads the global model, trains it on its own data
for ``local_epochs`` and uploads it; the server averages the uploads weighted by the
sites' numbers of training images. The wire counts the two model transfers.
"""

from __future__ import annotations

import copy

from .base import (
    RoundContext,
    Strategy,
    average_states_into,
    download,
    guarded,
    site_batches,
    train_whole,
    upload,
)


class FedAvg(Strategy):
    name = "fl"

    def __init__(self, ctx: RoundContext):
        super().__init__(ctx)
        self.net = ctx.net  # the global model, kept by the server
        self.nets = [copy.deepcopy(ctx.net) for _ in ctx.sites]
        self.opts = [ctx.make_optimizer(n.parameters()) for n in self.nets]

    def train_round(self, r, active):
        out, received = {}, {}
        ctx = self.ctx
        wire = ctx.wire
        for i in active:
            net, opt = self.nets[i], self.opts[i]
            up0, down0 = wire.bytes_up, wire.bytes_down
            download(wire, self.net, net)
            batches = site_batches(ctx, ctx.sites[i], r)
            out[i] = guarded([net], [opt], lambda net=net, opt=opt, b=batches: train_whole(
                net, opt, b, ctx.loss_fn, ctx.clip_grad))
            if out[i]["status"] == "ok":  # a site whose update broke sends nothing back
                received[i] = upload(wire, net)
            out[i].update(bytes_up=wire.bytes_up - up0, bytes_down=wire.bytes_down - down0)
        if received:
            average_states_into([self.net], list(received.values()),
                                [ctx.sites[i].n_train for i in received])
        return out

    def model_for(self, site):
        return self.net

    def modules(self):
        return {"net": self.net, **{f"net{i}": n for i, n in enumerate(self.nets)}}

    def optimizers(self):
        return {f"opt{i}": o for i, o in enumerate(self.opts)}
