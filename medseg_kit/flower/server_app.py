"""The ServerApp: what ``flwr run`` starts at the SuperLink.

Run config (``flower_app/pyproject.toml``, ``[tool.flwr.app.config]``; override with
``flwr run ... --run-config 'key=value ...'``):

* ``config``: path of a run's ``config.json`` (a :class:`~medseg_kit.federated.RunConfig`);
* ``out``: the run folder (``history.json``, ``checkpoint.pt``, ``config.json``);
* ``resume``: continue the run in ``out`` from its last checkpoint;
* ``min-sites``: stop when fewer sites are left;
* ``reply-timeout``: seconds to wait for a site's reply before it is dropped;
* ``wait-nodes``: seconds to wait for the SuperNodes to connect;
* ``message-log``: a folder to write every message's arrays into ("" = off);
* ``ping``: instead of training, time this many empty round trips to one site
  (``ping-torch``: the ClientApp imports PyTorch first) and write ``latency.json`` to
  ``out``.
"""

from __future__ import annotations

from flwr.app import Context
from flwr.serverapp import Grid, ServerApp

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    from ..federated.config import RunConfig
    from .server import Federation, TooFewSites

    cfg = context.run_config

    def say(text: str) -> None:
        print(f"[medseg-kit] {text}", flush=True)

    if int(cfg.get("ping", 0)):
        from .server import ping

        ping(grid, int(cfg["ping"]), bool(cfg.get("ping-torch", False)), str(cfg["out"]), say)
        return
    config = RunConfig.load(str(cfg["config"]))

    fed = Federation(grid, config, str(cfg["out"]), min_sites=int(cfg.get("min-sites", 1)),
                     timeout=float(cfg.get("reply-timeout", 300.0)),
                     wait_nodes=float(cfg.get("wait-nodes", 120.0)),
                     message_log=str(cfg.get("message-log", "")) or None, say=say)
    try:
        fed.serve(resume=bool(cfg.get("resume", False)))
    except TooFewSites as e:
        say(f"STOPPED: {e}")
        # raised, not sys.exit(): Flower marks the run failed at once (with this reason)
        # only for an Exception; a SystemExit left it running until its heartbeat expired
        raise
    finally:
        fed.write_exchanges()
    say(f"done: {cfg['out']}/history.json; {len(fed.messenger.exchanges)} round trips")
