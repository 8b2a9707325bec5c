"""The promotion gate: a candidate policy becomes ``champion`` only on evidence.

Two tests, both on the paired improvement ``candidate - champion`` (the current ``champion``
alias, or today's staff rules when no version holds it):

1. simulation: both policies on the same simulated customers with common random numbers
   (:func:`journeyopt.evaluation.simulate.evaluate_policies`), in every member of the
   calibrated ensemble when one is given (the smallest lower bound counts), else in the
   configured world; the one-sided lower bound is ``mean - z * sd / sqrt(N)``;
2. off-policy evaluation on the most recent held-out logs
   (:mod:`journeyopt.evaluation.ope`): the paired bootstrap lower bound of the configured
   estimator, and the overlap diagnostics of the candidate must pass. The default estimator
   is the long-term doubly robust estimate (``lt_dr``): the value over the simulation's
   horizon, the first ``ope.horizon_weeks`` weeks (default 1) importance-weighted on the logs
   and the calibrated world's value-to-go after them; the overlap diagnostics judge the
   weights of that window only. Weights over many weeks explode for any policy that differs
   from today's practice, while one week's reward alone punishes policies that invest in
   long-term value; the short window with a model tail is evidence that can pass.

The alias moves only if every lower bound is above its threshold; otherwise the gate refuses
with :class:`PromotionRefused` (exit code 3) naming the failed tests. The decision, the
evidence table and the reasons are recorded as an MLflow run either way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy.stats import norm

from journeyopt.agents.policy import Bool, Float, IntArray, Observation, one_hot
from journeyopt.errors import ConfigError, JourneyoptError
from journeyopt.sim.observation import ObservationLayout
from journeyopt.tracking.model import ServablePolicy

REFUSED_EXIT_CODE = 3
"""Exit code of ``journeyopt-promote`` when the gate refuses a promotion."""


class PromotionRefused(JourneyoptError):
    """The evidence does not show the candidate beats the champion."""

    exit_code = REFUSED_EXIT_CODE


@dataclass
class GateConfig:
    """Thresholds of the promotion gate.

    Attributes:
        confidence: One-sided confidence of the lower bounds, in (0, 1).
        min_sim_improvement: The simulated improvement's lower bound must exceed this,
            currency per customer over the horizon.
        min_ope_improvement: The OPE improvement's lower bound must exceed this, currency per
            customer over the value of the estimator (the simulation's horizon for ``lt_dr``
            and ``lt_dm``, the logged window for the others).
        ope_estimator: Estimator of the OPE test: ``lt_dr`` (long-term DR over a short
            window, the default), ``lt_dm``, or a window-only estimator (``dr``, ``wpdis``,
            ``pdis``, ``dm``, ``fqe``, ``dr_fqe``).
        require_overlap: Refuse when the candidate's overlap diagnostics fail.
    """

    confidence: float = 0.95
    min_sim_improvement: float = 0.0
    min_ope_improvement: float = 0.0
    ope_estimator: str = "lt_dr"
    require_overlap: bool = True

    def __post_init__(self) -> None:
        if not 0.0 < self.confidence < 1.0:
            raise ConfigError(f"gate.confidence must be in (0, 1), got {self.confidence}")
        known = ("lt_dr", "lt_dm", "pdis", "wpdis", "dm", "dr", "fqe", "dr_fqe")
        if self.ope_estimator not in known:
            raise ConfigError(
                f"gate.ope_estimator: unknown {self.ope_estimator!r}; known: {list(known)}"
            )


@dataclass(frozen=True)
class Evidence:
    """One test of the gate.

    Attributes:
        test: ``simulation`` or ``ope``.
        source: Where (world name or ensemble member, estimator).
        candidate, champion: Values per customer, currency.
        improvement: ``candidate - champion``.
        lower_bound: One-sided lower bound of the improvement.
        threshold: The lower bound must exceed it.
        passed: Whether it did (and, for OPE, whether the overlap diagnostics passed).
        note: Why it failed, empty when it passed.
    """

    test: str
    source: str
    candidate: float
    champion: float
    improvement: float
    lower_bound: float
    threshold: float
    passed: bool
    note: str = ""


def simulation_evidence(
    source: str,
    candidate: Float,
    champion: Float,
    confidence: float,
    threshold: float,
) -> Evidence:
    """The simulation test from per-customer values (N,) of both policies (same customers,
    common random numbers)."""
    diff = candidate - champion
    z = float(norm.ppf(confidence))
    mean = float(diff.mean())
    bound = mean - z * float(diff.std(ddof=1)) / np.sqrt(diff.shape[0])
    passed = bound > threshold
    note = "" if passed else f"lower bound {bound:.3f} is not above {threshold:g}"
    return Evidence(
        "simulation",
        source,
        float(candidate.mean()),
        float(champion.mean()),
        mean,
        bound,
        threshold,
        passed,
        note,
    )


@dataclass(frozen=True)
class Decision:
    """The gate's decision.

    Attributes:
        promote: Whether every test passed.
        evidence: The tests.
        reasons: One sentence per failed test (empty when promoted).
    """

    promote: bool
    evidence: tuple[Evidence, ...]
    reasons: tuple[str, ...]

    @property
    def table(self) -> pd.DataFrame:
        """The evidence as a table, one row per test."""
        return pd.DataFrame.from_records([vars(e) for e in self.evidence])


def decide(evidence: Sequence[Evidence]) -> Decision:
    """Promote only if every test passed; reasons name each failed test."""
    if not evidence:
        raise ValueError("the gate needs evidence")
    failed = [e for e in evidence if not e.passed]
    reasons = tuple(f"{e.test} test failed ({e.source}): {e.note}" for e in failed)
    return Decision(not failed, tuple(evidence), reasons)


@dataclass(frozen=True)
class ServedPolicy:
    """A registered policy (a :class:`~journeyopt.tracking.model.ServablePolicy`) as an
    :class:`~journeyopt.agents.policy.Policy`: observations encoded with the layout it was
    trained on, masks applied, and the action served (the most probable allowed one) with
    probability 1 — what serving does, so simulation and OPE evaluate what customers get.

    Attributes:
        network: The loaded policy.
        layout: The observation layout (its version must match the policy's spec).
        name: Name in tables.
    """

    network: ServablePolicy
    layout: ObservationLayout
    name: str

    def __post_init__(self) -> None:
        from journeyopt.agents.sb3 import layout_version  # agents imports tracking

        expected = layout_version(self.layout)
        if self.network.spec.layout_version != expected:
            raise ConfigError(
                f"policy {self.name} was trained on observation layout "
                f"{self.network.spec.layout_version}, the world has {expected}"
            )

    def act(
        self, observation: Observation, masks: Bool, rng: np.random.Generator
    ) -> tuple[IntArray, Float]:
        actions, _ = self.network.act(observation.vector(self.layout), masks)
        chosen: NDArray[np.int64] = np.where(
            masks[np.arange(masks.shape[0]), actions], actions, 0
        ).astype(np.int64)
        return chosen, one_hot(chosen, masks.shape[1])
