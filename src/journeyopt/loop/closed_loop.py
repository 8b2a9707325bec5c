"""The closed loop: a ground-truth world lives through the weeks the served policy decides.

The loop takes any ground-truth world behind :class:`~journeyopt.loop.truth.TruthWorld` (the
coworking world, possibly with a regime change; the roastery). Its history under today's
practice starts the loop. Each following week :meth:`ClosedLoop.step` scores every customer
with the serving :class:`~journeyopt.serving.scorer.Scorer` (the champion for treatment,
today's practice for the control group chosen by the holdout hash, guards), records the
decision log rows, and draws the week's outcomes from the world. :meth:`ClosedLoop.write`
renders everything so far as the world's raw logs (its own export format, stable customer ids)
and the week's decision-log file, which the weekly cycle then reads like a production system's.

The loop also keeps what only a simulation knows (:class:`WeekTruth`): each group's realised
reward, and — through its counterfactual twin (:mod:`journeyopt.loop.twin`: the same customers
under the control policy from the first served week on, with common random numbers) — the true
intent-to-treat uplift the cycle's uplift step estimates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from journeyopt.errors import JourneyoptError
from journeyopt.loop.config import CycleConfig
from journeyopt.loop.cycle import CycleResult, current_champion, run_cycle
from journeyopt.loop.truth import TruthWorld
from journeyopt.loop.twin import (
    CounterfactualTwin,
    TwinPolicy,
    common_draws,
    control_actions,
    staff_control,
)
from journeyopt.serving.config import ServingConfig
from journeyopt.serving.decisions import decision_frame, write_decisions
from journeyopt.serving.scorer import CustomerBatch, Scorer
from journeyopt.serving.served_model import load_served_model
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
        world: The ground-truth world (:class:`~journeyopt.loop.truth.TruthWorld`: the
            coworking world, possibly changing, or the roastery); its history under today's
            practice is simulated here.
        seed: Seed of the history and of every served week.
    """

    def __init__(self, world: TruthWorld[Any], seed: int) -> None:
        self.world = world
        self.rng = np.random.default_rng(seed)
        self.state, self.week = world.history(self.rng)
        self.history_weeks: int = self.week
        self.origin: pd.Timestamp = world.origin
        self.truth: list[WeekTruth] = []
        self.customer_ids: NDArray[np.object_] = world.customer_ids
        self.twin = CounterfactualTwin(world, self.state)
        self._pending: pd.DataFrame | None = None
        n = self.customer_ids.shape[0]
        self.last_gap: Float = np.zeros(n)
        """(N,) last served week's realised minus twin reward per customer, currency."""
        self.last_arm: NDArray[np.int8] = np.zeros(n, np.int8)
        """(N,) last served week's rollout arm per customer (index into
        :data:`journeyopt.serving.rollout.ARMS`)."""

    @property
    def loop_week(self) -> int:
        """Index of the next served week (0 = the first after the history)."""
        return self.week - self.history_weeks

    @property
    def monday(self) -> pd.Timestamp:
        """Monday 00:00 UTC of the next week."""
        return self.origin + pd.Timedelta(weeks=self.week)

    def world_now(self) -> WorldSpec:
        """The world of the next week as serving sees it (for the coworking world: the true
        world in force)."""
        return self.world.serving_world(self.loop_week)

    def batch(self, scorer: Scorer) -> CustomerBatch:
        """The customers as ``scorer`` sees them at the start of the next week: their type
        labels, or for a scorer's world whose segments are value tiers or behaviour types
        (:meth:`~journeyopt.sim.world.WorldSpec.segment_labels`) each customer's tier or type
        read from their state, as the scorer computes it from the logs (labels the scorer's
        world does not know: unknown customers)."""
        features = self.world.features(self.state)
        labels = self.world.segment_labels
        read = scorer.world.segment_labels(features)  # value tiers or behaviour types
        if read is not None:
            labels = read.astype(object)
        segment = segment_index(labels, scorer.world.segment_names)
        return CustomerBatch(self.customer_ids, features, segment, segment >= 0, self.monday)

    def step(self, scorer: Scorer, twin_policy: TwinPolicy | None = None) -> WeekTruth:
        """Serve the next week with ``scorer``, draw its outcomes, and live the same week in
        the counterfactual twin decided by ``twin_policy`` (default: ``scorer``'s control
        path for every customer, :func:`~journeyopt.loop.twin.staff_control`) with the same
        random numbers."""
        batch = self.batch(scorer)
        decided = scorer.score(batch)
        self._pending = decision_frame(
            decided,
            scorer.action_names,
            scorer.channels,
            scorer.model.name,
            scorer.model.version,
        )
        actions, woy, t = decided.actions, decided.week_of_year, self.week
        twin_draws = common_draws(self.rng)
        effect = self._one_week_effect(scorer, batch, actions, woy)
        served = self.world.serve(self.state, actions, decided.propensity, t, woy, self.rng)
        policy = twin_policy if twin_policy is not None else staff_control(scorer)
        _, twin_reward = self.twin.live_week(batch, policy, t, woy, twin_draws)
        self.state = served.state
        self.last_gap = served.reward - twin_reward
        if decided.arm is not None:
            self.last_arm = decided.arm
        truth = self._truth(decided.control, actions, served.reward, twin_reward, effect)
        self.truth.append(truth)
        self.week += 1
        return truth

    def _one_week_effect(
        self, scorer: Scorer, batch: CustomerBatch, actions: NDArray[np.int64], woy: int
    ) -> Float:
        """(N,) true expected reward this week of the served minus today's practice's action
        (what the holdout's practice would have done: the scorer's control path, under the
        served contact rules and on the scorer's customer types, as the twin decides)."""
        staff = control_actions(scorer, batch)
        rewards = self.world.expected_rewards(self.state, self.week, woy)
        n = np.arange(actions.shape[0])
        return rewards[n, actions] - rewards[n, staff]

    def _truth(
        self,
        control: NDArray[np.bool_],
        actions: NDArray[np.int64],
        reward: Float,
        twin_reward: Float,
        effect: Float,
    ) -> WeekTruth:
        """The week's truth from (N,) groups, requested actions, realised and twin rewards
        and one-week effects."""
        treated = ~control
        nan = float("nan")
        gap = reward - twin_reward
        return WeekTruth(
            week=self.monday.strftime("%Y-%m-%d"),
            loop_week=self.loop_week,
            regime=self.world.regime(self.loop_week),
            treatment_reward=float(reward[treated].mean()),
            control_reward=float(reward[control].mean()) if control.any() else nan,
            twin_treatment_reward=float(twin_reward[treated].mean()),
            true_itt_uplift=float(gap[treated].mean()),
            control_twin_gap=float(gap[control].mean()) if control.any() else nan,
            one_week_effect=float(effect[treated].mean()),
            contacts=float((actions != 0).mean()),
        )

    def write(self, logs_dir: str, decisions_dir: str) -> None:
        """Render the raw logs of every week so far into ``logs_dir`` (replaced) and append
        the last served week's decision-log file ``decisions-<week>.csv`` to
        ``decisions_dir``."""
        self.world.write_logs(Path(logs_dir), self.week)
        if self._pending is not None:
            folder = Path(decisions_dir)
            folder.mkdir(parents=True, exist_ok=True)
            last = self.origin + pd.Timedelta(weeks=self.week - 1)
            write_decisions(self._pending, folder / f"decisions-{last.strftime('%Y-%m-%d')}.csv")
            self._pending = None


def segment_index(labels: NDArray[np.object_], names: Sequence[str]) -> NDArray[np.int64]:
    """(N,) index of each type label in ``names``; -1 for a label not among them."""
    position = {name: i for i, name in enumerate(names)}
    return np.array([position.get(str(label), -1) for label in labels], np.int64)


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
