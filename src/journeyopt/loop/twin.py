"""The counterfactual twin of a closed loop: the same customers living through the same weeks
under the control policy, with common random numbers, so the true uplift is known.

The uplift step of the weekly cycle estimates the intent-to-treat (ITT) difference per
customer-week between the treatment group (served by the champion since the loop started)
and the control group (today's staff rules), carry-over effects included: a call this week
that brings a membership next month counts. Its truth is therefore not a one-week effect of
this week's decisions but, for every treatment customer, the reward they earned minus the
reward they would have earned had they been in the control group from the first served week
on. The twin computes exactly that: a copy of the population, started from the real state
at the first served week, decided each week by the control path of the serving scorer
(:func:`control_actions`), and drawn from the same world with the same random numbers. The
world's sampling (:meth:`journeyopt.loop.truth.TruthWorld.step`) draws the same random numbers
per customer whatever the actions, so a customer whose decisions do not differ lives
the same life in both (an exact 0 difference), and differences are the policies'.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from journeyopt.agents.policy import Observation
from journeyopt.loop.truth import TruthWorld
from journeyopt.panel.weeks import monday_on_or_before
from journeyopt.serving.guards import allowed_actions, apply_guards
from journeyopt.serving.scorer import CustomerBatch, Scorer

IntArray = NDArray[np.int64]
Float = NDArray[np.float64]

TwinPolicy = Callable[[CustomerBatch], IntArray]
"""What decides for the twin: (N,) actions carried out for the customers of a batch."""


def control_actions(scorer: Scorer, batch: CustomerBatch, *, capacity: bool = True) -> IntArray:
    """(N,) the actions the scorer's control path takes for every customer of ``batch``:
    today's practice (``serve.holdout.staff``) on the staff's campaign calendar, restricted
    to what the contact rules allow, behind the same guards (what a control customer gets
    from :meth:`Scorer.score`) and, with ``capacity``, the weekly capacities over the batch
    with the batch's own arms (:meth:`Scorer.hold_capacity`): a control customer gets exactly
    its served decision, and the others the control path with their arm's share (the same
    capacity per customer as the control arm's)."""
    monday = monday_on_or_before(batch.as_of)
    reasons = scorer.rules.reasons(
        batch.features, segment=batch.segment, week_of_year=int(monday.isocalendar().week)
    )
    masks = allowed_actions(reasons, batch.known)
    segment = np.where(batch.segment >= 0, batch.segment, 0)
    observation = Observation(
        batch.features, segment, int(monday.isocalendar().week), scorer.staff_week(monday)
    )
    actions, probabilities = scorer.control_choice(observation, masks, batch.customer_ids, monday)
    guarded = apply_guards(actions, probabilities, reasons, batch.known)
    if capacity:
        guarded, _ = scorer.hold_capacity(observation, guarded, reasons, scorer.arms(batch))
    return guarded.actions


def served_by(scorer: Scorer) -> TwinPolicy:
    """The twin policy that decides like ``scorer`` itself (both groups): a twin under it
    lives exactly the real life (the sanity check of the twin)."""
    return lambda batch: scorer.score(batch).actions


def staff_control(scorer: Scorer) -> TwinPolicy:
    """The twin policy of the uplift's truth: every customer on ``scorer``'s control path."""
    return lambda batch: control_actions(scorer, batch)


def common_draws(rng: np.random.Generator) -> np.random.Generator:
    """An independent copy of ``rng`` in its current state: drawing a week from it gives
    the random numbers the next draw from ``rng`` gets (common random numbers)."""
    return copy.deepcopy(rng)


class CounterfactualTwin:
    """The population of a closed loop under another policy, from a given week on.

    Args:
        world: The ground-truth world the loop lives in.
        state: The real customers' state at the twin's first week (the world's state type).
    """

    def __init__(self, world: TruthWorld[Any], state: Any) -> None:
        self.world = world
        self.state = state

    def live_week(
        self,
        batch: CustomerBatch,
        policy: TwinPolicy,
        week: int,
        week_of_year: int,
        rng: np.random.Generator,
    ) -> tuple[IntArray, Float]:
        """Decide and draw one week for the twin; returns its (N,) actions carried out and
        (N,) rewards (margin minus contact and discount costs, currency).

        Args:
            batch: The real customers' batch this week (ids, type, as-of); its features are
                replaced by the twin's own.
            policy: What decides for the twin.
            week: Week index of the week (weeks since the world's origin).
            week_of_year: ISO week of year of the week.
            rng: The generator of the real week's draw, in the state before it (see
                :func:`common_draws`).
        """
        features = self.world.features(self.state)
        twin_batch = CustomerBatch(
            batch.customer_ids, features, batch.segment, batch.known, batch.as_of
        )
        actions = policy(twin_batch)
        out = self.world.step(self.state, actions, week, week_of_year, rng)
        self.state = out.state
        return out.actions, out.reward


def window_uplift(weekly: Sequence[float], weeks: int) -> float:
    """The true ITT uplift per customer-week over the last ``weeks`` served weeks (fewer
    when fewer were served), from the weekly means of (reward - twin reward) over the
    treatment customers, currency.

    Every treatment customer is exposed in every served week, so the mean per customer-week
    over the window is the mean of the weekly means — the estimand of the cycle's uplift step
    measured over the same weeks (``uplift.weeks``).

    Raises:
        ValueError: No served week, or ``weeks < 1``.
    """
    if weeks < 1 or not weekly:
        raise ValueError(f"need >= 1 served week and weeks >= 1, got {len(weekly)} and {weeks}")
    return float(np.mean(np.asarray(weekly[-weeks:], np.float64)))
