"""Policy-value fidelity against a known ground truth: do the calibrated world and the true
world rank and value contact policies alike, and is the calibrated world's optimum good in
the true world?

Every policy is simulated in both worlds on the same customers with common random numbers (the
same world seed in both worlds, the same policy seed for every policy), by
:func:`journeyopt.evaluation.simulate.simulate_policy`. The customers are the calibrated world's
starting population (the logs' customers at the as-of date as the panel sees them, plus
arrivals: the truth's own customers at the end of its logs) when it has one and the two worlds
share their state features; else a draw of the true world's synthetic initial population
(:func:`journeyopt.sim.population.starting_population` of the chosen world).

- ``mare``: mean over the policies of ``|V_cal - V_true| / |V_true|``;
- ``spearman``: rank correlation of the policy values in the two worlds;
- ``sim_to_real``: the calibrated world's exact DP optimum (planned as the product plans it:
  pessimistic about the ensemble's disagreement, ``calibration.pessimism``), evaluated exactly
  in the true world
  (:func:`journeyopt.sim.optimum.evaluate_table_policy` on the customers' initial states), as a
  share of the true optimum's value (exact DP values, not simulated).

Every policy is masked by the contact ``rules`` the policies are served under (the
calibration's ``rules``; default none: opt-outs and the actions a world cannot value) in both
worlds, and both optima plan under them (``solve_optimum(..., rules=)``); ``sim_to_real`` is
NaN when a summary cannot evaluate one of them (no exact value then).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy.stats import spearmanr

from journeyopt.agents.baselines import (
    MyopicPolicy,
    NoContact,
    OptimumPolicy,
    StaffPolicy,
    UniformRandom,
)
from journeyopt.agents.policy import Bool, Float, IntArray, Observation, Policy, one_hot
from journeyopt.calibration.calibrated import CalibratedWorld, align_segments
from journeyopt.calibration.config import CalibrationConfig
from journeyopt.errors import ConfigError
from journeyopt.evaluation.simulate import CommonRandomNumbers, simulate_policy
from journeyopt.panel.state import state_features
from journeyopt.sim.config import RulesConfig
from journeyopt.sim.discrete import Summary, discrete_state
from journeyopt.sim.env import EpisodeClock
from journeyopt.sim.optimum import cyclic_weeks_of_year, evaluate_table_policy, solve_optimum
from journeyopt.sim.practice import LoggedPractice, Practice
from journeyopt.sim.rules import ContactRules
from journeyopt.sim.world import WorldSpec


@dataclass(frozen=True)
class AlwaysAction:
    """Always the same action where the masks allow it, else ``none``.

    Attributes:
        action: Action index.
        name: Policy name (``always_<action>``).
    """

    action: int
    name: str

    def act(
        self, observation: Observation, masks: Bool, rng: np.random.Generator
    ) -> tuple[IntArray, Float]:
        allowed = masks[:, self.action]
        actions = np.where(allowed, self.action, 0).astype(np.int64)
        return actions, one_hot(actions, masks.shape[1])


@dataclass(frozen=True)
class PolicyFidelity:
    """Policy values in the true and the calibrated world.

    Attributes:
        table: One row per policy: ``policy``, ``true_value``, ``calibrated_value``
            (currency per customer, discounted), ``rel_error``, ``true_rank``,
            ``calibrated_rank``.
        mare: Mean absolute relative error over the policies.
        spearman: Spearman rank correlation of the values.
        sim_to_real: Exact true-world value of the calibrated optimum / true optimum.
        metrics: The three numbers under ``sim/`` for MLflow.
    """

    table: pd.DataFrame
    mare: float
    spearman: float
    sim_to_real: float
    metrics: dict[str, float]


def policies_to_compare(
    truth: WorldSpec,
    calibrated: WorldSpec,
    horizon: int,
    gamma: float,
    start: int,
    practice: Practice | LoggedPractice | None = None,
    rules: ContactRules | None = None,
) -> list[Policy]:
    """No contact, random, today's ``practice``, myopic (true model), the true optimum (under
    ``rules`` when given, for ``truth``) and every single-action policy."""
    woy = cyclic_weeks_of_year(start, horizon)
    optimum = solve_optimum(truth, horizon, gamma, woy, rules=rules)
    out: list[Policy] = [
        NoContact(),
        UniformRandom(),
        StaffPolicy(truth, practice or Practice()),
        MyopicPolicy(truth),
        OptimumPolicy(truth, optimum, name="true_optimum"),
    ]
    out += [AlwaysAction(a, f"always_{n}") for a, n in enumerate(truth.actions.names) if a > 0]
    return out


def check_truth(truth: WorldSpec, segments: Sequence[str], actions: Sequence[str]) -> None:
    """Refuse (before any fitting) a ground truth whose segment or action names are not the
    logs' (``calibration.truth_world`` must be the world the logs were generated from, under
    the same names; a renamed export needs a renamed copy of the world).

    Raises:
        ConfigError: The names differ; the message lists both.
    """
    if sorted(truth.segment_names) != sorted(segments):
        raise ConfigError(
            f"calibration.truth_world={truth.name}: its segments {list(truth.segment_names)} "
            f"are not the logs' segments {list(segments)}; the ground truth must use the logs' "
            f"names (or leave calibration.truth_world empty)"
        )
    if tuple(truth.actions.names) != tuple(actions):
        raise ConfigError(
            f"calibration.truth_world={truth.name}: its actions {list(truth.actions.names)} "
            f"are not the source's actions {list(actions)}"
        )


def policy_fidelity(
    truth: WorldSpec,
    calibrated: WorldSpec | CalibratedWorld,
    cfg: CalibrationConfig,
    rules: RulesConfig | None = None,
) -> PolicyFidelity:
    """Compare policy values in ``truth`` and ``calibrated`` (see the module docstring), under
    the contact ``rules`` the policies are served under (None: ``RulesConfig()``, opt-outs
    only). A :class:`CalibratedWorld`'s optimum is planned as the product plans it
    (:meth:`CalibratedWorld.optimum`: pessimistic about its members' disagreement); a bare
    world's plainly."""
    rules = rules if rules is not None else RulesConfig()
    planned = CalibratedWorld.of(calibrated)
    if truth.actions.names != planned.world.actions.names:
        raise ValueError("the calibrated world must have the true world's action catalogue")
    planned = planned.mapped(lambda world: align_segments(world, truth.segment_names))
    calibrated = planned.world
    # the truth's customers also count what the calibrated world's summary reads (its contact
    # pattern's window, the last contact's action): features only, the truth's dynamics are
    # unchanged, and both worlds then run on the same customer state
    truth = replace(truth, features=truth.features.counting(calibrated.features))
    # both worlds' states count what the rules read
    truth = rules.world_for(truth, "rules")
    planned = planned.mapped(lambda world: rules.world_for(world, "rules"))
    calibrated = planned.world
    true_rules, cal_rules = rules.for_world(truth, "rules"), rules.for_world(calibrated, "rules")
    horizon, gamma, start = cfg.policy_horizon_weeks, cfg.gamma, 1
    clock = EpisodeClock.of(horizon, start)
    common = CommonRandomNumbers.of(cfg.seed)
    own = calibrated.base is not None and calibrated.features == truth.features
    state, segment = common.customers(calibrated if own else truth, cfg.policy_customers, horizon)
    practice = cfg.staff.practice_for(truth, "calibration.staff")
    policies = policies_to_compare(truth, calibrated, horizon, gamma, start, practice, true_rules)
    rows = []
    for policy in policies:
        values = []
        for world, world_rules in ((truth, true_rules), (calibrated, cal_rules)):
            run = simulate_policy(
                world, policy, state, segment, clock, gamma, *common.generators(), world_rules
            )
            values.append(float(np.mean(run.value)))
        rows.append({"policy": policy.name, "true_value": values[0], "calibrated_value": values[1]})
    table = pd.DataFrame.from_records(rows)
    table["rel_error"] = (table["calibrated_value"] - table["true_value"]) / table[
        "true_value"
    ].abs()
    table["true_rank"] = table["true_value"].rank(ascending=False).astype(int)
    table["calibrated_rank"] = table["calibrated_value"].rank(ascending=False).astype(int)
    mare = float(table["rel_error"].abs().mean())
    spearman = float(spearmanr(table["true_value"], table["calibrated_value"]).statistic)
    ratio = sim_to_real(
        truth,
        planned,
        state_features(state, truth.features),
        segment,
        horizon,
        gamma,
        start,
        (true_rules, cal_rules),
    )
    return PolicyFidelity(
        table,
        mare,
        spearman,
        ratio,
        {
            "sim/policy_value_mare": mare,
            "sim/policy_value_spearman": spearman,
            "sim/sim_to_real_pct_of_optimum": 100.0 * ratio,
        },
    )


def sim_to_real(
    truth: WorldSpec,
    planned: CalibratedWorld,
    features: dict[str, NDArray[np.generic]],
    segment: IntArray,
    horizon: int,
    gamma: float,
    start: int,
    rules: tuple[ContactRules, ContactRules] | None = None,
) -> float:
    """Exact true-world value of the calibrated world's DP optimum (as the product plans it,
    :meth:`CalibratedWorld.optimum`) over the true optimum's, on the customers' initial
    discrete states (mean over customers); with ``rules`` (the served
    rules for the truth and for the calibrated world) both optima plan under them and the
    calibrated one is valued under the truth's guard.

    NaN when the calibrated summary keeps a component the truth's does not (a contact
    pattern, the last action, the gap between conversions): its optimum then acts on what
    the truth's summary does not track, so it has no exact value over the truth's states (the
    simulated comparison still values it); NaN too when a summary cannot evaluate one of
    ``rules``."""
    calibrated = planned.world
    mine, theirs = calibrated.discrete, truth.discrete
    if (
        mine.contact_pattern_weeks,
        mine.contact_pattern_by_channel,
        mine.last_action,
        mine.gap_cap_weeks,
        mine.gap_bin_weeks,
        mine.lasting_actions,
    ) != (
        theirs.contact_pattern_weeks,
        theirs.contact_pattern_by_channel,
        theirs.last_action,
        theirs.gap_cap_weeks,
        theirs.gap_bin_weeks,
        theirs.lasting_actions,
    ):
        return float("nan")
    woy = cyclic_weeks_of_year(start, horizon)
    true_rules, cal_rules = rules if rules is not None else (None, None)
    cal_opt = planned.optimum(horizon, gamma, woy, rules=cal_rules)
    true_opt = solve_optimum(truth, horizon, gamma, woy, rules=true_rules)
    if cal_opt.unseen_rules or true_opt.unseen_rules:
        return float("nan")

    def follow(states: Summary, t: int) -> IntArray:
        return cal_opt.actions[t, cal_opt.layout.encode(states)].astype(np.int64)

    values = evaluate_table_policy(truth, follow, gamma, woy, rules=true_rules)
    x = discrete_state(features, segment, truth)
    return float(np.mean(values[0, x]) / np.mean(true_opt.values[0, x]))
