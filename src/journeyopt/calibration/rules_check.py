"""The business's contact rules against the calibrated world's state summary.

Policies are trained, evaluated, planned and served under the business's contact rules
(``rules``: one :class:`~journeyopt.sim.config.RulesConfig` for every stage). The exact DP
optimum, and every value computed from it, sees a rule only when the world's discrete summary
represents it (:func:`journeyopt.sim.summary_rules.plan_rules`); a rule it does not see still
applies at execution and at the serving guard, which then drops contacts the plan counted on.
So the calibration takes the rules too:

- the configured caps (the summary when the selection is off) and the candidate summaries
  get the components the rules need (:func:`caps_with_rule_components`,
  :func:`with_rule_components`: a
  cap counting every contact over ``w`` past weeks needs a contact pattern of ``w`` weeks, a
  cap of some channels over ``w`` past weeks the same pattern by channel, a two-week cap of
  some channels or actions the last action), and the selection chooses among
  the candidates that represent every rule (:func:`journeyopt.calibration.summary.select_summary`);
- the world records which rules its summary represents (:func:`check_rules`, ``contact_rules``
  in ``calibration.json``); a rule it does not represent (no candidate could, or the summary
  was fixed) is a loud line on the card and a reason of its verdict, with the share of the
  world's own optimum's planned contacts the rule drops when executed.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from journeyopt.agents.policy import Bool, Float, IntArray, Observation, one_hot
from journeyopt.calibration.calibrated import CalibratedWorld
from journeyopt.calibration.config import SummaryConfig
from journeyopt.evaluation.simulate import simulate_policy
from journeyopt.sim.behaviour import world_under_rules
from journeyopt.sim.discrete import discrete_state
from journeyopt.sim.env import EpisodeClock
from journeyopt.sim.optimum import OptimalPolicy
from journeyopt.sim.population import starting_population
from journeyopt.sim.rules import ContactRules
from journeyopt.sim.summary_rules import plan_rules, rule_components
from journeyopt.sim.world import PATTERN_WEEKS, DiscreteSpec, WorldSpec

CHECK_CUSTOMERS = 2_000
"""Customers of the world's starting population the unseen rules' drops are simulated on."""


def with_rule_components(cfg: SummaryConfig, rules: ContactRules) -> SummaryConfig:
    """``cfg`` whose candidate lists also hold the contact-pattern length, pattern kind (by
    channel) and last-action setting ``rules`` need
    (:func:`journeyopt.sim.summary_rules.rule_components`); ``cfg`` itself when the selection
    is off, nothing is needed or the lists hold it already. A
    pattern longer than any a summary has (:data:`PATTERN_WEEKS`) is not added: no candidate
    can represent that cap, and the card says so; of the others the longest is added (it
    covers the shorter windows too)."""
    needed, last, by_channel = rule_components(rules)
    weeks = max((w for w in needed if w <= max(PATTERN_WEEKS)), default=0)
    patterns = list(cfg.pattern_weeks)
    if weeks and weeks not in patterns:
        patterns.append(weeks)
    settings = list(cfg.last_action)
    if last and True not in settings:
        settings.append(True)
    kinds = list(cfg.pattern_by_channel)
    if by_channel and weeks and True not in kinds:
        kinds.append(True)
    if not cfg.select or (
        (patterns, settings, kinds) == (cfg.pattern_weeks, cfg.last_action, cfg.pattern_by_channel)
    ):
        return cfg
    return replace(cfg, pattern_weeks=patterns, last_action=settings, pattern_by_channel=kinds)


def caps_with_rule_components(caps: DiscreteSpec, rules: ContactRules) -> DiscreteSpec:
    """The configured caps with the components ``rules`` need added (the summary as given
    when the selection is off, and the base of every candidate when it is on): a contact
    pattern at least as long as the longest window a pattern can cover
    (:data:`PATTERN_WEEKS`), by channel when a cap counts some channels, the last action
    when a two-week cap counts some channels or actions. ``caps`` itself when it has them."""
    needed, last, by_channel = rule_components(rules)
    weeks = max((w for w in needed if w <= max(PATTERN_WEEKS)), default=0)
    pattern = max(caps.contact_pattern_weeks, weeks)
    wanted = replace(
        caps,
        contact_pattern_weeks=pattern,
        contact_pattern_by_channel=caps.contact_pattern_by_channel or (by_channel and pattern > 0),
        last_action=caps.last_action or last,
    )
    return caps if wanted == caps else wanted


@dataclass(frozen=True)
class RulesCheck:
    """Which contact rules a world's summary represents, and what the others cost its plan.

    Attributes:
        rules: The configured rules in one line (:meth:`ContactRules.summary`).
        represented: The rules the world's exact optimum plans under, one line.
        unseen: One line per rule the summary cannot evaluate, with the reason (empty: the
            plan sees every rule).
        planned_contacts: Contacts the world's optimum (planned under the represented rules)
            asked for in a simulation of :data:`CHECK_CUSTOMERS` of its starting customers over
            the horizon, with every configured rule applied (0: not simulated, nothing unseen).
        dropped: Of those, contacts an unseen rule turned into no contact.
    """

    rules: str
    represented: str
    unseen: tuple[str, ...]
    planned_contacts: int = 0
    dropped: int = 0

    @property
    def dropped_share(self) -> float:
        """Share of the planned contacts dropped by the rules (NaN: not simulated)."""
        return self.dropped / self.planned_contacts if self.planned_contacts else float("nan")

    def as_meta(self) -> dict[str, Any]:
        """A JSON-ready record (``contact_rules`` in the world's meta, read by the card)."""
        return {
            "rules": self.rules,
            "represented": self.represented,
            "unseen": list(self.unseen),
            "planned_contacts": self.planned_contacts,
            "dropped": self.dropped,
        }


@dataclass(frozen=True)
class PlannedAsIs:
    """The optimum's table action as planned, not guarded: the simulation's guard counts what
    the rules drop (:attr:`journeyopt.evaluation.simulate.PolicyRun.forbidden`)."""

    world: WorldSpec
    optimum: OptimalPolicy
    name: str = "optimum_as_planned"

    def act(
        self, observation: Observation, masks: Bool, rng: np.random.Generator
    ) -> tuple[IntArray, Float]:
        states = discrete_state(observation.features, observation.segment, self.world)
        actions = self.optimum.optimal_actions(states, observation.week)
        return actions, one_hot(actions, masks.shape[1])


def dropped_contacts(
    world: WorldSpec,
    optimum: OptimalPolicy,
    rules: ContactRules,
    customers: int,
    gamma: float,
    seed: int,
) -> tuple[int, int]:
    """``(planned, dropped)``: contacts ``optimum`` asks for over its horizon for ``customers``
    of ``world``'s starting population (:func:`journeyopt.sim.population.starting_population`,
    seeded by ``seed``) and how many of them ``rules`` turn into no contact when executed."""
    horizon = optimum.horizon_weeks
    simulated = world_under_rules(world, rules)
    rng = np.random.default_rng(seed)
    state, segment = starting_population(simulated, customers, rng, horizon)
    start = int(optimum.weeks_of_year[0])
    run = simulate_policy(
        simulated,
        PlannedAsIs(world, optimum),
        state,
        segment,
        EpisodeClock.of(horizon, start),
        gamma,
        np.random.default_rng([seed, 1]),
        np.random.default_rng([seed, 2]),
        rules,
    )
    dropped = int(run.forbidden.sum())
    return int(run.contacts.sum()) + dropped, dropped


def solved_optimum(
    calibrated: CalibratedWorld, rules: ContactRules, horizon_weeks: int, gamma: float
) -> tuple[OptimalPolicy | None, float]:
    """``(optimum, seconds)``: the calibrated world's exact optimum over ``horizon_weeks``
    weeks as the product plans it (:meth:`CalibratedWorld.optimum`: pessimistic about its
    members' disagreement, ``calibration.pessimism``) under ``rules``' represented part, and
    the wall time of the planning; ``(None, NaN)`` when the world cannot value contacts. The
    calibration's one plan: the rules check, the card's solve time
    (:func:`journeyopt.calibration.summary.selection_meta`) and where the world extrapolates
    (:mod:`journeyopt.calibration.extrapolation`) all read it."""
    world = calibrated.world
    if world.responses is not None and not world.responses.actions_identified:
        return None, float("nan")
    start = time.perf_counter()
    optimum = calibrated.optimum(horizon_weeks, gamma, rules=rules)
    return optimum, time.perf_counter() - start


def check_rules(
    world: WorldSpec,
    rules: ContactRules,
    optimum: OptimalPolicy | None,
    gamma: float,
    seed: int,
    customers: int = CHECK_CUSTOMERS,
) -> RulesCheck:
    """Which of ``rules`` ``world``'s summary represents; when some are unseen (and the world
    can value contacts: ``optimum`` is its exact optimum planned under the represented ones,
    :func:`solved_optimum`), the optimum is simulated over its horizon on ``customers`` of the
    world's starting customers with every rule applied, counting the planned contacts the
    unseen rules drop."""
    planned = plan_rules(rules, world)
    check = RulesCheck(rules.summary(), planned.rules.summary(), planned.unseen)
    if not planned.unseen or optimum is None:
        return check
    total, dropped = dropped_contacts(world, optimum, rules, customers, gamma, seed)
    return replace(check, planned_contacts=total, dropped=dropped)


def unseen_rule_reasons(meta: Mapping[str, Any]) -> list[str]:
    """The verdict's reason when the world's summary does not represent every configured
    rule (none when it does, or the world records no rules)."""
    record = meta.get("contact_rules")
    if not record or not record.get("unseen"):
        return []
    return [f"its plans do not see the contact rule(s) {_unseen_names(record)}{_dropped(record)}"]


def rules_lines(meta: Mapping[str, Any]) -> list[str]:
    """The card's section on the contact rules the world's summary represents (none when the
    world records no rules)."""
    record = meta.get("contact_rules")
    if not record:
        return []
    lines = [
        "## Contact rules",
        "",
        f"- configured (`rules`): {record['rules']}",
        f"- the world's exact optimum plans under: {record['represented']}",
    ]
    if record["unseen"]:
        lines += [
            "",
            f"**WARNING: the state summary does not represent {len(record['unseen'])} "
            f"contact rule(s)**{_dropped(record)}. Plans, values and training in this world "
            "ignore them while evaluation and serving apply them:",
            "",
            *(f"- UNSEEN: {line}" for line in record["unseen"]),
        ]
    else:
        lines.append("- every configured rule is represented by the state summary")
    return [*lines, ""]


def _unseen_names(record: Mapping[str, Any]) -> str:
    return "; ".join(str(line).split(":")[0] for line in record["unseen"])


def _dropped(record: Mapping[str, Any]) -> str:
    planned = int(record.get("planned_contacts", 0))
    if not planned:
        return ""
    share = int(record.get("dropped", 0)) / planned
    return f" (they drop {100 * share:.1f} % of the contacts its optimum plans)"
