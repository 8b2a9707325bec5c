"""Raw logs from a world: simulate today's practice over a population and write the
coworking source format (``events.csv``, ``contacts.csv``, ``identities.csv``,
``customers.csv``) plus ``truth.json``, the ground truth ingestion is checked against.

:func:`simulate` runs the world week by week for all customers at once (arrivals included) under
the behaviour policy of :mod:`journeyopt.sim.behaviour`; :func:`generate_logs` renders the
records as raw tables with the configured mess (:mod:`journeyopt.sim.render`); :func:`write_logs`
writes them. ``journeyopt-generate`` is a thin shell over these.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
from numpy.typing import NDArray

from journeyopt.outputs import staged_output_dir
from journeyopt.panel.state import CustomerState, advance, state_features
from journeyopt.panel.weeks import week_of_year
from journeyopt.sim.behaviour import contact_rules, explore
from journeyopt.sim.config import GenerateConfig
from journeyopt.sim.discrete import summarise
from journeyopt.sim.dynamics import WeekOutcome, sample_outcome
from journeyopt.sim.population import (
    Customers,
    Events,
    concat_states,
    draw_customers,
    event_kinds,
    initial_population,
)
from journeyopt.sim.render import RawTables, Truth, render_tables
from journeyopt.sim.world import WorldSpec

IntArray = NDArray[np.int64]
Float = NDArray[np.float64]

LOG_FILES: tuple[str, ...] = (
    "events.csv",
    "contacts.csv",
    "identities.csv",
    "customers.csv",
    "truth.json",
)


class Decisions(NamedTuple):
    """The behaviour policy's decisions, each (M,): one per present customer-week (or one
    per contact when ``none`` decisions are not logged).

    Attributes:
        customer: Customer row index.
        week: Week index.
        action: Action index into ``world.actions.names``.
        propensity: Probability that the behaviour policy chose that action.
    """

    customer: IntArray
    week: IntArray
    action: IntArray
    propensity: Float


@dataclass(frozen=True)
class Simulation:
    """The clean record of one simulated history.

    Attributes:
        customers: Static attributes of the ``N`` customers.
        events: Every event, past ones (weeks < 0) included.
        decisions: The behaviour policy's decisions.
        reward: (N,) total undiscounted reward of each customer over the logged weeks,
            currency.
        final_state: The customers' state at the end of the last week.
        origin: Monday 00:00 UTC of week 0.
        weeks: Number of logged weeks.
    """

    customers: Customers
    events: Events
    decisions: Decisions
    reward: Float
    final_state: CustomerState
    origin: pd.Timestamp
    weeks: int


def week_events(
    world: WorldSpec, t: int, out: WeekOutcome, arrivals: IntArray | None = None
) -> Events:
    """One week's events: conversions (with their value), engagements (kind and channel by
    the action that produced them; ``none``: an inquiry), opt-outs (``unsubscribe`` on the
    contacted channel) and the ``arrival`` engagement of the customers in ``arrivals``."""
    kinds = event_kinds(world)
    p = world.params
    source_kind = np.array(
        [
            kinds.index(world.engagement_kinds["inquiry" if a == "none" else a])
            for a in world.actions.names
        ]
    )
    conv = np.flatnonzero(out.converted)
    eng = np.flatnonzero(out.engaged)
    opt = np.flatnonzero(out.opted_out)
    new = np.empty(0, np.int64) if arrivals is None else np.asarray(arrivals, np.int64)
    return Events(
        customer=np.concatenate([conv, eng, opt, new]),
        week=np.full(conv.size + eng.size + opt.size + new.size, t, np.int64),
        kind=np.concatenate(
            [
                out.kind[conv],
                source_kind[out.engagement_source[eng]],
                np.full(opt.size, kinds.index("unsubscribe")),
                np.full(new.size, kinds.index(world.engagement_kinds["arrival"])),
            ]
        ).astype(np.int64),
        channel=np.concatenate(
            [
                np.full(conv.size, -1),
                p.channel[out.engagement_source[eng]],
                p.channel[out.actions[opt]],
                np.full(new.size, -1),
            ]
        ).astype(np.int64),
        value=np.concatenate([out.paid[conv], np.zeros(eng.size + opt.size + new.size)]),
    )


def simulate(world: WorldSpec, cfg: GenerateConfig, rng: np.random.Generator) -> Simulation:
    """Run the world for ``cfg.weeks`` weeks over ``cfg.n_customers`` customers.

    ``round(initial_share * n_customers)`` customers exist at the start (see
    :func:`~journeyopt.sim.population.initial_population`); the others arrive as prospects in
    uniformly drawn weeks, with an ``arrival`` engagement event, and are contacted from the
    following week on.
    """
    origin = cfg.start
    n0 = round(cfg.initial_share * cfg.n_customers)
    n1 = cfg.n_customers - n0
    state0, customers0, past = initial_population(world, n0, rng)
    arrival = np.sort(rng.integers(0, cfg.weeks, n1)).astype(np.int64)
    customers = Customers.concat([customers0, draw_customers(world, n1, arrival, rng)])
    state = concat_states([state0, CustomerState.new(world.features, 0, arrival)])
    arrives = np.concatenate([np.full(n0, -1, np.int64), arrival])

    rules = contact_rules(world)
    practice = cfg.staff.to_practice().check(world, "staff")
    woy = week_of_year(origin, np.arange(cfg.weeks))
    reward = np.zeros(cfg.n_customers)
    events: list[Events] = [past]
    decisions: list[Decisions] = []
    for t in range(cfg.weeks):
        features = state_features(state, world.features)
        present = arrives < t
        staff = practice.actions(world, features, customers.segment, t)
        actions, propensity = explore(staff, rules.masks(features), cfg.exploration, rng)
        actions = np.where(present, actions, 0)
        summary = summarise(features, customers.segment, world)
        out = sample_outcome(world, summary, actions, int(woy[t]), rng, active=present)
        arriving = arrives == t
        reward += out.reward

        logged = present if cfg.log_none_decisions else present & (actions != 0)
        rows = np.flatnonzero(logged)
        decisions.append(
            Decisions(rows, np.full(rows.shape[0], t), actions[rows], propensity[rows])
        )
        events.append(week_events(world, t, out, np.flatnonzero(arriving)))
        activity = replace(
            out.activity, engagements=out.activity.engagements + arriving.astype(np.int32)
        )
        state = advance(state, activity)
    return Simulation(
        customers=customers,
        events=Events.concat(events),
        decisions=Decisions(*(np.concatenate(x) for x in zip(*decisions, strict=True))),
        reward=reward,
        final_state=state,
        origin=origin,
        weeks=cfg.weeks,
    )


@dataclass(frozen=True)
class GeneratedLogs:
    """Raw logs in the coworking source format, their ground truth and the clean record.

    Attributes:
        tables: The raw tables (all columns strings, as written).
        truth: What ingestion should recover (persons per raw reference, injected mess).
        simulation: The clean simulated record behind the logs.
    """

    tables: RawTables
    truth: Truth
    simulation: Simulation


def generate_logs(world: WorldSpec, cfg: GenerateConfig, rng: np.random.Generator) -> GeneratedLogs:
    """Simulate ``world`` under today's practice and render raw logs with ``cfg.mess``."""
    sim = simulate(world, cfg, rng)
    tables, truth = render_tables(world, sim, cfg, rng)
    return GeneratedLogs(tables=tables, truth=truth, simulation=sim)


def _write_csv(table: pa.Table, path: Path) -> None:
    pacsv.write_csv(table, path, write_options=pacsv.WriteOptions(quoting_style="needed"))


def write_logs(logs: GeneratedLogs, output_dir: Path | str, overwrite: bool = False) -> Path:
    """Write ``events.csv``, ``contacts.csv``, ``identities.csv``, ``customers.csv`` and
    ``truth.json`` into ``output_dir``; refuses a non-empty folder unless ``overwrite``."""
    with staged_output_dir(output_dir, overwrite) as out:
        _write_csv(logs.tables.events, out / "events.csv")
        _write_csv(logs.tables.contacts, out / "contacts.csv")
        _write_csv(logs.tables.identities, out / "identities.csv")
        _write_csv(logs.tables.customers, out / "customers.csv")
        truth: dict[str, Any] = logs.truth.to_dict()
        (out / "truth.json").write_text(json.dumps(truth, indent=2, sort_keys=True) + "\n")
    return Path(output_dir)
