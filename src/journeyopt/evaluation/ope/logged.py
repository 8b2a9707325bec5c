"""Logged decision data from canonical logs, through the panel code.

:func:`logged_trajectories` turns a weekly panel (:func:`journeyopt.panel.build.build_panel`)
into ``K`` customer trajectories of ``H`` weeks starting at the logging start: the customers
present in the first logged week, followed for the next ``H`` weeks. Per customer-week:

- the state features at the start of the week (the panel's point-in-time columns, the same
  numbers :func:`journeyopt.panel.state.state_features` gives the simulator and serving);
- the logged action and its propensity (logged where present; else a behaviour-cloning
  estimate, :func:`journeyopt.calibration.propensity.propensities`, whose calibration is kept);
- the reward, currency: ``margin_rate * v - discount[action] * v - contact cost``, with ``v``
  the week's list value (:meth:`journeyopt.sim.rules.ActionCatalog.list_values` of the logged
  revenue net of the refunds booked in the week, by the source's price basis
  ``data.amounts``; negative in a week with only a refund) — the world's reward
  (:mod:`journeyopt.sim.dynamics`);
- the contact rules' masks (:meth:`journeyopt.sim.rules.ContactRules.masks`).

The value these trajectories estimate is the simulator's (:mod:`journeyopt.evaluation.simulate`):
discounted return over ``H`` weeks from week 0 (``Observation.week = 0`` in the first logged
week, weeks of year from the logs' calendar), averaged over the customers present at the start.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from journeyopt.agents.policy import Observation, Policy
from journeyopt.calibration.design import Design
from journeyopt.calibration.propensity import Propensities, propensities, reliability
from journeyopt.calibration.weeks import customer_weeks
from journeyopt.errors import JourneyoptError
from journeyopt.panel.segments import TYPE_COLUMNS
from journeyopt.panel.state import LIFECYCLE_STAGES
from journeyopt.sim.discrete import DiscreteLayout
from journeyopt.sim.rules import ContactRules
from journeyopt.sim.world import WorldSpec

Float = NDArray[np.float64]
IntArray = NDArray[np.int64]
Bool = NDArray[np.bool_]


@dataclass(frozen=True)
class LoggedTrajectories:
    """``K`` customers over ``H`` logged weeks.

    Attributes:
        customer_ids: (K,) customer ids.
        segment: (K,) segment index into ``segment_names``.
        segment_names: The world's segment names.
        first_week: Panel week index of episode week 0 (the logging start).
        week_of_year: (H,) ISO week of year of each episode week.
        features: Feature name -> (K, H) values at the start of each week.
        action: (K, H) logged action index.
        propensity: (K, H) behaviour probability of the logged action.
        reward: (K, H) reward, currency.
        masks: (K, H, A) actions the contact rules allow.
        rules: The contact rules that gave ``masks`` (serving's, in the gate): the model
            world's value of a target policy beyond the logged states follows them too
            (:func:`journeyopt.evaluation.ope.model_value.visited_states`), so a contact
            serving forbids is never credited to it, inside the window or after it.
        propensity_source: ``logged``, ``estimated`` or ``mixed``.
        propensity_calibration: Reliability table of the behaviour-cloning classifier
            (empty when every propensity was logged).
    """

    customer_ids: NDArray[np.object_]
    segment: IntArray
    segment_names: tuple[str, ...]
    first_week: int
    week_of_year: IntArray
    features: Mapping[str, NDArray[np.generic]]
    action: IntArray
    propensity: Float
    reward: Float
    masks: Bool
    rules: ContactRules
    propensity_source: str
    propensity_calibration: pd.DataFrame

    @property
    def n_customers(self) -> int:
        return int(self.action.shape[0])

    @property
    def horizon_weeks(self) -> int:
        return int(self.action.shape[1])

    def observation(self, t: int) -> Observation:
        """What a policy sees of the customers in episode week ``t``."""
        return Observation(
            {k: v[:, t] for k, v in self.features.items()},
            self.segment,
            int(self.week_of_year[t]),
            t,
        )


def week_rewards(panel: pd.DataFrame, world: WorldSpec, prices: str = "paid") -> Float:
    """(M,) reward of panel rows, currency (see the module docstring); ``prices`` is the
    source's price basis (``data.amounts``: ``paid`` or ``list``)."""
    catalog = world.actions
    action = catalog.index(panel["action"].astype(str).to_numpy())
    value = catalog.list_values(panel["revenue"].to_numpy(np.float64), action, prices)
    margin = world.margin_rate * value - catalog.discount_rates[action] * value
    return margin - panel["contact_cost"].to_numpy(np.float64)


def logged_trajectories(
    panel: pd.DataFrame,
    world: WorldSpec,
    rules: ContactRules,
    horizon_weeks: int,
    prices: str = "paid",
) -> LoggedTrajectories:
    """The trajectories of the customers present in the panel's first logged week (a week
    with a logged decision), over the ``horizon_weeks`` weeks from it.

    Args:
        panel: Weekly panel of the logs (``build_panel``), features named as the world's.
        world: The world whose actions, segments and economics the logs use (segments that
            are value tiers, ``segment_value_cuts``: each customer's tier of ``monetary`` in
            the trajectory's first week, as the scorer reads it, not the panel's ``segment``).
        rules: The contact rules (the same object serving uses).
        horizon_weeks: ``H``; the panel must cover the logging start plus ``H`` weeks.
        prices: What the logged amounts are under a discounting action (``data.amounts``).

    Raises:
        JourneyoptError: Nothing was logged, the logs are too short, or the actions or
            segments do not match the world's.
    """
    logged = panel["propensity"].notna() | (panel["action"].astype(str) != "none")
    if not logged.any():
        raise JourneyoptError("the logs hold no contact decision: nothing to evaluate a policy on")
    first = int(panel.loc[logged, "week"].min())
    last = int(panel["week"].max())
    if first + horizon_weeks - 1 > last:
        raise JourneyoptError(
            f"the logs cover {last - first + 1} weeks from the first logged decision, "
            f"fewer than the horizon of {horizon_weeks} weeks"
        )
    ids = panel.loc[panel["week"] == first, "customer_id"].astype(str).unique()
    rows = panel[panel["customer_id"].astype(str).isin(ids)]
    rows = rows[(rows["week"] >= first) & (rows["week"] < first + horizon_weeks)]
    complete = rows.groupby(rows["customer_id"].astype(str))["week"].transform("size")
    rows = rows[complete.to_numpy() == horizon_weeks]
    rows = rows.sort_values(["customer_id", "week"], kind="stable")
    k = rows.shape[0] // horizon_weeks
    if k < 1:
        raise JourneyoptError("no customer is in the logs for every week of the horizon")
    unknown = set(rows["action"].astype(str)) - set(world.actions.names)
    if unknown:
        raise JourneyoptError(
            f"logged actions {sorted(unknown)} are not in the world's {world.actions.names}"
        )
    starts = rows.iloc[::horizon_weeks]  # each customer's first week
    typed = world.segment_labels(
        {c: starts[c].to_numpy(np.float64) for c in ("monetary", *TYPE_COLUMNS) if c in starts}
    )
    if typed is not None:  # value tiers or behaviour types: as the scorer reads them
        rows = rows.assign(segment=np.repeat(typed, horizon_weeks))  # every step below reads it
    labels = rows["segment"].astype(str).to_numpy()
    unknown_seg = set(labels) - set(world.segment_names)
    if unknown_seg:
        raise JourneyoptError(
            f"segments {sorted(unknown_seg)} are not the world's {world.segment_names}"
        )

    def grid(values: NDArray[np.generic]) -> NDArray[np.generic]:
        return np.asarray(values).reshape(k, horizon_weeks)

    # every feature of the world's state: its discrete summary may read rule features (the
    # contact pattern, the last action, the gap between conversions)
    feature_names = world.features.all_feature_names
    missing = [n for n in feature_names if n not in rows]
    if missing:
        raise JourneyoptError(f"the panel lacks the features {missing}")
    features = {name: grid(_feature(rows, name)) for name in feature_names}
    action = grid(world.actions.index(rows["action"].astype(str).to_numpy())).astype(np.int64)
    props = _propensities(rows, world)
    rules.require_features(set(rows.columns), "the panel")
    read = {**features, **{n: grid(_feature(rows, n)) for n in rules.spec.rule_feature_names}}
    segment = np.array([world.segment_names.index(s) for s in labels[::horizon_weeks]], np.int64)
    woy = np.asarray(grid(rows["week_of_year"].to_numpy(np.int64)), np.int64)
    masks = np.stack(
        [
            rules.masks(
                {n: v[:, t] for n, v in read.items()}, segment=segment, week_of_year=woy[:, t]
            )
            for t in range(horizon_weeks)
        ],
        axis=1,
    )
    return LoggedTrajectories(
        customer_ids=grid(rows["customer_id"].astype(str).to_numpy())[:, 0].astype(object),
        segment=segment,
        segment_names=world.segment_names,
        first_week=first,
        week_of_year=grid(rows["week_of_year"].to_numpy(np.int64))[0].astype(np.int64),
        features=features,
        action=action,
        propensity=grid(props.value).astype(np.float64),
        reward=grid(week_rewards(rows, world, prices)).astype(np.float64),
        masks=masks,
        rules=rules,
        propensity_source=props.source,
        propensity_calibration=props.calibration,
    )


def _feature(rows: pd.DataFrame, name: str) -> NDArray[np.generic]:
    """A panel column as ``state_features`` gives it (``lifecycle`` as its int8 code)."""
    if name == "lifecycle":
        stages = pd.Categorical(rows[name].astype(str), categories=list(LIFECYCLE_STAGES))
        return np.asarray(stages.codes, np.int8)
    return rows[name].to_numpy()


def _propensities(rows: pd.DataFrame, world: WorldSpec) -> Propensities:
    """Logged propensities, completed by the calibration's behaviour cloning where missing."""
    logged = rows["propensity"].to_numpy(np.float64)
    if np.all(np.isfinite(logged) & (logged > 0)):
        return Propensities(logged, "logged", reliability(np.zeros(0), np.zeros(0)), np.nan)
    layout = DiscreteLayout.of(world)
    kept = rows.assign(tenure_weeks=np.maximum(rows["tenure_weeks"].to_numpy(), 1))  # keep all
    weeks = customer_weeks(
        kept, layout, world.features.contact_channels, world.actions.names, world.segment_names
    )
    design = Design(layout, world.actions.n_actions, seasonal=True)
    matrix = design.matrix(
        layout.decode(weeks.state), np.zeros(weeks.n, np.int64), weeks.week_of_year
    )
    validation = (np.arange(weeks.customer_ids.shape[0]) % 5 == 0)[weeks.customer]
    return propensities(weeks, matrix, validation)


@dataclass(frozen=True)
class ActedPolicy:
    """``policy`` with the probabilities of the actions it actually takes (one-hot).

    Off-policy evaluation values the probabilities a policy returns, simulation the actions it
    takes. A policy that returns softmax probabilities but acts on the most probable action (a
    trained agent, :class:`journeyopt.agents.sb3.LearnedPolicy`) must be wrapped so both value
    the same thing — as the promotion gate's ``ServedPolicy`` does. Do not wrap a stochastic
    policy (e.g. uniform random): its probabilities are already what it does.

    Attributes:
        policy: The wrapped policy.
    """

    policy: Policy

    @property
    def name(self) -> str:
        return self.policy.name

    def act(
        self, observation: Observation, masks: Bool, rng: np.random.Generator
    ) -> tuple[IntArray, Float]:
        actions, _ = self.policy.act(observation, masks, rng)
        probs = np.zeros(masks.shape)
        probs[np.arange(masks.shape[0]), actions] = 1.0
        return actions, probs


def target_probabilities(policy: Policy, logged: LoggedTrajectories, seed: int = 0) -> Float:
    """(K, H, A) the target policy's probabilities in every logged state, masked as in
    serving: probability on an action the rules forbid moves to ``none`` (the guard carries
    a forbidden request out as ``none``)."""
    rng = np.random.default_rng(seed)
    out = np.empty(logged.masks.shape)
    for t in range(logged.horizon_weeks):
        masks = logged.masks[:, t]
        _, probs = policy.act(logged.observation(t), masks, rng)
        allowed = np.where(masks, probs, 0.0)
        allowed[:, 0] += np.where(masks, 0.0, probs).sum(axis=1)
        out[:, t] = allowed
    return out


def logged_weeks(logged: LoggedTrajectories, start: int, stop: int) -> LoggedTrajectories:
    """Episode weeks ``start .. stop - 1`` of ``logged`` (the same customers; the first of
    them becomes week 0)."""
    if not 0 <= start < stop <= logged.horizon_weeks:
        raise ValueError(
            f"weeks {start}..{stop - 1} are not within the {logged.horizon_weeks} logged weeks"
        )
    cut = slice(start, stop)
    return LoggedTrajectories(
        customer_ids=logged.customer_ids,
        segment=logged.segment,
        segment_names=logged.segment_names,
        first_week=logged.first_week + start,
        week_of_year=logged.week_of_year[cut],
        features={name: values[:, cut] for name, values in logged.features.items()},
        action=logged.action[:, cut],
        propensity=logged.propensity[:, cut],
        reward=logged.reward[:, cut],
        masks=logged.masks[:, cut],
        rules=logged.rules,
        propensity_source=logged.propensity_source,
        propensity_calibration=logged.propensity_calibration,
    )


def first_weeks(logged: LoggedTrajectories, weeks: int) -> LoggedTrajectories:
    """The first ``weeks`` weeks of ``logged`` (the same customers)."""
    return logged_weeks(logged, 0, weeks)
