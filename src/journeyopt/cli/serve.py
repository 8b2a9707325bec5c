"""``journeyopt-serve``: the scoring API behind uvicorn (thin shell over
:func:`journeyopt.serving.app.create_app`).

    journeyopt-serve model=models:/journey-policy@champion
    journeyopt-serve model=models:/journey-policy/3 port=8080 workers=2
    JOURNEYOPT_API_TOKEN=... journeyopt-serve serve.decision_log=decisions/
    journeyopt-serve --config-dir my_configs data=my_crm serve.world=work/world

``data=<source>`` names the source config whose ``event_roles`` turn the event names of raw
events in requests into roles (default: the demo's ``coworking``).

Without a bearer token (``JOURNEYOPT_API_TOKEN``, or the variable ``serve.token_env`` names)
every ``/v1`` route is open: the command says so in a WARNING line at start-up, and refuses to
listen on an address other than loopback unless ``serve.allow_unauthenticated=true``.

Every worker process builds the application from the validated configuration, passed to it in
the environment variable ``JOURNEYOPT_SERVE_CONFIG`` (JSON), and loads the model at start-up.
SIGTERM or Ctrl-C: uvicorn stops accepting connections, finishes the requests in flight and
exits.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
from dataclasses import asdict
from pathlib import Path

import uvicorn
from fastapi import FastAPI
from hydra.utils import to_absolute_path
from omegaconf import DictConfig, OmegaConf

from journeyopt.cli.entry import command, console, report_errors, to_object
from journeyopt.errors import ConfigError
from journeyopt.serving.app import create_app
from journeyopt.serving.config import ServeJobConfig, register_configs
from journeyopt.serving.scorer import Scorer
from journeyopt.serving.served_model import alias_watcher, load_served_model

register_configs()
LOG = logging.getLogger("journeyopt.serve")
CONFIG_ENV = "JOURNEYOPT_SERVE_CONFIG"
WORKER_START_SECONDS = 300
"""How long a worker may take to load its model before uvicorn's supervisor gives up on it
(its default, 5 s, is shorter than importing torch and loading a model on a busy machine)."""


def app_from_env() -> FastAPI:
    """The application of the configuration in ``JOURNEYOPT_SERVE_CONFIG`` (uvicorn's
    factory in every worker)."""
    raw = os.environ.get(CONFIG_ENV)
    if not raw:
        raise RuntimeError(f"{CONFIG_ENV} is not set: start the API with journeyopt-serve")
    cfg = to_object(OmegaConf.create(json.loads(raw)), ServeJobConfig)
    return create_app(
        cfg.serve,
        lambda: load_served_model(cfg.model, cfg.tracking),
        watch=alias_watcher(cfg.model, cfg.tracking),
        source=cfg.data,
    )


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an interface to listen on) is reachable only from this machine."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve to any interface
        return False


def check_exposure(job: ServeJobConfig, token: str) -> None:
    """Without ``token``: refuse a non-loopback ``job.host`` unless
    ``serve.allow_unauthenticated``, and warn that every ``/v1`` route is open.

    Raises:
        ConfigError: The API would be open to the network without being allowed to.
    """
    if token:
        return
    variable = job.serve.token_env
    if not is_loopback(job.host) and not job.serve.allow_unauthenticated:
        raise ConfigError(
            f"refusing to serve on {job.host} without a bearer token: set {variable}, or "
            "listen on 127.0.0.1, or pass serve.allow_unauthenticated=true to open the API "
            "to anyone who can reach it"
        )
    LOG.warning(
        "%s is not set: no authentication, every /v1 route on %s:%d is open to anyone who "
        "can reach it",
        variable,
        job.host,
        job.port,
    )


def run(cfg: DictConfig) -> None:
    """Validate the config, check that the model loads and fits the world, its contact rules
    and staff rules (a cap or a customer type the world does not have stops here with one
    line), then serve until stopped."""
    job = to_object(cfg, ServeJobConfig)
    check_exposure(job, os.environ.get(job.serve.token_env, ""))
    if not job.model.startswith("models:/"):
        job.model = to_absolute_path(job.model)
    if job.serve.decision_log:
        job.serve.decision_log = to_absolute_path(job.serve.decision_log)
        Path(job.serve.decision_log).mkdir(parents=True, exist_ok=True)
    model = load_served_model(job.model, job.tracking)  # fail here, clearly, not in a worker
    scorer = Scorer(model, job.serve)  # the world, contact rules and staff rules, checked
    console().print(
        f"world {scorer.world.name!r}; contact rules: {scorer.rules.summary()}; event roles "
        f"from data source {job.data.name!r}"
    )
    console().print(
        f"serving {model.name} version {model.version} (sha256 {model.content_sha256[:12]}) "
        f"on http://{job.host}:{job.port} with {job.workers} worker(s); docs at /docs"
    )
    if model.previous is not None:
        console().print(
            f"staged rollout: version {model.version} on {model.canary_share:.0%} of the "
            f"treatment group (canary), version {model.previous.version} on the rest"
        )
    os.environ[CONFIG_ENV] = json.dumps(asdict(job))
    uvicorn.run(
        "journeyopt.cli.serve:app_from_env",
        factory=True,
        host=job.host,
        port=job.port,
        workers=job.workers,
        log_level="warning",
        access_log=False,
        timeout_worker_healthcheck=WORKER_START_SECONDS,
    )


@command("serve")
def main(cfg: DictConfig) -> None:
    """Entry point of ``journeyopt-serve``."""
    report_errors(lambda: run(cfg))


if __name__ == "__main__":
    main()
