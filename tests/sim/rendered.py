"""The simulator's own customer states beside the panel's states from its rendered raw logs:
what every "the panel equals the simulator" test compares."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from omegaconf import OmegaConf

from journeyopt.cli.entry import to_object
from journeyopt.data.ingest import ingest_to_logs
from journeyopt.data.schema import CanonicalLogs
from journeyopt.data.source import SourceConfig
from journeyopt.panel.build import state_at
from journeyopt.panel.config import PanelConfig
from journeyopt.panel.state import CustomerState
from journeyopt.sim.config import GenerateConfig, shipped_practice
from journeyopt.sim.logs import generate_logs, write_logs
from journeyopt.sim.world import WORLDS_DIR, WorldSpec

COWORKING_SOURCE = WORLDS_DIR.parent / "configs" / "data" / "coworking.yaml"


@dataclass(frozen=True)
class RenderedStates:
    """Both states of the same customers at ``as_of`` (rows in the panel's order).

    Attributes:
        ids: (N,) the panel's customer ids.
        panel: The state the panel builds from the rendered, ingested logs.
        simulator: The simulator's own final state of the same customers.
        segment: (N,) the customers' segment indices.
        canonical: The ingested logs (for the scoring API's features).
        as_of: The Monday after the simulated weeks.
    """

    ids: NDArray[np.object_]
    panel: CustomerState
    simulator: CustomerState
    segment: NDArray[np.int64]
    canonical: CanonicalLogs
    as_of: pd.Timestamp


def rendered_states(
    world: WorldSpec, folder: Path, panel_cfg: PanelConfig, weeks: int
) -> RenderedStates:
    """Simulate 250 customers of the coworking-format ``world`` for ``weeks`` weeks under
    today's practice (seed 5), write its raw logs into ``folder``, ingest them with the
    coworking source config and build the panel's state at the end."""
    cfg = GenerateConfig(
        output_dir=str(folder),
        n_customers=250,
        weeks=weeks,
        seed=5,
        staff=shipped_practice("coworking"),
    )
    logs = generate_logs(world, cfg, np.random.default_rng(cfg.seed))
    write_logs(logs, folder)
    source = to_object(OmegaConf.load(COWORKING_SOURCE), SourceConfig)
    canonical, _ = ingest_to_logs(replace(source, path=str(folder)))
    as_of = cfg.start + pd.Timedelta(weeks=cfg.weeks)
    ids, panel_state = state_at(canonical, panel_cfg, world.channels, as_of)
    person = np.array([logs.truth.person_of_ref[str(i)] for i in ids])  # type: ignore[attr-defined]
    return RenderedStates(
        ids=ids,
        panel=panel_state,
        simulator=logs.simulation.final_state.take(person),  # type: ignore[attr-defined]
        segment=logs.simulation.customers.segment[person],  # type: ignore[attr-defined]
        canonical=canonical,
        as_of=as_of,
    )
