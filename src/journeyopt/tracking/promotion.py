"""The promotion gate: a candidate policy becomes ``champion`` only on evidence.

Two tests, both on the paired improvement ``candidate - champion`` (the current ``champion``
alias, or today's staff rules when no version holds it):

1. simulation: both policies on the same simulated customers with common random numbers
   (:func:`journeyopt.evaluation.simulate.evaluate_policies`), in every member of the
   calibrated ensemble when one is given, else in the configured world; the estimate is the
   members' mean improvement, and its interval counts the world's own error besides sampling
   noise (``gate.model_error``, :func:`simulation_evidence`, docs/ope.md): the members'
   disagreement and the model check's bias bound (:func:`bias_bound`: the logging policy's
   check, or each action's check weighted by what each policy does, the larger);
2. off-policy evaluation on the most recent held-out logs
   (:mod:`journeyopt.evaluation.ope`): the paired bootstrap lower bound of the configured
   estimator, and the overlap diagnostics of the candidate must pass. The default estimator
   is the long-term doubly robust estimate (``lt_dr``): the value over the simulation's
   horizon, the first ``ope.horizon_weeks`` weeks (default 1) importance-weighted on the logs
   and the calibrated world's value-to-go after them; the overlap diagnostics judge the
   weights of that window only. Weights over many weeks explode for any policy that differs
   from today's practice, while one week's reward alone punishes policies that invest in
   long-term value; the short window with a model tail is evidence that can pass.

Two more tests judge the model behind the OPE estimate, which the overlap diagnostics (of the
importance weights only) cannot see; a long-term estimate is mostly the model's value-to-go:

3. the model check (:mod:`journeyopt.evaluation.ope.model_check`), an equivalence test: the
   logging policy replayed in the model world over the most recent logged weeks must be
   *shown* to predict what the logs realised within ``gate.model_check_tolerance`` (the
   whole interval of the relative gap inside it), and so must the model's response to every
   action the candidate takes in at least ``gate.model_check_min_action_share`` of its
   decisions (one row per action). It blocks a promotion when ``gate.require_model_check``
   is true (the default); otherwise a failure is a warning;
4. model-free evidence (:mod:`journeyopt.evaluation.ope.model_free`): the candidate's
   importance-weighted value over the longest window the logs' overlap supports must agree
   with the model's value of the same weeks (their intervals overlap); blocking when
   ``gate.require_model_free`` is true (the default).

Each row names its baseline: the champion, or today's practice when there is none. With a
champion, the candidate is also judged against today's practice (rows that do not block),
so both numbers are on the table.

The alias moves only if every blocking test passed; otherwise the gate refuses with
:class:`PromotionRefused` (exit code 3) naming the failed tests, or with
:class:`PromotionInconclusive` (exit code 4) when every failure is for want of evidence (a
value test that passes on sampling noise and fails only through the world's own error
among them). The decision, the evidence
table, the reasons and the warnings are recorded as an MLflow run either way.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
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
    from journeyopt.evaluation.ope.diagnostics import Diagnostics
    from journeyopt.evaluation.ope.model_check import ActionCheck, ModelCheck
    from journeyopt.evaluation.ope.model_free import ModelFreeCheck

REFUSED_EXIT_CODE = 3
"""Exit code of ``journeyopt-promote`` when the gate refuses a promotion on evidence against
the candidate (a value test failed, or a check showed the model or the overlap wrong)."""
INCONCLUSIVE_EXIT_CODE = 4
"""Exit code of ``journeyopt-promote`` when the gate refuses for want of evidence only: every
value test passed and each blocking failure is inconclusive (see :attr:`Evidence.inconclusive`)."""
INCONCLUSIVE_CHOICES: tuple[str, ...] = ("refuse", "canary")
VALUE_TESTS: tuple[str, ...] = ("simulation", "ope")


class PromotionRefused(JourneyoptError):
    """The evidence does not show the candidate beats the champion."""

    exit_code = REFUSED_EXIT_CODE


class PromotionInconclusive(PromotionRefused):
    """Not refused on evidence against the candidate, but not enough evidence to promote."""

    exit_code = INCONCLUSIVE_EXIT_CODE


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
            prediction and what the logs realised (the logging policy's value over the
            replayed weeks, and each checked action's outcome), in (0, 1).
        model_check_strict: The equivalence test (default): the model check passes only when
            the gap's whole interval lies within the tolerance (the model shown accurate;
            small logs fail for want of evidence). ``false`` is the lax opt-out: it fails
            only when the whole interval lies beyond the tolerance (the model shown wrong),
            which let a world over-predicting by 11.7 % (interval from 7.9 %) pass.
        model_check_min_action_share: The model's response to each action the candidate
            takes in at least this share of its decisions (on the replayed logged states) is
            checked, in (0, 1].
        model_check_outcome_weeks: Weeks over which a logged decision's outcome is compared
            with the model's prediction in the per-action check (the decision's week and the
            ones after it), >= 1.
        require_model_check: Refuse when the model check fails (false: report it as a
            warning and decide on the other tests).
        require_model_free: Refuse when the candidate's importance-weighted value over the
            longest supported window disagrees with the model's value of the same weeks, or
            when the logs support no window (false: a warning).
        inconclusive: What an inconclusive gate does (every value test passed, every blocking
            failure only for want of evidence: a model check's interval straddling the
            tolerance, neither within nor wholly beyond it; an action supported by fewer logged
            decisions than ``ope.min_action_support``): ``refuse`` (default; exit code 4) or
            ``canary``: promote the candidate as a canary only, when ``serve.rollout.enabled``
            and a champion exists to compare it with, so the staged rollout's always-valid
            test becomes the evidence (recorded in the decision run and the alias reason).
            Evidence against the candidate refuses either way.
        model_error: The value tests' intervals count the calibrated world's own error, not
            only sampling noise (default): the improvement's spread across the ensemble's
            members and a bias bound from the model check, the larger of the world's relative
            error on the logging policy's value times the two policies' model-based values
            and the per-action bound (each action's checked error weighted by the value each
            policy draws from it), see docs/ope.md, *The bias bound*. A value test that
            passes on sampling noise alone and fails only through the world's error is
            inconclusive (exit 4), not evidence against.
            ``false``: sampling noise only (the intervals before this option existed).
    """

    confidence: float = 0.95
    min_sim_improvement: float = 0.0
    min_ope_improvement: float = 0.0
    ope_estimator: str = "lt_dr"
    require_overlap: bool = True
    model_check_tolerance: float = 0.1
    model_check_strict: bool = True
    model_check_min_action_share: float = 0.05
    model_check_outcome_weeks: int = 2
    require_model_check: bool = True
    require_model_free: bool = True
    inconclusive: str = "refuse"
    model_error: bool = True

    def __post_init__(self) -> None:
        if self.inconclusive not in INCONCLUSIVE_CHOICES:
            raise ConfigError(
                f"gate.inconclusive must be one of {list(INCONCLUSIVE_CHOICES)}, got "
                f"{self.inconclusive!r}"
            )
        if not 0.0 < self.confidence < 1.0:
            raise ConfigError(f"gate.confidence must be in (0, 1), got {self.confidence}")
        if not 0.0 < self.model_check_tolerance < 1.0:
            raise ConfigError(
                f"gate.model_check_tolerance must be in (0, 1), got {self.model_check_tolerance}"
            )
        if not 0.0 < self.model_check_min_action_share <= 1.0:
            raise ConfigError(
                "gate.model_check_min_action_share must be in (0, 1], got "
                f"{self.model_check_min_action_share}"
            )
        if self.model_check_outcome_weeks < 1:
            raise ConfigError(
                f"gate.model_check_outcome_weeks must be >= 1, got {self.model_check_outcome_weeks}"
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
        test: ``simulation``, ``ope``, ``model_check`` or ``model_free``.
        source: Where (world name or ensemble member, estimator, replayed weeks, action).
        candidate, champion: Values per customer, currency (``model_check``: the model's
            prediction and what the logs realised; ``model_free``: the importance-weighted
            value of the candidate and the model's value of the same weeks).
        improvement: The estimate: ``candidate - champion`` (``model_check``: the relative
            gap ``(predicted - realised) / |realised|``; ``model_free``: the
            importance-weighted value).
        lower_bound: One-sided lower bound of the improvement, the lower end of its
            two-sided interval at ``2 * confidence - 1`` (``model_check``: the lower end of
            the gap's interval; ``model_free``: of the importance-weighted value's).
        threshold: The lower bound must exceed it (``model_check``: the gap's tolerance;
            ``model_free``: the model's value).
        passed: Whether it did (and, for OPE, whether the overlap diagnostics passed).
        note: Why it failed, empty when it passed.
        blocking: Whether a failure refuses the promotion (else it is a warning).
        ci_high: Upper end of the estimate's interval (NaN when not measured).
        baseline: What the candidate was judged against (``champion_v3``, ``today's
            practice``), empty for the model's checks.
        criterion: The pass rule in words, with its numbers (``lower bound > 0``).
        relative: Whether the estimate is a relative gap (else currency per customer).
        key: Metric-name part of the row (``simulation_member0``, ``model_check_<action>``).
        inconclusive: The failure is for want of evidence, not evidence against: a model
            check whose interval straddles the tolerance (neither within it nor wholly
            beyond), an action checked on no logged decision, overlap failing only on actions
            supported by too few logged decisions. Never set on a passed row or a failed value
            bound.
        more_data: How much more data would settle it (empty when not inconclusive), e.g.
            ``about 5.4 times the 1,793 logged customers``.
        sampling_low, sampling_high: A value test's interval from sampling noise alone (the
            simulated customers, or the bootstrap over logged customers): the gate's interval
            before the world's own error is counted (NaN for the model's tests).
        members_sd: Standard deviation of the improvement across the calibrated ensemble's
            members, currency per customer (NaN when fewer than two were measured).
        bias: Bound on the world's bias of the improvement, currency per customer:
            ``relative_error * (|candidate| + |champion|)`` of the model-based values (NaN when
            not measured).
        relative_error: The model check's bound on the world's relative error, ``max(|gap_low|,
            |gap_high|)`` of the logging policy's value (NaN when not measured).
        bias_logging: The bias bound from the logging policy's check alone,
            ``relative_error * (|candidate| + |champion|)`` (the bound before the per-action
            part existed; NaN when not measured).
        bias_actions: The bias bound from the per-action checks, ``candidate_error *
            |candidate| + champion_error * |champion|`` (NaN when not measured); ``bias`` is
            the larger of the two (:func:`bias_bound`).
        candidate_error, champion_error: Each policy's bound on the world's relative error
            of its value from the per-action checks, weighted by the value it draws from each
            action (:meth:`WorldError.policy_error`; NaN when not measured).
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
    ci_high: float = float("nan")
    baseline: str = ""
    criterion: str = ""
    relative: bool = False
    key: str = ""
    inconclusive: bool = False
    more_data: str = ""
    sampling_low: float = float("nan")
    sampling_high: float = float("nan")
    members_sd: float = float("nan")
    bias: float = float("nan")
    relative_error: float = float("nan")
    bias_logging: float = float("nan")
    bias_actions: float = float("nan")
    candidate_error: float = float("nan")
    champion_error: float = float("nan")

    @property
    def components(self) -> str:
        """The parts of a value test's interval in words (empty for the model's tests):
        ``sampling -39.34 to -18.36; members SD 3.10; world bias ±212.4 (model check ±13.0 %)``."""
        if not np.isfinite(self.sampling_low):
            return ""
        parts = [f"sampling {self.sampling_low:+,.2f} to {self.sampling_high:+,.2f}"]
        if np.isfinite(self.members_sd):
            parts.append(f"members SD {self.members_sd:,.2f}")
        if np.isfinite(self.bias):
            parts.append(f"world bias ±{self.bias:,.2f} ({self.bias_source})")
        return "; ".join(parts)

    @property
    def bias_source(self) -> str:
        """Where the bias bound comes from in words: ``model check ±13.0 %`` (the logging
        policy's check), with the per-action bounds of both policies when measured
        (``per action: candidate ±24.1 %, baseline ±9.0 %``), the larger part marked."""
        logging = f"model check ±{100 * self.relative_error:.1f} %"
        if not np.isfinite(self.bias_actions):
            return logging
        actions = (
            f"per action: candidate ±{100 * self.candidate_error:.1f} %, baseline "
            f"±{100 * self.champion_error:.1f} %"
        )
        if np.isfinite(self.bias_logging) and self.bias_logging >= self.bias_actions:
            return f"{logging}, the larger; {actions}"
        return f"{actions}, the larger; {logging}"

    @property
    def metric_key(self) -> str:
        """The row's part of ``gate/`` metric names (``key``, else ``test``)."""
        return metric_slug(self.key or self.test)


def metric_slug(text: str) -> str:
    """``text`` as a part of a metric name: letters, digits, ``_``, ``-`` and ``.``."""
    return re.sub(r"[^0-9A-Za-z_.-]+", "_", text).strip("_") or "_"


def model_error_interval(
    estimate: float, low: float, high: float, members_sd: float, bias: float, confidence: float
) -> tuple[float, float]:
    """``(low, high)`` of an improvement's interval with the world's own error counted: per
    side, the sampling half-width (``estimate - low``, ``high - estimate``) and ``z *
    members_sd`` (the calibration's estimation error, as the spread of the improvement across
    bootstrap members) in quadrature — independent errors —, then the ``bias`` bound added —
    a systematic error, the bias-aware interval of Armstrong & Kolesár (2020, "Simple and
    honest confidence intervals in nonparametric regression"): its lower end is a one-sided
    bound at ``confidence`` whatever the bias within ``+-bias``. NaN parts count 0, so with no
    members and no bias it is the sampling interval itself."""
    z = float(norm.ppf(confidence))
    spread = z * members_sd if np.isfinite(members_sd) else 0.0
    extra = bias if np.isfinite(bias) else 0.0
    return (
        estimate - math.hypot(estimate - low, spread) - extra,
        estimate + math.hypot(high - estimate, spread) + extra,
    )


@dataclass(frozen=True)
class WorldError:
    """The model check's bounds on the calibrated world's relative error: what the value
    tests' bias bound is made of (docs/ope.md, *The bias bound*).

    Attributes:
        logging: ``B``, ``max(|gap_low|, |gap_high|)`` of the logging policy's value over the
            replayed weeks (:attr:`~journeyopt.evaluation.ope.model_check.ModelCheck.
            error_bound`); NaN when not measured.
        replicates: (n_boot, A) the relative gap ``g_a`` of each action's outcome over the
            logged decisions that took it, propensity-weighted, on each customer resample
            (:attr:`~journeyopt.evaluation.ope.model_check.ActionCheck.replicates`, the same
            resamples for every action), in the actions' index order; a NaN column for an
            action the logs cannot check (no decision or no reward logged); None when not
            measured.
        confidence: Two-sided confidence of the intervals (the model check's).
    """

    logging: float = float("nan")
    replicates: Float | None = field(default=None, repr=False, compare=False)
    confidence: float = 0.9

    def __post_init__(self) -> None:
        if np.isfinite(self.logging) and self.logging < 0:
            raise ValueError(f"logging must be >= 0, got {self.logging}")
        if self.replicates is not None and self.replicates.ndim != 2:
            raise ValueError(f"replicates must be (n_boot, A), got {self.replicates.shape}")
        if not 0.0 < self.confidence < 1.0:
            raise ValueError(f"confidence must be in (0, 1), got {self.confidence}")

    @classmethod
    def of(cls, logging: float, checks: Sequence[ActionCheck], confidence: float) -> WorldError:
        """From the logging policy's bound and a check of every action (index order)."""
        reps = [c.replicates for c in checks]
        n_boot = next((len(r) for r in reps if r is not None), 0)
        if n_boot == 0:
            return cls(logging, None, confidence)
        columns = [r if r is not None else np.full(n_boot, np.nan) for r in reps]
        return cls(logging, np.stack(columns, axis=1), confidence)

    def policy_error(self, action_value: Float) -> float:
        """``rho(pi)``, the bound on the world's relative error of a policy's value when it
        errs on each action's outcome by that action's relative gap: with ``U_a`` (A,) the
        policy's model-based value drawn from action ``a`` (currency per customer,
        :attr:`~journeyopt.evaluation.simulate.PolicyRun.action_value` averaged), the error is
        ``sum_a g_a U_a``; its percentile interval over the checks' paired resamples at
        ``confidence`` gives ``max(|low|, |high|)``, plus ``logging * |U_a|`` for each action
        the logs cannot check, divided by ``|sum_a U_a|``. The actions' gaps combine with
        the policy's own mix before the bound is taken, so their sampling errors partly
        cancel as they do in the check of the logging policy. NaN when not measured (or an
        unchecked action's value with no ``logging``); inf when the parts cancel to 0 but
        their error does not."""
        if self.replicates is None:
            return float("nan")
        parts = np.asarray(action_value, np.float64)
        if parts.shape != (self.replicates.shape[1],):
            raise ValueError(
                f"action_value must have shape ({self.replicates.shape[1]},), got {parts.shape}"
            )
        measured = np.isfinite(self.replicates).all(axis=0) & (parts != 0)
        unchecked = ~np.isfinite(self.replicates).all(axis=0) & (parts != 0)
        bound = 0.0
        if measured.any():
            error = self.replicates[:, measured] @ parts[measured]  # (n_boot,) currency
            alpha = 1.0 - self.confidence
            low, high = np.quantile(error, [alpha / 2, 1 - alpha / 2])
            bound = max(abs(float(low)), abs(float(high)))
        if unchecked.any():
            bound += self.logging * float(np.abs(parts[unchecked]).sum())
        total = abs(float(parts.sum()))
        if np.isnan(bound):
            return float("nan")
        if total == 0:
            return 0.0 if bound == 0 else math.inf
        return bound / total


def bias_parts(
    relative_error: float,
    candidate: float,
    champion: float,
    candidate_error: float = float("nan"),
    champion_error: float = float("nan"),
) -> tuple[float, float]:
    """``(logging, actions)``, the two bounds on the world's bias of ``candidate - champion``
    (model-based values, currency per customer), see :func:`bias_bound`; NaN where not
    measured."""
    if np.isfinite(relative_error) and relative_error < 0:
        raise ValueError(f"relative_error must be >= 0, got {relative_error}")
    logging = (
        relative_error * (abs(candidate) + abs(champion))
        if np.isfinite(relative_error)
        else float("nan")
    )
    measured = not (np.isnan(candidate_error) or np.isnan(champion_error))
    actions = (
        candidate_error * abs(candidate) + champion_error * abs(champion)
        if measured
        else float("nan")
    )
    return logging, actions


def bias_bound(
    relative_error: float,
    candidate: float,
    champion: float,
    candidate_error: float = float("nan"),
    champion_error: float = float("nan"),
) -> float:
    """The world's largest bias of ``candidate - champion`` (model-based values, currency per
    customer; docs/ope.md, *The bias bound*): the larger of

    - ``relative_error * (|candidate| + |champion|)``: the world errs on each policy's value
      by at most ``relative_error``, the model check's bound on the logging policy's value
      (the two errors may have opposite signs), and
    - ``candidate_error * |candidate| + champion_error * |champion|``: it errs on each
      action's outcome by at most that action's bound, each policy's error weighted by the
      value it draws from each action (:meth:`WorldError.policy_error`): a candidate leaning
      on an action the world gets wrong inherits that action's error, not today's mix's.

    The larger holds when either assumption does. NaN parts are left out; NaN when neither was
    measured."""
    parts = bias_parts(relative_error, candidate, champion, candidate_error, champion_error)
    return larger_bias(parts)


def larger_bias(parts: tuple[float, float]) -> float:
    """The bias bound from :func:`bias_parts`' ``(logging, actions)``: the larger measured
    part; NaN when neither was measured."""
    if np.isnan(parts[0]) and np.isnan(parts[1]):
        return float("nan")
    return float(np.nanmax(parts))


def value_verdict(low: float, sampling_low: float, threshold: float) -> tuple[bool, bool, str]:
    """``(passed, inconclusive, note)`` of a value test: it passes when the lower bound with the
    world's error counted exceeds ``threshold``; a failure is evidence against when sampling
    alone already puts the bound at or below it (the rule before the world's error was
    counted), and inconclusive when only the world's error does (a world that cannot tell)."""
    if low > threshold:
        return True, False, ""
    if sampling_low > threshold:
        return (
            False,
            True,
            (
                f"lower bound {low:.3f} is not above {threshold:g} once the world's own error is "
                f"counted (sampling alone: {sampling_low:.3f})"
            ),
        )
    return False, False, f"lower bound {low:.3f} is not above {threshold:g}"


def world_error_more_data(e: Evidence) -> str:
    """What would settle a value test made inconclusive by the world's own error."""
    parts = []
    if np.isfinite(e.members_sd):
        parts.append(f"the members disagree (SD {e.members_sd:,.2f})")
    if np.isfinite(e.bias):
        parts.append(f"the model check allows a bias of ±{e.bias:,.2f} ({e.bias_source})")
    return (
        "; ".join(parts) + ": a world shown closer on the logs (more logged customers narrow "
        "the model check) or a larger margin"
    )


def simulation_evidence(
    source: str,
    candidate: Float,
    champion: Float,
    confidence: float,
    threshold: float,
    baseline: str = "",
    blocking: bool = True,
    key: str = "simulation",
    relative_error: float = float("nan"),
    model_error: bool = True,
    candidate_error: float = float("nan"),
    champion_error: float = float("nan"),
) -> Evidence:
    """The simulation test from per-customer values of both policies, (N,) in one world or
    (M, N) in each of ``M`` ensemble members (same customers, common random numbers).

    The estimate is the members' mean improvement; its sampling interval ``mean +- z * se``
    with ``se**2`` the members' mean of ``var_k / N`` (the customers' noise, the same in every
    member); the interval then counts the world's own error (:func:`model_error_interval`):
    the members' standard deviation of the improvement and, with ``relative_error`` (the model
    check's bound) and each policy's per-action bound (``candidate_error``,
    ``champion_error``: :meth:`WorldError.policy_error`), the bias bound :func:`bias_bound` on
    the members' mean values. With one world (or identical members) and no ``relative_error``
    it is the sampling interval; ``model_error=False`` (``gate.model_error=false``) keeps it
    to that whatever the members."""
    cand, champ = np.atleast_2d(candidate), np.atleast_2d(champion)
    diff = cand - champ
    z = float(norm.ppf(confidence))
    per_member = diff.mean(axis=1)
    mean = float(per_member.mean())
    se = float(np.sqrt((diff.var(axis=1, ddof=1) / diff.shape[1]).mean()))
    measured = model_error and len(per_member) > 1
    members_sd = float(per_member.std(ddof=1)) if measured else float("nan")
    error = relative_error if model_error else float("nan")
    errors = (candidate_error, champion_error) if model_error else (float("nan"),) * 2
    parts = bias_parts(error, float(cand.mean()), float(champ.mean()), *errors)
    bias = larger_bias(parts)
    low, high = model_error_interval(
        mean, mean - z * se, mean + z * se, members_sd, bias, confidence
    )
    passed, inconclusive, note = value_verdict(low, mean - z * se, threshold)
    evidence = Evidence(
        "simulation",
        source,
        float(cand.mean()),
        float(champ.mean()),
        mean,
        low,
        threshold,
        passed,
        note,
        blocking,
        ci_high=high,
        baseline=baseline,
        criterion=f"lower bound > {threshold:g}",
        key=key,
        inconclusive=inconclusive,
        sampling_low=mean - z * se,
        sampling_high=mean + z * se,
        members_sd=members_sd,
        bias=bias,
        relative_error=error,
        bias_logging=parts[0],
        bias_actions=parts[1],
        candidate_error=errors[0],
        champion_error=errors[1],
    )
    if inconclusive:
        return replace(evidence, more_data=world_error_more_data(evidence))
    return evidence


def data_factor(gap: float, low: float, high: float, tolerance: float) -> float:
    """How many times the current data an interval ``[low, high]`` around ``gap`` needs to lie
    within ``+-tolerance``, its half-widths shrinking like ``1 / sqrt(data)`` around the same
    estimate: ``1 / f**2`` with ``f = min((tol - gap) / (high - gap), (tol + gap) / (gap -
    low))``; 1 when it lies within already, inf when ``gap`` itself is not inside."""
    if not abs(gap) < tolerance:
        return math.inf
    upper, lower = max(high - gap, 0.0), max(gap - low, 0.0)
    shrink = min(
        (tolerance - gap) / upper if upper > 0 else math.inf,
        (tolerance + gap) / lower if lower > 0 else math.inf,
    )
    return 1.0 if shrink >= 1.0 else 1.0 / shrink**2


def _gap_verdict(check: ModelCheck | ActionCheck, units: int, unit_name: str) -> tuple[bool, str]:
    """``(inconclusive, more_data)`` of a failed strict model check: inconclusive when its
    interval straddles the tolerance (neither within ``+-tolerance`` nor wholly beyond it),
    or nothing was logged to check it on; evidence against when wholly beyond."""
    if check.passed or not check.strict:
        return False, ""
    if units == 0:
        return True, f"no {unit_name} to check it on"
    tol = check.tolerance
    if not all(np.isfinite([check.gap, check.gap_low, check.gap_high])):
        return False, ""
    if check.gap_low > tol or check.gap_high < -tol:  # shown wrong
        return False, ""
    factor = data_factor(check.gap, check.gap_low, check.gap_high, tol)
    if not np.isfinite(factor):
        return True, (
            f"its estimate {100 * check.gap:+.1f} % lies beyond ±{100 * tol:g} %: more "
            f"{unit_name} at this estimate would show the model wrong, not right"
        )
    return True, (
        f"about {factor:.1f} times the {units:,} {unit_name} ({math.ceil(factor * units):,}) "
        f"for the interval to fit within ±{100 * check.tolerance:g} % at this estimate"
    )


def model_check_evidence(
    check: ModelCheck | ActionCheck,
    source: str,
    blocking: bool,
    key: str = "model_check",
    units: int = -1,
    unit_name: str = "logged customers",
) -> Evidence:
    """A model check as a test of the gate — the logging policy's value
    (:func:`journeyopt.evaluation.ope.model_check.check_model`) or one action's outcome
    (:func:`~journeyopt.evaluation.ope.model_check.check_actions`): the model's and the
    realised value, the relative gap and its interval, the tolerance; recorded under ``key``.

    A failed strict check is inconclusive when the gap's interval straddles the tolerance
    (neither within it nor wholly beyond: the data cannot tell), with the multiple of
    ``units`` (the ``unit_name`` behind the interval: logged customers, or the action's logged
    decisions; -1: the check's own, its decisions or its customers) that would narrow it to
    fit at the same estimate; evidence against when the whole interval lies beyond the
    tolerance."""
    if units < 0:
        from journeyopt.evaluation.ope.model_check import ActionCheck  # as TYPE_CHECKING above

        if isinstance(check, ActionCheck):
            units, unit_name = check.decisions, f"logged decisions of {check.action!r}"
        else:  # the logging policy's check: the customers of its "all" row
            units = int(check.table["customers"].iloc[0]) if not check.table.empty else 0
    inconclusive, more_data = _gap_verdict(check, units, unit_name)
    return Evidence(
        "model_check",
        source,
        check.predicted,
        check.realised,
        check.gap,
        check.gap_low,
        check.tolerance,
        check.passed,
        check.reason,
        blocking,
        ci_high=check.gap_high,
        criterion=_gap_criterion(check.tolerance, check.strict),
        relative=True,
        key=key,
        inconclusive=inconclusive,
        more_data=more_data,
    )


def _gap_criterion(tolerance: float, strict: bool) -> str:
    within = f"±{100 * tolerance:g} %"
    return f"CI within {within}" if strict else f"CI not wholly beyond {within} (lax)"


def support_shortfall(
    diagnostics: Diagnostics, min_support: int, action_names: Sequence[str]
) -> str:
    """How many more logged decisions would let overlap diagnostics pass when they failed
    only because actions the target uses were supported by fewer than ``min_support`` logged
    decisions (e.g. ``6 more logged decisions of 'call' where the candidate takes it (24 of
    30; about 1.3 times the logs)``); empty when they passed or failed for another reason
    too (an effective sample size share, a weight mean: more data of the same exploration
    does not mend them)."""
    actions = diagnostics.actions
    if diagnostics.passed or actions.empty:
        return ""
    supporting = actions["supporting"].to_numpy(np.int64)
    short = np.flatnonzero(actions["judged"].to_numpy(bool) & (supporting < min_support))
    if len(short) == 0 or len(short) != len(diagnostics.reasons):
        return ""
    parts = []
    for a in short:
        have = int(supporting[a])
        name = action_names[int(a)] if a < len(action_names) else str(a)
        times = f"about {min_support / have:.1f} times the logs" if have else "none logged yet"
        parts.append(
            f"{min_support - have} more logged decisions of {name!r} where the candidate takes "
            f"it ({have} of {min_support}; {times})"
        )
    return "; ".join(parts)


def model_free_evidence(
    check: ModelFreeCheck,
    source: str,
    blocking: bool,
    min_support: int = 0,
    action_names: Sequence[str] = (),
) -> Evidence:
    """The model-free evidence (:func:`journeyopt.evaluation.ope.model_free.check_model_free`)
    as a test of the gate: the candidate's importance-weighted value over the supported
    window and its interval against the model's value of the same weeks. Without a supported
    window it is inconclusive when only actions' support (below ``min_support`` logged
    decisions, see :func:`support_shortfall`) was missing."""
    note = "" if check.passed else check.reason
    if check.importance is None or check.model is None:
        nan = float("nan")
        more = support_shortfall(check.window.diagnostics, min_support, action_names)
        return Evidence(
            "model_free", source, nan, nan, nan, nan, nan, False, note, blocking,
            criterion="a window the overlap diagnostics pass", key="model_free",
            inconclusive=bool(more), more_data=more,
        )  # fmt: skip
    model = check.model
    return Evidence(
        "model_free",
        source,
        check.importance.value,
        model.value,
        check.importance.value,
        check.importance.ci_low,
        model.value,
        check.passed,
        note,
        blocking,
        ci_high=check.importance.ci_high,
        criterion=(
            f"CI overlaps the model's {model.value:,.2f} ({model.ci_low:,.2f} to "
            f"{model.ci_high:,.2f})"
        ),
        key="model_free",
    )


@dataclass(frozen=True)
class Decision:
    """The gate's decision.

    Attributes:
        promote: Whether the ``champion`` alias moves: every blocking test passed, or
            (``canary_only``) the gate was inconclusive and ``gate.inconclusive=canary``.
        evidence: The tests.
        reasons: One sentence per failed blocking test (empty when every one passed).
        warnings: One sentence per failed test that does not block.
        canary_only: Promoted on an inconclusive gate as a canary only: the staged rollout's
            always-valid test is the evidence.
    """

    promote: bool
    evidence: tuple[Evidence, ...]
    reasons: tuple[str, ...]
    warnings: tuple[str, ...] = ()
    canary_only: bool = False

    @property
    def inconclusive(self) -> bool:
        """Some blocking test failed, each only for want of evidence
        (:attr:`Evidence.inconclusive`), and every value test (simulation, OPE bound) passed."""
        failed = [e for e in self.evidence if e.blocking and not e.passed]
        values = [e for e in self.evidence if e.blocking and e.test in VALUE_TESTS]
        return (
            bool(failed)
            and all(e.inconclusive for e in failed)
            and all(e.passed or e.inconclusive for e in values)
        )

    @property
    def verdict(self) -> str:
        """``promoted``, ``canary (inconclusive)``, ``inconclusive`` (refused for want of
        evidence) or ``refused`` (evidence against)."""
        if self.canary_only:
            return "canary (inconclusive)"
        if self.promote:
            return "promoted"
        return "inconclusive" if self.inconclusive else "refused"

    @property
    def more_data(self) -> tuple[str, ...]:
        """Per inconclusive blocking test, how much more data would settle it."""
        return tuple(
            f"{e.test} ({e.source}): {e.more_data}"
            for e in self.evidence
            if e.blocking and not e.passed and e.inconclusive and e.more_data
        )

    @property
    def table(self) -> pd.DataFrame:
        """The evidence as a table, one row per test."""
        return pd.DataFrame.from_records([vars(e) for e in self.evidence])

    def metrics(self) -> dict[str, float]:
        """The decision as ``gate/`` metrics: per row ``gate/<key>_estimate``, ``_ci_low``,
        ``_ci_high``, ``_threshold``, ``_passed``, and ``gate/promoted`` (NaN values, of a
        test that could not be measured, are left out)."""
        out: dict[str, float] = {
            "gate/promoted": float(self.promote),
            "gate/inconclusive": float(self.inconclusive),
            "gate/canary_only": float(self.canary_only),
        }
        for e in self.evidence:
            values = {
                "estimate": e.improvement,
                "ci_low": e.lower_bound,
                "ci_high": e.ci_high,
                "threshold": e.threshold,
                "passed": float(e.passed),
                "sampling_ci_low": e.sampling_low,
                "sampling_ci_high": e.sampling_high,
                "members_sd": e.members_sd,
                "bias": e.bias,
                "model_check_bound": e.relative_error,
                "bias_logging": e.bias_logging,
                "bias_actions": e.bias_actions,
                "candidate_model_error": e.candidate_error,
                "baseline_model_error": e.champion_error,
            }
            for name, value in values.items():
                if np.isfinite(value):
                    out[f"gate/{e.metric_key}_{name}"] = float(value)
        return out


def decide(
    evidence: Sequence[Evidence], inconclusive: str = "refuse", canary_possible: bool = False
) -> Decision:
    """Promote only if every blocking test passed — or, when the gate is inconclusive
    (:attr:`Decision.inconclusive`), ``inconclusive`` is ``canary`` and ``canary_possible``
    (``serve.rollout.enabled`` and a champion to compare with), as a canary only. Reasons
    name each failed blocking test (inconclusive ones say so), warnings each failed test that
    does not block.

    Raises:
        ValueError: No evidence, or ``inconclusive`` not one of :data:`INCONCLUSIVE_CHOICES`.
    """
    if not evidence:
        raise ValueError("the gate needs evidence")
    if inconclusive not in INCONCLUSIVE_CHOICES:
        raise ValueError(
            f"inconclusive must be one of {INCONCLUSIVE_CHOICES}, got {inconclusive!r}"
        )
    failed = [e for e in evidence if not e.passed and e.blocking]
    warned = [e for e in evidence if not e.passed and not e.blocking]
    reasons = tuple(
        f"{e.test} test {'inconclusive' if e.inconclusive else 'failed'} ({e.source}): {e.note}"
        for e in failed
    )
    warnings = tuple(f"{e.test} test failed, not blocking ({e.source}): {e.note}" for e in warned)
    decision = Decision(not failed, tuple(evidence), reasons, warnings)
    if decision.inconclusive and inconclusive == "canary" and canary_possible:
        return replace(decision, promote=True, canary_only=True)
    return decision


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
