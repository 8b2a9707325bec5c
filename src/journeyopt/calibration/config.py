"""Configuration of a calibration: the ``calibration`` config group
(``configs/calibration/*.yaml``, schema :class:`CalibrationConfig`) and the job schema of
``configs/calibrate.yaml`` (:class:`CalibrateConfig`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from journeyopt.data.source import SourceConfig
from journeyopt.errors import ConfigError
from journeyopt.panel.config import PanelConfig
from journeyopt.sim.config import RulesConfig, StaffRulesConfig
from journeyopt.sim.world import PATTERN_WEEKS
from journeyopt.tracking.config import TrackingConfig
from journeyopt.tracking.config import register_configs as register_tracking


@dataclass
class CapsConfig:
    """Caps of the calibrated world's discrete state (see
    :class:`journeyopt.sim.world.DiscreteSpec`; weeks or counts, each >= 2; tenure 0 = tenure
    not in the state; ``contact_pattern_weeks`` 0 = no contact pattern, else 2..6 weeks;
    ``contact_pattern_by_channel``: the pattern records each week's contact channel (what
    contact rules counting some channels only need; the calibration adds it when the rules
    do); ``last_action``: the last contact's action is part of the state; ``gap_cap_weeks`` 0 = no
    previous gap between conversions, else ``2..recency_cap_weeks`` with ``gap_cap_weeks - 1``
    a multiple of ``gap_bin_weeks``, the width of its bins; ``rate_levels`` 0 = off, else
    ``1..conversions_cap``: the response models read the customer's own purchase rate as
    smooth terms of the lifetime conversions and tenure, with per-count columns up to this
    count; no new state; ``lasting_actions``: the last-action component remembers the last
    contact of these actions only, other contacts leave it as it is (empty = the last contact's
    action); ``recency_bins_weeks`` 0 = the recency cap, else ``2..recency_cap_weeks``: the
    response models' own recency columns stop there, longer recencies enter through smooth
    terms only, and the recency cap may then exceed the fitted history). With
    ``calibration.summary.select`` the pattern, last action, lasting actions,
    gap and purchase rate are chosen by the data instead.
    """

    REQUIRED_HINTS: ClassVar[Mapping[str, str]] = {
        "recency_cap_weeks": "weeks since the last conversion are exact below this cap, about "
        "the weeks after which a customer counts as lapsed (panel.lapse_weeks + 1); or list "
        "candidates in calibration.summary.recency_caps with summary.select",
        "conversions_cap": "lifetime conversions are exact below this cap (e.g. 3 when few "
        "customers buy more than twice); or list candidates in "
        "calibration.summary.conversions_caps with summary.select",
        "contact_cap_weeks": "weeks since the last contact are exact below this cap: a little "
        "longer than a contact's effect lasts (e.g. panel.fatigue_weeks + 1)",
        "engagement_cap_weeks": "weeks since the last engagement are exact below this cap: a "
        "little longer than an open or a click still says the customer is interested",
    }
    """What to give for each required cap: the recency, conversions, contact and engagement
    caps depend on how often the business's customers buy and are contacted (the message of
    a config without one)."""

    recency_cap_weeks: int
    conversions_cap: int
    contact_cap_weeks: int
    engagement_cap_weeks: int
    tenure_cap_weeks: int = 0
    contact_pattern_weeks: int = 0
    last_action: bool = False
    gap_cap_weeks: int = 0
    gap_bin_weeks: int = 1
    rate_levels: int = 0
    lasting_actions: list[str] = field(default_factory=list)
    recency_bins_weeks: int = 0
    contact_pattern_by_channel: bool = False

    def __post_init__(self) -> None:
        if self.lasting_actions and not self.last_action:
            raise ConfigError("calibration.caps.lasting_actions needs caps.last_action: true")
        if self.contact_pattern_by_channel and not self.contact_pattern_weeks:
            raise ConfigError(
                "calibration.caps.contact_pattern_by_channel needs caps.contact_pattern_weeks 2..6"
            )
        for name in (
            "recency_cap_weeks",
            "conversions_cap",
            "contact_cap_weeks",
            "engagement_cap_weeks",
        ):
            if getattr(self, name) < 2:
                raise ConfigError(f"calibration.caps.{name} must be >= 2")
        if self.tenure_cap_weeks < 0 or self.tenure_cap_weeks == 1:
            raise ConfigError("calibration.caps.tenure_cap_weeks must be 0 (off) or >= 2")
        if self.contact_pattern_weeks not in PATTERN_WEEKS:
            raise ConfigError("calibration.caps.contact_pattern_weeks must be 0 (off) or 2..6")
        if self.gap_cap_weeks < 0 or self.gap_cap_weeks == 1:
            raise ConfigError("calibration.caps.gap_cap_weeks must be 0 (off) or >= 2")
        if self.gap_bin_weeks < 1:
            raise ConfigError("calibration.caps.gap_bin_weeks must be >= 1")
        if self.gap_cap_weeks > self.recency_cap_weeks:
            raise ConfigError("calibration.caps.gap_cap_weeks must be <= recency_cap_weeks")
        if self.gap_cap_weeks and (self.gap_cap_weeks - 1) % self.gap_bin_weeks:
            raise ConfigError(
                "calibration.caps.gap_cap_weeks - 1 must be a multiple of gap_bin_weeks"
            )


@dataclass
class SummaryConfig:
    """Which discrete state summary the calibrated world gets: chosen by the data among a few
    candidates (``calibration.summary``; docs/calibration.md).

    Each candidate is the caps of ``calibration.caps`` with one recency, conversions and tenure
    cap of the lists below (each empty: the configured cap only), one contact-pattern length
    and the last action on or off; the response models of each are fitted and scored on the
    split that chooses the penalties (by default every customer's last ``forward_weeks`` fitted
    weeks scored, the weeks before fitted), with the confounding weights the fit uses. The
    chosen one is the smallest (fewest states) whose held-out log-likelihood is within
    ``tolerance_se`` standard errors of the best.

    Attributes:
        select: Choose among the candidates; off = the caps as given.
        recency_caps: Candidate recency caps, weeks (each >= 2; a cap above the fitted
            history is lowered to it, as ``calibration.caps``'s); empty = the configured cap.
        conversions_caps: Candidate lifetime-conversions caps (each >= 2); empty = the
            configured cap.
        tenure_caps: Candidate tenure caps, weeks (0 = no tenure, else >= 2); empty = the
            configured cap. Caps above the fitted history tie on held-out customers of the
            same weeks (no fitted week reaches them), so the smaller wins.
        pattern_weeks: Candidate contact-pattern lengths, weeks (0 = no pattern; else 2..6).
        pattern_by_channel: Candidate settings of a pattern's weeks: a bit (contacted or
            not, ``False``) or the contact's channel (``True``,
            :attr:`~journeyopt.sim.world.DiscreteSpec.contact_pattern_by_channel`). The
            calibration adds ``True`` when a contact rule counts some channels only over
            more than one week: only such a pattern lets plans see it.
        last_action: Candidate settings of the last-action component.
        gap_caps: Candidate caps of the previous gap between conversions, weeks (0 = no gap,
            else >= 2; bins of ``calibration.caps.gap_bin_weeks``; a cap above a candidate's
            recency cap is lowered to it); empty = the configured ``caps.gap_cap_weeks``.
        rate_levels: Candidate settings of the purchase-rate terms (0 = off, else >= 1;
            :attr:`~journeyopt.sim.world.DiscreteSpec.rate_levels`, lowered to a candidate's
            conversions cap; same states: off is tried first and so wins a tie in states).
        recency_bins: Candidate ends of the response models' own recency columns, weeks (0 =
            the candidate's recency cap, else >= 2;
            :attr:`~journeyopt.sim.world.DiscreteSpec.recency_bins_weeks`; at or above a
            candidate's recency cap the same as 0; lowered to the fitted history, and then the
            recency cap is not); empty = the configured ``caps.recency_bins_weeks``.
        lasting_max_actions: 0 (the default): the last action is the last contact's. ``m >
            0``: each candidate with the last action also comes with the last *lasting*
            action for every set ``L`` of 1..m of the catalogue's contacts (fewer than all):
            a memory only a contact of ``L`` replaces, other contacts leave it
            (:attr:`~journeyopt.sim.world.DiscreteSpec.lasting_actions`); the data choose
            ``L`` by held-out likelihood like every component. The number of candidates grows
            with the subsets (4 contacts, ``m = 2``: 10 more per last-action candidate).
        forward_weeks: ``V > 0`` (the default 13, a quarter): every choice by held-out
            likelihood (the point fit's penalties, the response family, the value tiers and
            these candidates) is scored on every customer's last ``V`` fitted weeks, the models
            fitted on the weeks before them (forward in time: how a model extrapolates to
            later weeks and older customers, which a forecast needs and a same-weeks score
            cannot see; the split does not depend on the seed). At most half the fitted weeks
            are scored (:func:`~journeyopt.calibration.scoring.forward_window`). ``0``: score
            on the seed's random validation customers (``validation_share``) over the same
            weeks as the fitted ones: the choice made before forward scoring was the default
            (reproduces worlds calibrated then), and more power on a short log of a
            business whose dynamics do not drift (fitted on every week, scored on other
            customers: a 36-week synthetic log's true 4-week contact pattern scores 4.5 SE
            better on validation customers, 0.8 SE forward over 13 weeks, so the forward
            selection leaves it out). A seasonal business with less than a year fitted
            before the window scores its window's weeks of year unseen (their season
            columns stay 0).
        tolerance_se: Standard errors (over validation customers) a smaller summary may trail
            the best by and still be chosen.
        max_states: Candidates with more discrete states are not considered (the exact DP
            and the response tables grow with the state count).
    """

    select: bool = False
    recency_caps: list[int] = field(default_factory=list)
    conversions_caps: list[int] = field(default_factory=list)
    tenure_caps: list[int] = field(default_factory=list)
    pattern_weeks: list[int] = field(default_factory=lambda: [0, 4])
    pattern_by_channel: list[bool] = field(default_factory=lambda: [False])
    last_action: list[bool] = field(default_factory=lambda: [False, True])
    gap_caps: list[int] = field(default_factory=list)
    rate_levels: list[int] = field(default_factory=lambda: [0])
    recency_bins: list[int] = field(default_factory=list)
    lasting_max_actions: int = 0
    forward_weeks: int = 13
    tolerance_se: float = 1.0
    max_states: int = 2_000_000

    def __post_init__(self) -> None:
        for name in ("recency_caps", "conversions_caps"):
            if any(c < 2 for c in getattr(self, name)):
                raise ConfigError(f"calibration.summary.{name} must list caps >= 2")
        if any(c < 0 or c == 1 for c in self.tenure_caps):
            raise ConfigError("calibration.summary.tenure_caps must list 0 (off) or caps >= 2")
        if any(c < 0 or c == 1 for c in self.gap_caps):
            raise ConfigError("calibration.summary.gap_caps must list 0 (off) or caps >= 2")
        if not self.pattern_weeks or any(w not in PATTERN_WEEKS for w in self.pattern_weeks):
            raise ConfigError("calibration.summary.pattern_weeks must list 0 (off) or 2..6 weeks")
        if not self.last_action:
            raise ConfigError("calibration.summary.last_action must list at least one setting")
        if not self.pattern_by_channel:
            raise ConfigError(
                "calibration.summary.pattern_by_channel must list at least one setting"
            )
        if any(b < 0 or b == 1 for b in self.recency_bins):
            raise ConfigError(
                "calibration.summary.recency_bins must list 0 (the recency cap) or weeks >= 2"
            )
        if not self.rate_levels or any(v < 0 for v in self.rate_levels):
            raise ConfigError("calibration.summary.rate_levels must list 0 (off) or counts >= 1")
        if self.lasting_max_actions < 0:
            raise ConfigError("calibration.summary.lasting_max_actions must be >= 0 (0: off)")
        if self.forward_weeks < 0:
            raise ConfigError(
                "calibration.summary.forward_weeks must be >= 0 (0: validation customers)"
            )
        if self.tolerance_se < 0:
            raise ConfigError("calibration.summary.tolerance_se must be >= 0")
        if self.max_states < 1:
            raise ConfigError("calibration.summary.max_states must be >= 1")


RESPONSE_MODELS = ("glm", "lightgbm", "auto")


@dataclass
class LightGBMConfig:
    """The gradient-boosted correction of a binary response model
    (``calibration.response_model: lightgbm | auto``, :mod:`journeyopt.calibration.boosting`):
    LightGBM trees over the discrete state and the action, boosted from the GLM's logit. Modest
    and regularised by default; the fits are deterministic (one thread each, no sampling).

    Attributes:
        num_leaves: Leaves per tree (>= 2).
        learning_rate: Shrinkage of each tree (in (0, 1]).
        max_rounds: Most trees (>= 1); the number used is chosen by early stopping on an
            inner split of the training rows (never on the rows that score the choice against
            the GLM), split as they are (``summary.forward_weeks``: forward in time, the
            training rows' own last weeks; 0: random training customers), then kept for the
            point fit and every ensemble member.
        patience: Rounds without improvement of the inner split's log-loss that stop it (>= 1).
        inner_share: Share of the training customers in the inner split with
            ``summary.forward_weeks`` 0 (in (0, 1); forward, the inner split is the training
            rows' last weeks).
        min_data_in_leaf: Fewest aggregated (state, action, week) cells in a leaf (>= 1).
        min_sum_hessian_in_leaf: Least summed weighted ``p (1 - p)`` in a leaf (>= 0): about
            the events (successes) a leaf must rest on for a rare outcome.
        lambda_l2: L2 penalty of the leaf values (>= 0).
        max_bin: Histogram bins per feature (>= 2; the state's digits have few values).
    """

    num_leaves: int = 15
    learning_rate: float = 0.05
    max_rounds: int = 300
    patience: int = 20
    inner_share: float = 0.25
    min_data_in_leaf: int = 20
    min_sum_hessian_in_leaf: float = 5.0
    lambda_l2: float = 10.0
    max_bin: int = 63

    def __post_init__(self) -> None:
        if self.num_leaves < 2:
            raise ConfigError("calibration.lightgbm.num_leaves must be >= 2")
        if not 0.0 < self.learning_rate <= 1.0:
            raise ConfigError("calibration.lightgbm.learning_rate must be in (0, 1]")
        if self.max_rounds < 1 or self.patience < 1:
            raise ConfigError("calibration.lightgbm.max_rounds and patience must be >= 1")
        if not 0.0 < self.inner_share < 1.0:
            raise ConfigError("calibration.lightgbm.inner_share must be in (0, 1)")
        if self.min_data_in_leaf < 1:
            raise ConfigError("calibration.lightgbm.min_data_in_leaf must be >= 1")
        if self.min_sum_hessian_in_leaf < 0 or self.lambda_l2 < 0:
            raise ConfigError(
                "calibration.lightgbm.min_sum_hessian_in_leaf and lambda_l2 must be >= 0"
            )
        if self.max_bin < 2:
            raise ConfigError("calibration.lightgbm.max_bin must be >= 2")


@dataclass
class CardConfig:
    """When the fidelity card's verdict calls a world not good enough (the by-action
    calibration, the weekly tracking curve and the ensemble's spread; see
    :mod:`journeyopt.calibration.fidelity`).

    Attributes:
        action_tolerance: Largest relative gap between an action's predicted and realised
            response (conversions, revenue, opt-outs of the hold-out decisions that took it,
            propensity-weighted) the verdict accepts: a material action fails when the gap's
            whole confidence interval lies beyond ``+-action_tolerance`` (in (0, 1)).
        min_action_share: An action is material when at least this share of the hold-out's
            logged decisions took it (in (0, 1]); low, because a policy chosen with the world
            may lean on an action today's practice rarely takes (the roastery's calls: 0.9 %).
        confidence: Two-sided confidence of the by-action intervals (in (0, 1)).
        n_boot: Bootstrap replicates over customers of the by-action intervals (>= 10).
        mape_slack: The world's weekly tracking MAPE may exceed the best reference's by at
            most this (a share, 0.02 = 2 points; >= 0).
        max_ensemble_sd: Largest spread (standard deviation) across the ensemble members of
            the hold-out conversion and revenue totals' relative errors the verdict accepts (a
            share, 0.03 = 3 points; > 0); a world fails when the whole 95 % interval of the
            members' SD lies above it (more members, ``calibration.ensemble_size``, narrow
            the interval).
        ensemble: Re-simulate the hold-out with every ensemble member to measure the spread of
            every card figure (``false``: the point world only, no spread and no spread check).
        value_weeks: ``L``, weeks of the by-action value check (the world's expected
            discounted reward over the ``L`` weeks from each hold-out decision, the logging
            policy afterwards, against the realised one; the promotion gate's per-action
            model check; long enough for delayed effects to land: the roastery's calls are
            wrong by -66 % over 4 weeks, not visibly over 2); 0 = off.
        min_cell_weeks: Fitted customer-weeks below which a (discrete state, action) cell is
            thin: the world's response there is the models' extrapolation, not data (>= 1;
            30, as ``min_support``: a weekly response rate ``p`` estimated from ``n``
            customer-weeks has a relative standard error ``sqrt((1 - p) / (n p))``, 80 % at
            ``n = 30`` and ``p = 0.05``: below that the cell's own data barely constrain it).
            The card's section "Where the world extrapolates"
            (:mod:`journeyopt.calibration.extrapolation`).
        max_extrapolated_share: Largest share of the world's exact optimum's expected
            customer-weeks in thin cells the verdict accepts (in (0, 1]; 1 = no check).
    """

    action_tolerance: float = 0.2
    min_action_share: float = 0.005
    confidence: float = 0.95
    n_boot: int = 300
    mape_slack: float = 0.0
    max_ensemble_sd: float = 0.03
    ensemble: bool = True
    value_weeks: int = 4
    min_cell_weeks: int = 30
    max_extrapolated_share: float = 1.0

    def __post_init__(self) -> None:
        if self.min_cell_weeks < 1:
            raise ConfigError(
                f"calibration.card.min_cell_weeks must be >= 1 (logged customer-weeks), got "
                f"{self.min_cell_weeks}"
            )
        if not 0.0 < self.max_extrapolated_share <= 1.0:
            raise ConfigError(
                f"calibration.card.max_extrapolated_share must be in (0, 1] (1 = no check), "
                f"got {self.max_extrapolated_share}"
            )
        if self.value_weeks < 0:
            raise ConfigError("calibration.card.value_weeks must be >= 0 (0 = off)")
        if not 0.0 < self.action_tolerance < 1.0:
            raise ConfigError("calibration.card.action_tolerance must be in (0, 1)")
        if not 0.0 < self.min_action_share <= 1.0:
            raise ConfigError("calibration.card.min_action_share must be in (0, 1]")
        if not 0.0 < self.confidence < 1.0:
            raise ConfigError("calibration.card.confidence must be in (0, 1)")
        if self.n_boot < 10:
            raise ConfigError("calibration.card.n_boot must be >= 10")
        if self.mape_slack < 0.0:
            raise ConfigError("calibration.card.mape_slack must be >= 0")
        if self.max_ensemble_sd <= 0.0:
            raise ConfigError("calibration.card.max_ensemble_sd must be > 0")


@dataclass
class CalibrationConfig:
    """How a world is calibrated from logs.

    Attributes:
        name: Name of the calibrated world.
        split: ISO date: fit on the weeks starting before it, hold out the weeks from it on
            (rounded down to a Monday); empty = the last ``holdout_weeks`` weeks.
        holdout_weeks: Hold-out length when ``split`` is empty; 0 = fit on everything.
        recent_weeks: Fit only the last this many weeks before the split (0 = every logged
            week): the states still come from the whole history, only older outcomes are left
            out, for dynamics that drift with the customers' age (a young cohort's early
            repeat buying is not how it buys a year later).
        max_customers: Fit on a random sample of at most this many customers (0 = all): the
            whole log is still ingested, validated and fingerprinted, but the panel and the fits
            use the sample. The response models have a few thousand coefficients, so a sample of
            100,000 customers (millions of customer-weeks) fits them as well as millions of
            customers, in a tenth of the time and memory.
        seasonal: Model week-of-year effects (off when the logs cover less than a year and
            calendar time is confounded with the cohort's age, e.g. CDNOW).
        value_tiers: 0 = each customer's segment is the customers file's (``data`` mapping);
            ``n >= 2`` = ``n`` equal-count tiers of the customers' mean conversion value net of
            refunds (RFM's M; cut points from the values at the end of the calibration weeks,
            every customer-week's tier read from that week's own value, point-in-time:
            :func:`journeyopt.panel.segments.segment_by_value`) replace them when they score
            better on held-out likelihood by more than ``summary.tolerance_se`` standard errors
            (:mod:`journeyopt.calibration.segmentation`): tiers reveal a customer type the
            customers file does not record (e.g. bulk buyers whose orders are twice the others'
            and who respond to other contacts). The scores and cut points are on the card. Not
            with ``truth_world`` (its policy fidelity runs the truth's segments).
        behaviour_types: Candidate numbers of customer types read from behaviour (each >= 2;
            empty: none): a Gaussian mixture over each customer's log mean conversion value,
            engagement events per contact received and conversions per week of tenure, fitted
            on the customers' states at the end of the calibration weeks; every customer-week's
            type read from that week's state (point-in-time, as the scorer reads it;
            :func:`journeyopt.panel.segments.row_types`; no order value yet: the most likely
            type from the other scores). Scored like ``value_tiers``
            (:mod:`journeyopt.calibration.segmentation`): the customers file's segments, then
            the value tiers, then each number of types in increasing order replace the kept
            segmentation when better on held-out likelihood by more than
            ``summary.tolerance_se`` standard errors. Not with ``truth_world``.
        caps: Discrete state caps.
        summary: Choice of the state summary by the data (:class:`SummaryConfig`).
        response_model: Family of the conversion, engagement and opt-out models: ``glm``
            (regularised logistic GLMs on the design of :mod:`journeyopt.calibration.design`),
            ``lightgbm`` (each GLM plus gradient-boosted trees over the state and action,
            :class:`LightGBMConfig`) or ``auto`` (per model, the trees are kept only where
            they beat the GLM on the held-out log-likelihood of the scored rows
            (``summary.forward_weeks``) by more than ``summary.tolerance_se`` standard
            errors). The chosen family is tabulated over every (state, action) like the GLM,
            so the simulator, the DP optimum and off-policy evaluation read the same
            probabilities.
        lightgbm: The trees' settings (:class:`LightGBMConfig`).
        c_grid: Candidate inverse L2 strengths of the logistic models.
        alpha_grid: Candidate L2 strengths of the value model.
        action_penalty: Candidate factors (> 0) on the penalty of the action effects'
            interactions with the state (per segment, fatigue, lifecycle, recent engagement,
            contact pattern, purchase gap, and the last contact's action x the weeks since
            it; the actions' main effects keep their light penalty) in each binary model,
            chosen after its ``C``, at that ``C``, by the held-out log-likelihood with every
            action carrying the same total weight (the policies a world compares take
            actions in shares far from the logs'); the largest factor is the reference, a
            lighter one taken only when it beats it by more than ``summary.tolerance_se``
            standard errors. One value (the default ``[1.0]``: penalised as every other
            column): no choice, no extra fit.
        grid_extensions: When the best penalty of a grid (of two or more values) is its
            smallest or largest value, the value a decade beyond is tried too and taken when
            it beats the edge by more than ``summary.tolerance_se`` standard errors of the
            per-customer difference (the grid is the range expected; leaving it takes
            evidence), up to this many times (0: the grids as given). A penalty at an edge
            whose next value beyond was not tried, or scored better without beating it, is
            named on the card and in the log. The point fit's choice only: the summary's and
            the value tiers' candidates are scored with the grid as given.
        validation_share: Share of customers held out to choose the penalties, the response
            family, the value tiers and the state summary with ``summary.forward_weeks`` 0
            (by default those are chosen forward in time) and to check the behaviour cloning.
        ensemble_size: Bootstrap members (resamples of customers); >= 5 recommended.
        pessimism: How many standard deviations of the ensemble's disagreement the world's
            exact optimum discounts each (state, action) by when it plans
            (:func:`journeyopt.sim.optimum.solve_optimum`; recorded in ``calibration.json``
            and used wherever this world's optimum is planned: the card's sim-to-real, a
            served optimum). The plain optimum of an estimated world seeks out the cells it
            over-predicts, most of all those the logs barely hold; 1 (the default) plans
            against one SD of the members' spread there (on the roastery's second export
            the optimum's true value rose from 94.8-96.0 % to 96.2-97.2 % of the true
            optimum's over four evaluation seeds, three coworking calibrations' stayed at
            97.7-98.1 %: ``docs/calibration.md``). 0: the plain optimum (so are worlds with
            fewer than two members).
        weighting: ``stabilised`` (inverse propensity weights ``P(a) / pi_b(a | x)``) or
            ``none`` (condition on the state only).
        max_weight: Clip of the stabilised inverse propensity weights.
        min_support: Customer-weeks below which a segment x lifecycle x action cell is flagged.
        min_action_decisions: Logged decisions (fitted customer-weeks that took it) an action
            needs to be available in the calibrated world; an action with fewer (nobody took
            it, or too few did for its effect to rest on data) is unsupported: forbidden to
            every customer by the world's contact-rule masks (training, the DP optimum,
            evaluation, OPE, the serving guard with reason ``unsupported``) and listed on the
            card. 0 keeps every declared action.
        practice_cycles_weeks: Campaign cycle lengths, weeks, whose week (``week % c`` from
            the panel's week 0) today's practice estimated from the logs may depend on (a
            mailing every 4 weeks: 4, a quarterly offer: 13); empty: state and season only;
            ``None`` (the default): the cycles the logged contacts show, by the rule of
            :mod:`journeyopt.calibration.cycles` (printed, and recorded in
            ``calibration.json``).
        holdout_runs: Simulations of the hold-out period averaged on the card.
        card: The fidelity card's verdict thresholds (:class:`CardConfig`).
        truth_world: A ground-truth world the logs came from (``coworking``): adds the
            policy-value fidelity section. Empty for real logs.
        staff: Today's practice under which the truth world's logs were made (the
            ``staff_rules`` policy of the policy-value fidelity; only with ``truth_world``).
        policy_customers: Customers simulated per policy in the policy-value fidelity.
        policy_horizon_weeks: Horizon of the policy-value fidelity, weeks.
        gamma: Weekly discount factor of the policy values.
        seed: Seed of the splits, bootstrap and simulations.
        workers: Processes for the calibration's independent parts (the two behaviour-cloning
            fits, the penalty choice and refits of the response models, the ensemble
            members' refits, the hold-out simulations of the point world and of each member,
            the by-action value check): 0 = every core of the machine, 1 = all in the calling
            process. The results are the same whatever the number (each part carries its own
            random numbers).
    """

    name: str = "calibrated"
    split: str = ""
    holdout_weeks: int = 13
    recent_weeks: int = 0
    max_customers: int = 0
    seasonal: bool = True
    value_tiers: int = 0
    behaviour_types: list[int] = field(default_factory=list)
    caps: CapsConfig = MISSING  # required: the business's state caps
    summary: SummaryConfig = field(default_factory=SummaryConfig)
    response_model: str = "glm"
    lightgbm: LightGBMConfig = field(default_factory=LightGBMConfig)
    c_grid: list[float] = field(default_factory=lambda: [0.003, 0.03, 0.3, 3.0, 30.0])
    alpha_grid: list[float] = field(default_factory=lambda: [1e-5, 1e-4, 1e-3, 1e-2])
    action_penalty: list[float] = field(default_factory=lambda: [1.0])
    grid_extensions: int = 3
    validation_share: float = 0.2
    ensemble_size: int = 5
    pessimism: float = 1.0
    weighting: str = "stabilised"
    max_weight: float = 20.0
    min_support: int = 30
    min_action_decisions: int = 1
    practice_cycles_weeks: list[int] | None = None
    holdout_runs: int = 10
    card: CardConfig = field(default_factory=CardConfig)
    truth_world: str = ""
    staff: StaffRulesConfig = field(default_factory=StaffRulesConfig)
    policy_customers: int = 10_000
    policy_horizon_weeks: int = 52
    gamma: float = 0.995
    seed: int = 0
    workers: int = 0

    def __post_init__(self) -> None:
        if self.workers < 0:
            raise ConfigError("calibration.workers must be >= 0 (0 = every core)")
        if not 0.0 < self.validation_share < 1.0:
            raise ConfigError("calibration.validation_share must be in (0, 1)")
        if not self.pessimism >= 0.0:
            raise ConfigError(
                f"calibration.pessimism must be >= 0 (0 = the plain optimum), got {self.pessimism}"
            )
        if self.ensemble_size < 0 or self.holdout_weeks < 0 or self.holdout_runs < 1:
            raise ConfigError("calibration: ensemble_size, holdout_weeks >= 0, holdout_runs >= 1")
        if not self.c_grid or not self.alpha_grid:
            raise ConfigError("calibration.c_grid and alpha_grid must not be empty")
        if min(self.c_grid) <= 0 or min(self.alpha_grid) <= 0:
            raise ConfigError("calibration.c_grid and alpha_grid must hold values > 0")
        if not self.action_penalty or min(self.action_penalty) <= 0:
            raise ConfigError(
                "calibration.action_penalty must hold one or more factors > 0 on the action "
                f"effects' penalty (1: as every other column), got {self.action_penalty}"
            )
        if self.grid_extensions < 0:
            raise ConfigError("calibration.grid_extensions must be >= 0 (0: the grids as given)")
        if self.weighting not in ("stabilised", "none"):
            raise ConfigError("calibration.weighting must be 'stabilised' or 'none'")
        if self.response_model not in RESPONSE_MODELS:
            raise ConfigError("calibration.response_model must be 'glm', 'lightgbm' or 'auto'")
        if self.max_customers < 0:
            raise ConfigError("calibration.max_customers must be >= 0 (0 = every customer)")
        if self.value_tiers == 1 or self.value_tiers < 0:
            raise ConfigError("calibration.value_tiers must be 0 (off) or >= 2")
        if self.value_tiers and self.truth_world:
            raise ConfigError(
                "calibration.value_tiers needs the segments of the logs: leave truth_world empty"
            )
        if any(k < 2 for k in self.behaviour_types) or len(set(self.behaviour_types)) != len(
            self.behaviour_types
        ):
            raise ConfigError(
                f"calibration.behaviour_types must be distinct numbers >= 2, "
                f"got {self.behaviour_types}"
            )
        if self.behaviour_types and self.truth_world:
            raise ConfigError(
                "calibration.behaviour_types needs the segments of the logs: leave truth_world "
                "empty"
            )
        if self.max_weight < 1.0:
            raise ConfigError("calibration.max_weight must be >= 1")
        if self.min_action_decisions < 0:
            raise ConfigError("calibration.min_action_decisions must be >= 0 (0 = keep all)")
        bad = [c for c in self.practice_cycles_weeks or [] if c < 2]
        if bad:
            raise ConfigError(f"calibration.practice_cycles_weeks must be >= 2 weeks, got {bad}")

    def cycles(self) -> tuple[int, ...]:
        """The practice's campaign cycles, weeks, once known (configured, or found in the logs
        by the calibration, :mod:`journeyopt.calibration.cycles`).

        Raises:
            ValueError: ``practice_cycles_weeks`` is still None (to be read off the logs).
        """
        if self.practice_cycles_weeks is None:
            raise ValueError("calibration.practice_cycles_weeks: not yet read off the logs")
        return tuple(self.practice_cycles_weeks)


@dataclass
class CalibrateConfig:
    """Schema of ``configs/calibrate.yaml`` (registered as ``calibrate_schema``).

    Attributes:
        data: The source of the logs (the ``data`` group); ``data.path`` given by the user.
        panel: Feature windows of the panel (the ``panel`` group).
        calibration: How to calibrate (the ``calibration`` group).
        tracking: MLflow settings (the ``tracking`` group; ``tracking=off`` writes nothing).
        rules: The business's contact rules (the ``rules`` group, ``configs/rules/``: the
            same file as ``simulator.rules`` and ``serve.rules``); the summary selection
            chooses among the candidates that represent them, and the card names a rule the
            chosen summary does not (docs/calibration.md). Default ``none``: opt-outs only.
        output_dir: Folder of the calibrated world and its card.
        overwrite: Replace the outputs of an earlier run (and an earlier export).
        export: Also copy the world and its card to ``<export_dir>/<export>/`` (empty: no
            export), so that ``simulator.world=<export>`` loads it by name.
        export_dir: Parent folder of exports; empty = the shipped worlds folder
            (``simulators/``).
    """

    data: SourceConfig = field(default_factory=SourceConfig)
    panel: PanelConfig = MISSING  # required: the business's panel windows (configs/panel/)
    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    rules: RulesConfig = field(default_factory=RulesConfig)
    output_dir: str = MISSING
    overwrite: bool = False
    export: str = ""
    export_dir: str = ""


def register_configs() -> None:
    """Register ``calibration/base_calibration`` and ``calibrate_schema``."""
    register_tracking()
    cs = ConfigStore.instance()
    cs.store(group="calibration", name="base_calibration", node=CalibrationConfig)
    cs.store(name="calibrate_schema", node=CalibrateConfig)
