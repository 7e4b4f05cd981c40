"""SFLv2 (Thapa et al., AAAI 2022): one shared server part, the sites take turns.

Each round every site starts from the global client part, trains its local epochs with
the one server part (which is updated batch by batch, site after site, in a random
order drawn per round), and at the end of the round the client parts are FedAvg-ed,
weighted by the number of training images.
"""

from __future__ import annotations

import copy

import numpy as np

from ..aggregation import fedavg
from .base import Strategy, site_batches, train_split


class SFLv2(Strategy):
    name = "sflv2"

    def __init__(self, run):
        super().__init__(run)
        self.split = run.split
        self.global_client = self.split.client_part(run.net)
        self.server = self.split.server_part(run.net)
        self.clients = [copy.deepcopy(self.global_client) for _ in run.sites]
        self.opt_clients = [run.make_optimizer(c.parameters()) for c in self.clients]
        self.opt_server = run.make_optimizer(self.server.parameters())

    def site_order(self, r: int) -> list[int]:
        rng = np.random.default_rng([self.run.config.seed, r, 7])
        return [int(i) for i in rng.permutation(len(self.run.sites))]

    def train_round(self, r: int) -> dict[int, dict]:
        out = {}
        for i in self.site_order(r):
            site = self.run.sites[i]
            out[i] = train_split(self.split, self.clients[i], self.server, self.opt_clients[i],
                                 self.opt_server, site_batches(self.run, site, r),
                                 self.run.loss_fn, self.run.wire)
        avg = fedavg([c.state_dict() for c in self.clients],
                     [s.n_train for s in self.run.sites])
        self.global_client.load_state_dict(avg)
        for c in self.clients:
            c.load_state_dict(avg)
        return out

    def model_for(self, site: int):
        return self.run.net  # global client stages + the server stages

    def state_dict(self) -> dict:
        return {"net": self.run.net.state_dict(),
                "clients": [c.state_dict() for c in self.clients],
                "opt_clients": [o.state_dict() for o in self.opt_clients],
                "opt_server": self.opt_server.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.run.net.load_state_dict(state["net"])
        for c, o, sc, so in zip(self.clients, self.opt_clients, state["clients"],
                                state["opt_clients"]):
            c.load_state_dict(sc)
            o.load_state_dict(so)
        self.opt_server.load_state_dict(state["opt_server"])
