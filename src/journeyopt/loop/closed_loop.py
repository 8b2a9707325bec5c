"""The closed loop: a ground-truth world lives through the weeks the served policy decides.

A history under today's staff rules (:func:`journeyopt.sim.logs.simulate`) starts the loop.
Each following week :meth:`ClosedLoop.step` scores every customer with the serving
:class:`~journeyopt.serving.scorer.Scorer` (the champion for treatment, the staff rules for the
control group chosen by the holdout hash, guards), records the decision log rows, and draws
the week's outcomes from the world in force (a :class:`~journeyopt.sim.regime.RegimeChange`
may change it). :meth:`ClosedLoop.write` renders everything so far as raw coworking logs
(stable customer references ``P000000``...) and the week's decision-log file, which the weekly
cycle then reads like a production system's.

The loop also keeps what only a simulation knows (:class:`WeekTruth`): each group's realised
reward, and — through its counterfactual twin (:mod:`journeyopt.loop.twin`: the same customers
under the control policy from the first served week on, with common random numbers) — the true
intent-to-treat uplift the cycle's uplift step estimates.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
from numpy.typing import NDArray

from journeyopt.agents.baselines import expected_rewards
from journeyopt.agents.policy import Observation
from journeyopt.errors import JourneyoptError
from journeyopt.loop.config import CycleConfig
from journeyopt.loop.cycle import CycleResult, current_champion, run_cycle
from journeyopt.loop.twin import (
    CounterfactualTwin,
    TwinPolicy,
    common_draws,
    control_actions,
    staff_control,
)
from journeyopt.panel.state import CustomerState, advance, state_features
from journeyopt.serving.config import ServingConfig
from journeyopt.serving.decisions import decision_frame, write_decisions
from journeyopt.serving.scorer import CustomerBatch, Scorer
from journeyopt.serving.served_model import load_served_model
from journeyopt.sim.config import GenerateConfig
from journeyopt.sim.discrete import summarise
from journeyopt.sim.dynamics import sample_outcome
from journeyopt.sim.logs import (
    Decisions,
    GeneratedLogs,
    Simulation,
    simulate,
    week_events,
    write_logs,
)
from journeyopt.sim.population import Events
from journeyopt.sim.practice import Practice
from journeyopt.sim.regime import RegimeChange, changed_world, world_in_week
from journeyopt.sim.render import RawTables, render_tables
from journeyopt.sim.world import WorldSpec, load_world
from journeyopt.tracking.registry import CHAMPION, PolicyRegistry
from journeyopt.tracking.rollout import read_rollout

Float = NDArray[np.float64]


@dataclass(frozen=True)
class WeekTruth:
    """What the world knows about one served week.

    Attributes:
        week: Monday of the week (``YYYY-MM-DD``).
        loop_week: Week index of the closed loop (0 = first served week).
        regime: ``before`` or ``after`` the regime change.
        treatment_reward: Mean realised reward per treatment customer, currency.
        control_reward: Mean realised reward per control customer, currency.
        twin_treatment_reward: Mean reward per treatment customer in the twin (what they
            would have earned under the twin's policy, by default the control path since the
            first served week), currency.
        true_itt_uplift: ``treatment_reward - twin_treatment_reward``: the week's true
            intent-to-treat uplift per treatment customer, carry-over effects included,
            currency.
        control_twin_gap: Mean realised minus twin reward per control customer: exactly 0
            when the twin follows the control path (the control group lives the same life in
            both), a check of the common random numbers.
        one_week_effect: Mean over treatment customers of the expected reward of the served
            action minus that of the staff rules' action this week, in the world in force,
            currency (the myopic effect; carry-over effects are not in it).
        contacts: Share of customers contacted.
    """

    week: str
    loop_week: int
    regime: str
    treatment_reward: float
    control_reward: float
    twin_treatment_reward: float
    true_itt_uplift: float
    control_twin_gap: float
    one_week_effect: float
    contacts: float


class ClosedLoop:
    """A population of a ground-truth world, served week by week.

    Args:
        world: The ground-truth world (before any change).
        change: The regime change, or None.
        history: How the history under the staff rules is generated (customers, weeks,
            start date, exploration; ``mess`` should be off).
        seed: Seed of the history and of every served week.
    """

    def __init__(
        self,
        world: WorldSpec,
        change: RegimeChange | None,
        history: GenerateConfig,
        seed: int,
    ) -> None:
        self.world = world
        self.change = change
        self.changed = changed_world(world, change) if change is not None else world
        self.history_cfg = history
        self.rng = np.random.default_rng(seed)
        sim = simulate(world, history, self.rng)
        self.customers = sim.customers
        self.state: CustomerState = sim.final_state
        self.events: list[Events] = [sim.events]
        self.decisions: list[Decisions] = [sim.decisions]
        self.origin: pd.Timestamp = sim.origin
        self.week: int = sim.weeks
        self.truth: list[WeekTruth] = []
        self.customer_ids = np.array([f"P{i:06d}" for i in range(sim.customers.n)], dtype=object)
        self.twin = CounterfactualTwin(sim.final_state, sim.customers.segment)
        self._pending: pd.DataFrame | None = None
        n = sim.customers.n
        self.last_gap: Float = np.zeros(n)
        """(N,) last served week's realised minus twin reward per customer, currency."""
        self.last_arm: NDArray[np.int8] = np.zeros(n, np.int8)
        """(N,) last served week's rollout arm per customer (index into
        :data:`journeyopt.serving.rollout.ARMS`)."""

    @property
    def loop_week(self) -> int:
        """Index of the next served week (0 = the first after the history)."""
        return self.week - self.history_cfg.weeks

    @property
    def monday(self) -> pd.Timestamp:
        """Monday 00:00 UTC of the next week."""
        return self.origin + pd.Timedelta(weeks=self.week)

    def world_now(self) -> WorldSpec:
        """The true world of the next week."""
        return world_in_week(self.world, self.changed, self.change, self.loop_week)

    def step(self, scorer: Scorer, twin_policy: TwinPolicy | None = None) -> WeekTruth:
        """Serve the next week with ``scorer``, draw its outcomes, and live the same week in
        the counterfactual twin decided by ``twin_policy`` (default: ``scorer``'s control
        path for every customer, :func:`~journeyopt.loop.twin.staff_control`) with the same
        random numbers."""
        truth_world = self.world_now()
        features = state_features(self.state, self.world.features)
        names = scorer.world.segment_names
        truth_names = np.array(self.world.segment_names)[self.customers.segment]
        segment = np.array([names.index(s) if s in names else -1 for s in truth_names])
        batch = CustomerBatch(
            self.customer_ids, features, segment.astype(np.int64), segment >= 0, self.monday
        )
        decided = scorer.score(batch)
        self._pending = decision_frame(
            decided,
            scorer.action_names,
            scorer.channels,
            scorer.model.name,
            scorer.model.version,
        )
        actions = decided.actions
        woy = decided.week_of_year
        twin_draws = common_draws(self.rng)
        summary = summarise(features, self.customers.segment, truth_world)
        out = sample_outcome(truth_world, summary, actions, woy, self.rng)
        policy = twin_policy if twin_policy is not None else staff_control(scorer)
        _, twin_reward = self.twin.live_week(truth_world, batch, policy, woy, twin_draws)
        t = self.week
        self.events.append(week_events(truth_world, t, out))
        rows = np.arange(actions.shape[0])
        self.decisions.append(
            Decisions(rows, np.full(rows.shape[0], t), actions, decided.propensity)
        )
        self.state = advance(self.state, out.activity)
        practice = scorer.staff.practice  # what the holdout's practice would have done
        staff = (
            practice.actions(
                truth_world, features, self.customers.segment, scorer.staff_week(self.monday)
            )
            if isinstance(practice, Practice)
            else control_actions(scorer, batch)  # estimated from the logs: its drawn action
        )
        effect = self._one_week_effect(truth_world, features, actions, staff)
        self.last_gap = out.reward - twin_reward
        if decided.arm is not None:
            self.last_arm = decided.arm
        truth = self._truth(truth_world, decided.control, out.reward, twin_reward, effect)
        self.truth.append(truth)
        self.week += 1
        return truth

    def _one_week_effect(
        self,
        world: WorldSpec,
        features: dict[str, NDArray[np.generic]],
        actions: NDArray[np.int64],
        staff: NDArray[np.int64],
    ) -> Float:
        """(N,) expected reward this week of the served minus the staff rules' action."""
        week_of_year = int(self.monday.isocalendar().week)
        observation = Observation(features, self.customers.segment, week_of_year, self.week)
        rewards = expected_rewards(world, observation)
        n = np.arange(actions.shape[0])
        return rewards[n, actions] - rewards[n, staff]

    def _truth(
        self,
        world: WorldSpec,
        control: NDArray[np.bool_],
        reward: Float,
        twin_reward: Float,
        effect: Float,
    ) -> WeekTruth:
        """The week's truth from (N,) groups, realised and twin rewards and one-week
        effects."""
        treated = ~control
        nan = float("nan")
        gap = reward - twin_reward
        return WeekTruth(
            week=self.monday.strftime("%Y-%m-%d"),
            loop_week=self.loop_week,
            regime="after" if world is self.changed and self.change is not None else "before",
            treatment_reward=float(reward[treated].mean()),
            control_reward=float(reward[control].mean()) if control.any() else nan,
            twin_treatment_reward=float(twin_reward[treated].mean()),
            true_itt_uplift=float(gap[treated].mean()),
            control_twin_gap=float(gap[control].mean()) if control.any() else nan,
            one_week_effect=float(effect[treated].mean()),
            contacts=float((self.decisions[-1].action != 0).mean()),
        )

    def simulation(self) -> Simulation:
        """Everything so far as one simulated record (history and served weeks)."""
        return Simulation(
            customers=self.customers,
            events=Events.concat(self.events),
            decisions=Decisions(*(np.concatenate(x) for x in zip(*self.decisions, strict=True))),
            reward=np.zeros(self.customers.n),
            final_state=self.state,
            origin=self.origin,
            weeks=self.week,
        )

    def write(self, logs_dir: str, decisions_dir: str) -> None:
        """Render the raw logs of every week so far into ``logs_dir`` (replaced) and append
        the last served week's decision-log file ``decisions-<week>.csv`` to
        ``decisions_dir``."""
        cfg = replace(self.history_cfg, weeks=self.week)
        sim = self.simulation()
        tables, truth = render_tables(self.world, sim, cfg, np.random.default_rng(self.week))
        stable = {ref: f"P{person:06d}" for ref, person in truth.person_of_ref.items()}
        tables = RawTables(
            *(_stable_refs(getattr(tables, f.name), stable) for f in fields(RawTables))
        )
        write_logs(GeneratedLogs(tables, truth, sim), logs_dir, overwrite=True)
        if self._pending is not None:
            folder = Path(decisions_dir)
            folder.mkdir(parents=True, exist_ok=True)
            last = self.origin + pd.Timedelta(weeks=self.week - 1)
            write_decisions(self._pending, folder / f"decisions-{last.strftime('%Y-%m-%d')}.csv")
            self._pending = None


def _stable_refs(table: pa.Table, stable: dict[str, str]) -> pa.Table:
    """``table`` with its ``customer_ref`` column mapped to the stable references."""
    refs = table.column("customer_ref").to_pylist()
    mapped = pa.array([stable.get(r, r) for r in refs], pa.string())
    return table.set_column(table.schema.get_field_index("customer_ref"), "customer_ref", mapped)


@dataclass(frozen=True)
class LoopWeek:
    """One served week of :func:`run_closed_loop` and the cycle that followed it.

    Attributes:
        truth: What the world knows about the week.
        champion: The version that served it.
        cycle: The cycle run after it (None when the loop does not adapt).
    """

    truth: WeekTruth
    champion: str
    cycle: CycleResult | None


def champion_scorer(registry: PolicyRegistry, cfg: CycleConfig, serving: ServingConfig) -> Scorer:
    """The serving scorer of the current champion (``models:/<name>@champion``: during a
    staged rollout's canary with the previous version beside it), over the world it was
    trained in.

    Raises:
        JourneyoptError: No champion (run a first cycle).
    """
    champion = current_champion(registry)
    if champion.version is None:
        raise JourneyoptError("no champion to serve: the first cycle promoted no policy")
    model = load_served_model(f"models:/{registry.name}@{CHAMPION}", cfg.tracking)
    return Scorer(model, serving, world=load_world(champion.world))


def run_closed_loop(
    loop: ClosedLoop,
    cfg: CycleConfig,
    serving: ServingConfig,
    weeks: int,
    root: Path,
    *,
    adapt: bool = True,
) -> list[LoopWeek]:
    """Serve ``weeks`` weeks; after each, write the logs and (with ``adapt``) run the cycle.

    ``root/logs`` holds the raw logs and ``root/decisions`` the decision log (both read by
    the cycle through ``cfg.data.path`` and ``cfg.decisions``, which are set here), and
    ``root/cycles`` the cycles' folders. Without ``adapt`` the champion at the start serves
    every week (the same world without adaptation).
    """
    registry = PolicyRegistry(cfg.tracking)
    logs, decisions = root / "logs", root / "decisions"
    cfg = replace(cfg, data=replace(cfg.data, path=str(logs)), decisions=str(decisions),
                  work_dir=str(root / "cycles"), serve=serving)  # fmt: skip
    served: list[LoopWeek] = []
    scorer = champion_scorer(registry, cfg, serving)
    for _ in range(weeks):
        truth = loop.step(scorer)
        loop.write(str(logs), str(decisions))
        version = scorer.model.version
        result = None
        if adapt:
            result = run_cycle(replace(cfg, week=loop.monday.strftime("%Y-%m-%d")))
            rollout = read_rollout(registry)  # a new champion, a widening or a rollback
            if rollout is not None and rollout.key != scorer.model.key:
                scorer = champion_scorer(registry, cfg, serving)
        served.append(LoopWeek(truth, version, result))
    return served
