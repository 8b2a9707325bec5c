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

A third test judges the model behind the OPE estimate
(:mod:`journeyopt.evaluation.ope.model_check`): the logging policy replayed in the model
world over the most recent logged weeks must predict what the logs realised within
``gate.model_check_tolerance``. The overlap diagnostics judge the importance weights only; a
long-term estimate is mostly the model's value-to-go, and this is the check of it that needs
no truth. It blocks a promotion when ``gate.require_model_check`` is true (the default);
otherwise a failure is a warning.

The alias moves only if every blocking test passed; otherwise the gate refuses with
:class:`PromotionRefused` (exit code 3) naming the failed tests. The decision, the evidence
table, the reasons and the warnings are recorded as an MLflow run either way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy.stats import norm

from journeyopt.agents.policy import Bool, Float, IntArray, Observation, one_hot
from journeyopt.errors import ConfigError, JourneyoptError
from journeyopt.sim.observation import ObservationLayout
from journeyopt.tracking.model import ServablePolicy

if TYPE_CHECKING:
    from journeyopt.evaluation.ope.model_check import ModelCheck

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
        model_check_tolerance: Largest acceptable relative gap between the model world's
            prediction of the logging policy's value over the replayed weeks and what the
            logs realised, in (0, 1); the check fails when the gap's whole interval lies
            beyond it.
        model_check_strict: The model check fails unless the gap's whole interval lies
            within the tolerance (the model shown accurate; small logs fail for want of
            evidence); default: it fails only when the model is shown wrong.
        require_model_check: Refuse when the model check fails (false: report it as a
            warning and decide on the other tests).
    """

    confidence: float = 0.95
    min_sim_improvement: float = 0.0
    min_ope_improvement: float = 0.0
    ope_estimator: str = "lt_dr"
    require_overlap: bool = True
    model_check_tolerance: float = 0.1
    model_check_strict: bool = False
    require_model_check: bool = True

    def __post_init__(self) -> None:
        if not 0.0 < self.confidence < 1.0:
            raise ConfigError(f"gate.confidence must be in (0, 1), got {self.confidence}")
        if not 0.0 < self.model_check_tolerance < 1.0:
            raise ConfigError(
                f"gate.model_check_tolerance must be in (0, 1), got {self.model_check_tolerance}"
            )
        known = ("lt_dr", "lt_dm", "pdis", "wpdis", "dm", "dr", "fqe", "dr_fqe")
        if self.ope_estimator not in known:
            raise ConfigError(
                f"gate.ope_estimator: unknown {self.ope_estimator!r}; known: {list(known)}"
            )


@dataclass(frozen=True)
class Evidence:
    """One test of the gate.

    Attributes:
        test: ``simulation``, ``ope`` or ``model_check``.
        source: Where (world name or ensemble member, estimator, replayed weeks).
        candidate, champion: Values per customer, currency (``model_check``: the model's
            prediction of the logging policy's value and what the logs realised).
        improvement: ``candidate - champion`` (``model_check``: the relative gap
            ``(predicted - realised) / |realised|``).
        lower_bound: One-sided lower bound of the improvement (``model_check``: the lower
            end of the gap's interval).
        threshold: The lower bound must exceed it (``model_check``: the gap's tolerance).
        passed: Whether it did (and, for OPE, whether the overlap diagnostics passed).
        note: Why it failed, empty when it passed.
        blocking: Whether a failure refuses the promotion (else it is a warning).
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
    blocking: bool = True


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


def model_check_evidence(check: ModelCheck, source: str, blocking: bool) -> Evidence:
    """The model check (:func:`journeyopt.evaluation.ope.model_check.check_model`) as a test
    of the gate: predicted and realised value of the logging policy, the relative gap, its
    interval's lower end, the tolerance."""
    note = "" if check.passed else check.reason
    return Evidence(
        "model_check",
        source,
        check.predicted,
        check.realised,
        check.gap,
        check.gap_low,
        check.tolerance,
        check.passed,
        note,
        blocking,
    )


@dataclass(frozen=True)
class Decision:
    """The gate's decision.

    Attributes:
        promote: Whether every blocking test passed.
        evidence: The tests.
        reasons: One sentence per failed blocking test (empty when promoted).
        warnings: One sentence per failed test that does not block.
    """

    promote: bool
    evidence: tuple[Evidence, ...]
    reasons: tuple[str, ...]
    warnings: tuple[str, ...] = ()

    @property
    def table(self) -> pd.DataFrame:
        """The evidence as a table, one row per test."""
        return pd.DataFrame.from_records([vars(e) for e in self.evidence])


def decide(evidence: Sequence[Evidence]) -> Decision:
    """Promote only if every blocking test passed; reasons name each failed blocking test,
    warnings each failed test that does not block."""
    if not evidence:
        raise ValueError("the gate needs evidence")
    failed = [e for e in evidence if not e.passed and e.blocking]
    warned = [e for e in evidence if not e.passed and not e.blocking]
    reasons = tuple(f"{e.test} test failed ({e.source}): {e.note}" for e in failed)
    warnings = tuple(f"{e.test} test failed, not blocking ({e.source}): {e.note}" for e in warned)
    return Decision(not failed, tuple(evidence), reasons, warnings)


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
