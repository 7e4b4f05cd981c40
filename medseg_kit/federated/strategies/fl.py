"""FL: federated averaging of the whole model (McMahan et al., AISTATS 2017).

Every round each reporting site downloads the global model, trains it on its own data
for ``local_epochs`` and uploads it; the server averages the uploads weighted by the
sites' numbers of training images. The wire counts the two model transfers.
"""

from __future__ import annotations

import copy

from .base import (
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

    def __init__(self, run):
        super().__init__(run)
        self.net = run.net  # the global model, kept by the server
        self.nets = [copy.deepcopy(run.net) for _ in run.sites]
        self.opts = [run.make_optimizer(n.parameters()) for n in self.nets]

    def train_round(self, r, active):
        out, received = {}, {}
        wire = self.run.wire
        for i in active:
            net, opt = self.nets[i], self.opts[i]
            up0, down0 = wire.bytes_up, wire.bytes_down
            download(wire, self.net, net)
            batches = site_batches(self.run, self.run.sites[i], r)
            out[i] = guarded([net], [opt], lambda net=net, opt=opt, b=batches: train_whole(
                net, opt, b, self.run.loss_fn, self.run.config.clip_grad))
            if out[i]["status"] == "ok":  # a site whose update broke sends nothing back
                received[i] = upload(wire, net)
            out[i].update(bytes_up=wire.bytes_up - up0, bytes_down=wire.bytes_down - down0)
        if received:
            average_states_into([self.net], list(received.values()),
                                [self.run.sites[i].n_train for i in received])
        return out

    def model_for(self, site):
        return self.net

    def modules(self):
        return {"net": self.net, **{f"net{i}": n for i, n in enumerate(self.nets)}}

    def optimizers(self):
        return {f"opt{i}": o for i, o in enumerate(self.opts)}
