"""World specifications: the parameters of a ground-truth customer world, loaded from YAML.

A world lives in ``simulators/<name>/world.yaml`` (shipped inside the package) beside its card
``card.md``. :func:`load_world` reads it into a frozen, validated :class:`WorldSpec`; the
dynamics (:mod:`journeyopt.sim.dynamics`) read the parameters as numpy arrays through
:attr:`WorldSpec.params`.

Every response of the world depends only on the discrete summary of the observable state
(:mod:`journeyopt.sim.discrete`) and the week of year; see the card of each world for what each
parameter means.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields, replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import yaml
from numpy.typing import NDArray

from journeyopt.errors import ConfigError, JourneyoptError, format_mismatch
from journeyopt.panel.segments import BehaviourTypes, value_tier_labels
from journeyopt.panel.state import FeatureSpec
from journeyopt.sim.rules import ActionCatalog
from journeyopt.sim.starting import StartingBase

if TYPE_CHECKING:
    from journeyopt.sim.practice import LoggedPractice

WORLDS_DIR = Path(__file__).resolve().parent.parent / "simulators"
"""Folder of the shipped worlds (``simulators/<name>/world.yaml``)."""
WORLD_FORMAT_VERSION = 1
"""Format of a world folder journeyopt writes (``format_version`` in ``world.yaml``, written by
:func:`journeyopt.calibration.calibrated.world_to_dict`): the keys of ``world.yaml``, the state
numbering of ``responses.npz`` and ``members/`` (:class:`journeyopt.sim.discrete.DiscreteLayout`),
the customer-state columns of ``base.parquet`` and the layout of ``practice.npz``. Bump it
whenever a change makes an earlier folder read differently; :func:`load_world` refuses another
version with a one-line :class:`WorldFormatError`. A folder without it is format 0, read if it
still reads (hand-written worlds without ``responses`` carry none and need none)."""
PATTERN_WEEKS = (0, 2, 3, 4, 5, 6)
"""Allowed lengths of the contact pattern, weeks (0 = off)."""


@dataclass(frozen=True)
class DiscreteSpec:
    """Caps of the discrete state summary (in weeks or counts, each >= 2; tenure 0 = off).

    The four caps of recency, conversions, contact and engagement have no default: they
    depend on how often the business's customers buy and are contacted (a world's
    ``discrete:`` section, a calibration's ``calibration.caps``).

    Attributes:
        recency_cap_weeks: Weeks since the last conversion are exact below the cap; the cap
            means "this many or more".
        conversions_cap: Lifetime conversions are exact below the cap (0 = prospect).
        contact_cap_weeks: Weeks since the last contact; the cap also means "never".
        engagement_cap_weeks: Weeks since the last engagement; the cap also means "never".
        tenure_cap_weeks: Weeks since the customer's first logged event, exact below the cap
            (``0..cap``); 0 (the default) leaves tenure out of the state. Calibrated worlds of
            ageing cohorts track it: a customer's purchase rate depends on how long they have
            been around, not only on recency and frequency.
        contact_pattern_weeks: ``W``: bits "contacted (any channel) 1, 2, .., W weeks ago"
            (``2^W`` values; fatigue by the count of recent contacts); 0 (the default) = off,
            else 2..6. The world's features must count contacts in a ``W``-week rule window.
        contact_pattern_by_channel: The pattern records, for each of its ``W`` weeks, the
            channel of that week's contact (digit ``1 + j`` for channel ``j``, 0 for none:
            ``(C + 1)^W`` values) instead of a bit: what contact rules counting some channels
            only need (e.g. "at most 2 e-mails in any 5 weeks"). Needs the pattern.
        last_action: The action of the last contact (0 = none yet, else its catalogue
            index) is part of the state (delayed effects that depend on which action was
            taken); the world's features must count every contact action
            (``rule_actions`` = the catalogue's contacts, in order, first).
        gap_cap_weeks: ``G``: the previous gap between conversions (weeks between the
            customer's last two weeks with a conversion) is part of the state of customers
            with two or more conversions, in bins of ``gap_bin_weeks`` below the cap and one
            bin "``G`` or more" (a purchase cycle that tells customer types apart that are not
            on record); 0 (the default) = off, else ``2..recency_cap_weeks`` (the gap is set
            from the weeks since the last conversion when a conversion happens, so recency must
            be exact below ``G`` for the summary to stay Markov) with ``G - 1`` a multiple of
            ``gap_bin_weeks``. The world's features must give ``conversion_gap_weeks``
            (``features.conversion_gap``).
        gap_bin_weeks: Width of the gap's bins below the cap, weeks (1 = exact); bins are
            ``1..b``, ``b+1..2b``, ... (a same-week repeat, gap 0, counts as the first bin).
        rate_levels: ``L``: the response models read the customer's own purchase rate, as
            smooth terms of the summary's conversions ``n`` (and tenure ``T`` when tracked):
            ``log n``, ``log(n / (1 + T))`` (lifetime conversions per week of tenure) and
            ``log n * log(recency)``, and keep their per-count columns for counts ``0..L``
            only, higher counts sharing count ``L``'s (:mod:`journeyopt.calibration.design`):
            a count with few customers (the heaviest buyers) follows the trend over counts
            rather than being shrunk to the pooled level. No new state: the numbering and the
            dynamics are unchanged, and the panel, simulator and API compute it from the same
            ``n_conversions`` and ``tenure_weeks`` of :mod:`journeyopt.panel.state`. 0 (the
            default) = off, else ``1..conversions_cap`` (``conversions_cap``: every count
            keeps its own columns).
        recency_bins_weeks: ``B``: the response models' own columns of weeks since the last
            conversion (:mod:`journeyopt.calibration.design`) stop at ``B``, recencies of
            ``B`` or more share ``B``'s, and beyond it only the smooth terms (``log(recency)``,
            the relative recency with tenure) tell recencies apart: the state remembers the
            recency up to its cap, the models resolve it week by week only where the data do.
            A cohort that ages past the fitted history (a forecast) then keeps an exact
            recency, consistent with its tenure, instead of one frozen at the cap while tenure
            grows (which breaks the smooth terms' relation between the two). No new feature:
            the same ``recency_weeks`` of :mod:`journeyopt.panel.state`, a longer cap. 0 (the
            default) = the recency cap (every recency below it its own columns), else
            ``2..recency_cap_weeks``.
        lasting_actions: The *lasting* actions ``L`` (names from the catalogue; empty, the
            default: off). With ``last_action`` on, the last-action component then remembers
            the last contact of one of these actions only (``1 +`` its position in ``L``, 0
            once the weeks since it reach the contact cap, "long ago or never"), with its own
            weeks since it (the ``lasting`` component, ``1..contact_cap_weeks``): a contact of
            another action leaves it as it is (a delayed effect that only a newer lasting
            contact replaces). The world's features must give each action's weeks since its
            last contact (``features.action_recency``, read by
            :func:`journeyopt.panel.state.lasting_memory`). ``L`` is chosen by the data
            (``calibration.summary.lasting_max_actions``).
    """

    recency_cap_weeks: int  # the first four are required: a choice about the business
    conversions_cap: int
    contact_cap_weeks: int
    engagement_cap_weeks: int
    tenure_cap_weeks: int = 0
    contact_pattern_weeks: int = 0
    last_action: bool = False
    gap_cap_weeks: int = 0
    gap_bin_weeks: int = 1
    rate_levels: int = 0
    lasting_actions: tuple[str, ...] = ()
    recency_bins_weeks: int = 0
    contact_pattern_by_channel: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "lasting_actions", tuple(str(a) for a in self.lasting_actions))
        if self.contact_pattern_by_channel and not self.contact_pattern_weeks:
            raise ConfigError(
                "world.discrete.contact_pattern_by_channel needs contact_pattern_weeks 2..6"
            )
        lasting = self.lasting_actions
        if lasting and not self.last_action:
            raise ConfigError("world.discrete.lasting_actions needs last_action: true")
        if len(set(lasting)) != len(lasting) or "none" in lasting or "" in lasting:
            raise ConfigError(
                f"world.discrete.lasting_actions must be distinct contact actions, got {lasting}"
            )
        for f in fields(self):
            if f.name in (
                "gap_cap_weeks",
                "gap_bin_weeks",
                "rate_levels",
                "lasting_actions",
                "recency_bins_weeks",
                "contact_pattern_by_channel",
            ):
                continue  # checked below, against the recency and conversions caps
            if f.name == "tenure_cap_weeks":
                if self.tenure_cap_weeks == 1 or self.tenure_cap_weeks < 0:
                    raise ConfigError("world.discrete.tenure_cap_weeks must be 0 (off) or >= 2")
            elif f.name == "contact_pattern_weeks":
                if self.contact_pattern_weeks not in PATTERN_WEEKS:
                    raise ConfigError(
                        "world.discrete.contact_pattern_weeks must be 0 (off) or 2..6"
                    )
            elif f.name != "last_action" and getattr(self, f.name) < 2:
                raise ConfigError(f"world.discrete.{f.name} must be >= 2")
        if self.gap_bin_weeks < 1:
            raise ConfigError("world.discrete.gap_bin_weeks must be >= 1")
        if not 0 <= self.rate_levels <= self.conversions_cap:
            raise ConfigError(
                "world.discrete.rate_levels must be 0 (off) or 1..conversions_cap "
                f"({self.conversions_cap}), got {self.rate_levels}"
            )
        b = self.recency_bins_weeks
        if b and not 2 <= b <= self.recency_cap_weeks:
            raise ConfigError(
                "world.discrete.recency_bins_weeks must be 0 (the recency cap) or "
                f"2..recency_cap_weeks ({self.recency_cap_weeks}), got {b}"
            )
        g = self.gap_cap_weeks
        if g and not 2 <= g <= self.recency_cap_weeks:
            raise ConfigError(
                "world.discrete.gap_cap_weeks must be 0 (off) or 2..recency_cap_weeks "
                f"({self.recency_cap_weeks}), got {g}"
            )
        if g and (g - 1) % self.gap_bin_weeks:
            raise ConfigError(
                f"world.discrete.gap_cap_weeks - 1 ({g - 1}) must be a multiple of "
                f"gap_bin_weeks ({self.gap_bin_weeks})"
            )

    @property
    def recency_columns(self) -> int:
        """Recencies the response models resolve one column each (``1..`` this; the last
        column is "this many or more"): ``recency_bins_weeks``, else the recency cap."""
        return self.recency_bins_weeks or self.recency_cap_weeks

    @property
    def n_gap_bins(self) -> int:
        """Values of the gap component for a customer with two or more conversions: the
        bins below the cap and the cap's; 1 when the state keeps no gap."""
        return (self.gap_cap_weeks - 1) // self.gap_bin_weeks + 1 if self.gap_cap_weeks else 1

    def within_history(self, weeks: int) -> tuple[DiscreteSpec, dict[str, tuple[int, int]]]:
        """The caps a fit over ``weeks`` weeks of history can support.

        Weeks since the last conversion, contact or engagement enter the response models one
        week per column (:mod:`journeyopt.calibration.design`); a value above ``weeks`` (the
        last fitted week minus the first week of the logs) never occurs in the fitted weeks,
        so a cap above it leaves its top columns without data: the penalty shrinks them to
        the pooled level, and a simulated customer who ages into them jumps to it. Those caps
        are lowered to ``weeks`` (never below 2); the cap keeps its meaning, "this many or
        more" (or "never"). Tenure is left alone: it enters through smooth terms that
        extrapolate beyond the fitted ages (a cap beyond the data is deliberate there). So is
        the recency cap when its columns stop earlier (``recency_bins_weeks``): the bins are
        lowered to ``weeks`` instead, and recencies beyond them enter through smooth terms. The
        gap's cap follows the recency cap (it may not exceed it); when the lowered cap leaves
        no whole bin below it, the bins narrow to one bin below the cap.

        Returns:
            ``(spec, clipped)``: the caps to use and ``{name: (configured, used)}`` of every
            cap lowered (empty when none exceeds the history).
        """
        limit = max(int(weeks), 2)
        recency = "recency_bins_weeks" if self.recency_bins_weeks else "recency_cap_weeks"
        clipped = {
            name: (getattr(self, name), limit)
            for name in (recency, "contact_cap_weeks", "engagement_cap_weeks")
            if getattr(self, name) > limit
        }
        recency_cap = self.recency_cap_weeks if self.recency_bins_weeks else limit
        gap, width = gap_within(self.gap_cap_weeks, self.gap_bin_weeks, limit)
        if gap != self.gap_cap_weeks:
            clipped["gap_cap_weeks"] = (self.gap_cap_weeks, gap)
        used = replace(
            self,
            recency_cap_weeks=min(self.recency_cap_weeks, recency_cap),
            recency_bins_weeks=min(self.recency_bins_weeks, limit),
            contact_cap_weeks=min(self.contact_cap_weeks, limit),
            engagement_cap_weeks=min(self.engagement_cap_weeks, limit),
            gap_cap_weeks=gap,
            gap_bin_weeks=width,
        )
        return used, clipped


def gap_within(cap_weeks: int, bin_weeks: int, limit: int) -> tuple[int, int]:
    """``(cap, bin width)`` of a gap component lowered to at most ``limit`` weeks (a recency
    cap): the cap unchanged when it fits, else the largest ``1 + k * bin_weeks <= limit``, the
    bins narrowed to ``limit - 1`` weeks when not even one fits; ``(0, bin_weeks)`` when off."""
    if cap_weeks <= limit:
        return cap_weeks, bin_weeks
    width = min(bin_weeks, limit - 1)
    return 1 + width * ((limit - 1) // width), width


@dataclass(frozen=True)
class SeasonWindow:
    """A seasonal shift of the conversion and inquiry logits.

    Attributes:
        name: Label for the card (``summer``).
        first_week, last_week: ISO weeks of year (1..53) the window covers, inclusive; a window
            with ``first_week > last_week`` wraps around New Year.
        logit: Shift added to the conversion logit (and the inquiry log-rate) in the window.
    """

    name: str
    first_week: int
    last_week: int
    logit: float

    def __post_init__(self) -> None:
        for w in (self.first_week, self.last_week):
            if not 1 <= w <= 53:
                raise ConfigError(f"world.seasonality.{self.name}: week {w} not in 1..53")


@dataclass(frozen=True)
class SegmentSpec:
    """One customer type; recorded at sign-up and never changes.

    Probabilities are weekly; logits are of the weekly conversion probability.

    Attributes:
        name: Segment name (``customer_type`` in the logs).
        share: Share of new customers (and of the initial population) of this type.
        prospect_logit: Conversion logit of a prospect (never converted), no contact.
        return_logit: Conversion logit one week after a conversion (one past conversion).
        lapsed_logit: Conversion logit at the recency cap.
        habit_decay_weeks: E-folding time of the habit between ``return_logit`` and
            ``lapsed_logit`` as recency grows, weeks.
        loyalty_logit: Added per past conversion beyond the first, up to the cap.
        engagement_logit: Added one week after an engagement event; decays with
            ``WorldSpec.engagement_decay_weeks`` and is gone at the engagement cap.
        engagement_value_lift: Factor on the expected conversion value one week after an
            engagement, decaying the same way (a team growing books bigger).
        inquiry_rate: Weekly probability of a spontaneous inquiry (an engagement event: the
            trigger, e.g. the team is growing), before seasonality.
        kinds: Conversion kind -> (probability, mean list value in currency).
        value_shape: Gamma shape of the value around its mean (coefficient of variation
            ``1/sqrt(shape)``).
        action_logit: Action -> conversion-logit lift in the week of the contact, unfatigued.
        action_engagement: Action -> probability that the contact produces an engagement event
            (a click on a mailing, a reply, a visit after a call), unfatigued.
        optout: Action -> probability that the contact makes the customer opt out of the
            action's channel, unfatigued.
        fatigue_response: Fraction of the action's lifts lost when the previous contact was one
            week ago (contact tolerance; decays with ``WorldSpec.fatigue_decay_weeks``).
        fatigue_optout: Opt-out probability is multiplied by ``1 + fatigue_optout`` when the
            previous contact was one week ago (decaying the same way).
        company_sizes: Company size label -> probability (attribute only, no effect).
    """

    name: str
    share: float
    prospect_logit: float
    return_logit: float
    lapsed_logit: float
    habit_decay_weeks: float
    loyalty_logit: float
    engagement_logit: float
    engagement_value_lift: float
    inquiry_rate: float
    kinds: Mapping[str, tuple[float, float]]
    value_shape: float
    action_logit: Mapping[str, float]
    action_engagement: Mapping[str, float]
    optout: Mapping[str, float]
    fatigue_response: float
    fatigue_optout: float
    company_sizes: Mapping[str, float]

    def __post_init__(self) -> None:
        where = f"world.segments.{self.name}"
        check_probability(self.share, f"{where}.share")
        check_probability(self.inquiry_rate, f"{where}.inquiry_rate")
        check_probability(self.fatigue_response, f"{where}.fatigue_response")
        for name in ("habit_decay_weeks", "value_shape", "engagement_value_lift"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{where}.{name} must be > 0")
        if self.fatigue_optout < 0:
            raise ConfigError(f"{where}.fatigue_optout must be >= 0")
        if not self.kinds:
            raise ConfigError(f"{where}.kinds must name at least one conversion kind")
        for kind, (p, mean) in self.kinds.items():
            check_probability(p, f"{where}.kinds.{kind}")
            if not mean > 0:
                raise ConfigError(f"{where}.kinds.{kind}: mean value must be > 0")
        check_distribution({k: p for k, (p, _) in self.kinds.items()}, f"{where}.kinds")
        check_distribution(self.company_sizes, f"{where}.company_sizes")
        for table in ("action_engagement", "optout"):
            for action, p in getattr(self, table).items():
                check_probability(p, f"{where}.{table}.{action}")

    @property
    def mean_value(self) -> float:
        """Expected list value of one conversion without engagement, currency."""
        return float(sum(p * m for p, m in self.kinds.values()))


@dataclass(frozen=True)
class PopulationSpec:
    """The initial population: who is already a customer when the world starts (of a
    synthetic ground-truth world; a calibrated world starts from its own customers). No field
    has a default: each describes the world's business.

    Attributes:
        prospect, active, lapsed: Shares of the initial population in each lifecycle stage.
        active_recency_weeks: (low, high) weeks since the last conversion of active
            customers, uniform, inclusive.
        lapsed_recency_weeks: (low, high) for lapsed former customers.
        past_conversions_mean: Mean number of past conversions of a former customer
            (1 + Poisson(mean - 1)).
    """

    prospect: float
    active: float
    lapsed: float
    active_recency_weeks: tuple[int, int]
    lapsed_recency_weeks: tuple[int, int]
    past_conversions_mean: float

    def __post_init__(self) -> None:
        check_distribution(
            {"prospect": self.prospect, "active": self.active, "lapsed": self.lapsed},
            "world.population",
        )
        for name in ("active_recency_weeks", "lapsed_recency_weeks"):
            low, high = getattr(self, name)
            if not 1 <= low <= high:
                raise ConfigError(f"world.population.{name} must satisfy 1 <= low <= high")
        if self.past_conversions_mean < 1:
            raise ConfigError("world.population.past_conversions_mean must be >= 1")


class WorldParams(NamedTuple):
    """A world's parameters as arrays; ``S`` segments, ``A`` actions, ``K`` conversion kinds.

    Attributes:
        prospect_logit, return_logit, lapsed_logit, habit_decay_weeks, loyalty_logit,
            engagement_logit, engagement_value_lift, inquiry_rate, value_shape,
            fatigue_response, fatigue_optout: (S,) per segment, see :class:`SegmentSpec`.
        action_logit, action_engagement, optout: (S, A); column 0 (``none``) is zero.
        kind_probs: (S, K) probability of each conversion kind.
        kind_values: (S, K) mean list value of each kind, currency.
        mean_value: (S,) expected list value of one conversion, currency.
        cost: (A,) cost of one contact, currency.
        channel: (A,) index of the action's channel in ``channels``; -1 for ``none``.
        season: (54,) logit shift by ISO week of year (index 0 unused).
    """

    prospect_logit: NDArray[np.float64]
    return_logit: NDArray[np.float64]
    lapsed_logit: NDArray[np.float64]
    habit_decay_weeks: NDArray[np.float64]
    loyalty_logit: NDArray[np.float64]
    engagement_logit: NDArray[np.float64]
    engagement_value_lift: NDArray[np.float64]
    inquiry_rate: NDArray[np.float64]
    value_shape: NDArray[np.float64]
    fatigue_response: NDArray[np.float64]
    fatigue_optout: NDArray[np.float64]
    action_logit: NDArray[np.float64]
    action_engagement: NDArray[np.float64]
    optout: NDArray[np.float64]
    kind_probs: NDArray[np.float64]
    kind_values: NDArray[np.float64]
    mean_value: NDArray[np.float64]
    cost: NDArray[np.float64]
    channel: NDArray[np.int64]
    season: NDArray[np.float64]


@dataclass(frozen=True, eq=False)
class FittedResponses:
    """A response model fitted from logs, tabulated over the world's discrete states.

    A calibrated world (:mod:`journeyopt.calibration`) carries one; the dynamics then read the
    responses from these tables instead of the parametric segment fields (which, in a
    calibrated world, are a readable summary of the fit). ``n`` discrete states
    (:class:`journeyopt.sim.discrete.DiscreteLayout`), ``A`` actions. Stored as
    ``responses.npz`` beside the world's ``world.yaml``.

    Attributes:
        convert_logit: (n, A) conversion logit without season.
        convert_season: (54,) conversion-logit shift by ISO week of year (index 0 unused).
        value: (n,) expected list value of a conversion, currency.
        engage_logit: (n, A) logit of at least one engagement event without season; column 0
            (``none``) is the spontaneous rate, the contact's own effect is what the other
            columns add to it.
        engage_season: (54,) engagement-logit shift by ISO week of year.
        optout: (n, A) probability of opting out of the action's channel; column 0 is 0.
        actions_identified: The logs identify the effects of contacts (they hold contacts
            of every action); when False only ``none`` may be simulated and no contact policy
            may be searched for.
    """

    convert_logit: NDArray[np.float64]
    convert_season: NDArray[np.float64]
    value: NDArray[np.float64]
    engage_logit: NDArray[np.float64]
    engage_season: NDArray[np.float64]
    optout: NDArray[np.float64]
    actions_identified: bool

    ARRAYS = ("convert_logit", "convert_season", "value", "engage_logit", "engage_season", "optout")

    def __post_init__(self) -> None:
        n, a = self.convert_logit.shape
        shapes = {
            "engage_logit": (n, a),
            "optout": (n, a),
            "value": (n,),
            "convert_season": (54,),
            "engage_season": (54,),
        }
        for name, shape in shapes.items():
            if getattr(self, name).shape != shape:
                raise ConfigError(f"responses.{name}: shape {getattr(self, name).shape} != {shape}")
        if not np.all((self.optout >= 0) & (self.optout <= 1)):
            raise ConfigError("responses.optout must be probabilities in [0, 1]")
        if not np.all(self.value > 0):
            raise ConfigError("responses.value must be > 0")

    def save(self, path: Path) -> None:
        """Write the tables to ``path`` (NPZ, no pickles)."""
        arrays = {name: getattr(self, name) for name in self.ARRAYS}
        np.savez_compressed(path, actions_identified=self.actions_identified, **arrays)

    @staticmethod
    def load(path: Path) -> FittedResponses:
        """Read tables written by :meth:`save`."""
        if not path.is_file():
            raise ConfigError(f"{path}: the world's response tables are missing")
        with np.load(path, allow_pickle=False) as z:
            arrays = {name: np.asarray(z[name], np.float64) for name in FittedResponses.ARRAYS}
            identified = bool(z["actions_identified"])
        return FittedResponses(**arrays, actions_identified=identified)


@dataclass(frozen=True)
class WorldSpec:
    """A ground-truth world: customer types, responses to actions and economics.

    Attributes:
        name: World name (its folder under ``simulators/``).
        currency: Currency of all values and costs.
        channels: Contact channels, in the order of the state's channel axis.
        actions: The action catalogue, ``none`` first.
        margin_rate: Fraction of a conversion's list value that is margin (the discount an
            action gives away is the catalogue's, :attr:`ActionCatalog.discounts`).
        fatigue_decay_weeks: E-folding time of contact fatigue, weeks.
        engagement_decay_weeks: E-folding time of the engagement lifts, weeks.
        segments: The customer types.
        seasonality: Seasonal windows.
        population: The initial population.
        discrete: Caps of the discrete state summary.
        features: Feature windows of the customer state (contact channels = ``channels``).
        engagement_kinds: Action -> event kind its engagement is logged as, plus ``inquiry``
            (the spontaneous trigger) and ``arrival`` (the event a new prospect arrives with).
        responses: The fitted response tables of a calibrated world; None for a parametric
            (ground-truth) world, whose responses are the segments' parameters.
        base: A calibrated world's starting population (the logs' customers at the as-of date
            and their arrival rate, :mod:`journeyopt.sim.starting`); None for a ground-truth
            world, whose simulations start from the synthetic ``population``.
        logged_practice: Today's practice estimated from the logs a calibrated world was fitted
            on (``practice: practice.npz`` in its ``world.yaml``); None for a ground-truth
            world (``practice=logged`` needs it).
        unsupported_actions: Actions the world cannot value (a calibrated world whose logs hold
            fewer than ``calibration.min_action_decisions`` decisions that took them): no
            customer may get them; every contact-rule mask of the world forbids them (reason
            ``unsupported``, :mod:`journeyopt.sim.rules`) and the DP optimum never plans them.
        segment_value_cuts: Ascending cut points (currency) of the value tiers that are the
            world's segments (a calibration with ``calibration.value_tiers`` that kept them): a
            customer's segment is the tier of their mean conversion value
            (:func:`journeyopt.panel.segments.value_tier_labels` of the feature ``monetary``),
            wherever a segment is read from logs (the scorer); empty: the segments are a
            customer attribute.
        segment_types: The behaviour types that are the world's segments (a calibration with
            ``calibration.behaviour_types`` that kept them): a customer's segment is their type
            read from their state features (:meth:`BehaviourTypes.labels
            <journeyopt.panel.segments.BehaviourTypes.labels>`; the features need
            ``features.lifetime_counts``); None: not behaviour types.
    """

    name: str
    currency: str
    channels: tuple[str, ...]
    actions: ActionCatalog
    margin_rate: float
    fatigue_decay_weeks: float
    engagement_decay_weeks: float
    segments: tuple[SegmentSpec, ...]
    seasonality: tuple[SeasonWindow, ...]
    population: PopulationSpec
    discrete: DiscreteSpec
    features: FeatureSpec
    engagement_kinds: Mapping[str, str]
    responses: FittedResponses | None = field(default=None, compare=False, repr=False)
    base: StartingBase | None = field(default=None, compare=False, repr=False)
    logged_practice: LoggedPractice | None = field(default=None, compare=False, repr=False)
    unsupported_actions: tuple[str, ...] = ()
    segment_value_cuts: tuple[float, ...] = ()
    segment_types: BehaviourTypes | None = None

    def __post_init__(self) -> None:
        check_probability(self.margin_rate, "world.margin_rate")
        if self.segment_types is not None and self.segment_value_cuts:
            raise ConfigError("world: segment_value_cuts and segment_types exclude each other")
        if self.segment_types is not None and not self.features.lifetime_counts:
            raise ConfigError("world.segment_types needs world.features.lifetime_counts: true")
        if list(self.segment_value_cuts) != sorted(self.segment_value_cuts):
            raise ConfigError("world.segment_value_cuts must be ascending")
        for name in ("fatigue_decay_weeks", "engagement_decay_weeks"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"world.{name} must be > 0")
        if len(self.segments) < 1:
            raise ConfigError("world.segments must define at least one customer type")
        check_distribution({s.name: s.share for s in self.segments}, "world.segments shares")
        if self.features.contact_channels != self.channels:
            raise ConfigError("world.features.contact_channels must equal world.channels")
        unknown = {c for c in self.actions.channels[1:] if c not in self.channels}
        if unknown:
            raise ConfigError(f"world.actions use channels {unknown} not in {self.channels}")
        for action in (*self.actions.names[1:], "inquiry", "arrival"):
            if action not in self.engagement_kinds:
                raise ConfigError(f"world.engagement_kinds must name an event kind for {action}")
        if self.responses is not None:
            n_actions = self.responses.convert_logit.shape[1]
            if n_actions != self.actions.n_actions:
                raise ConfigError(
                    f"world.responses has {n_actions} actions, "
                    f"the catalogue {self.actions.n_actions}"
                )
        for seg in self.segments:
            for table in ("action_logit", "action_engagement", "optout"):
                extra = set(getattr(seg, table)) - set(self.actions.names[1:])
                if extra:
                    raise ConfigError(f"world.segments.{seg.name}.{table}: unknown {extra}")
        self._check_summary_features()
        if self.base is not None:
            self.base.check(self.features, len(self.segments))

    def _check_summary_features(self) -> None:
        """The features count what the discrete summary's optional components read."""
        w = self.discrete.contact_pattern_weeks
        if (w or self.discrete.last_action) and not self.features.recent_contacts:
            raise ConfigError(
                "world.discrete.contact_pattern_weeks / last_action need "
                "world.features.recent_contacts: true"
            )
        if w and self.features.rule_weeks < w:
            raise ConfigError(
                f"world.discrete.contact_pattern_weeks={w} needs world.features.rule_windows "
                f"to count contacts over at least {w} weeks"
            )
        contacts = self.actions.names[1:]
        if self.discrete.last_action and self.features.rule_actions[: len(contacts)] != contacts:
            raise ConfigError(
                "world.discrete.last_action needs world.features.rule_actions to start with the "
                f"catalogue's contacts {list(contacts)}"
            )
        lasting = self.discrete.lasting_actions
        if bad := [a for a in lasting if a not in contacts]:
            raise ConfigError(f"world.discrete.lasting_actions names unknown actions {bad}")
        if lasting and not self.features.action_recency:
            raise ConfigError(
                "world.discrete.lasting_actions needs world.features.action_recency: true"
            )
        if self.discrete.gap_cap_weeks and not self.features.conversion_gap:
            raise ConfigError(
                "world.discrete.gap_cap_weeks needs world.features.conversion_gap: true"
            )
        if bad := [a for a in self.unsupported_actions if a not in self.actions.names[1:]]:
            raise ConfigError(f"world.unsupported_actions names unknown actions {bad}")

    @property
    def lasting_codes(self) -> NDArray[np.int64]:
        """(A,) ``1 +`` each catalogue action's position in ``discrete.lasting_actions``, 0
        for the others (``none`` included): the code a contact of it leaves in the summary's
        lasting memory."""
        lasting = self.discrete.lasting_actions
        return np.array(
            [lasting.index(a) + 1 if a in lasting else 0 for a in self.actions.names], np.int64
        )

    @property
    def supported_actions(self) -> NDArray[np.bool_]:
        """(A,) False for the actions the world cannot value (:attr:`unsupported_actions`)."""
        return ~np.isin(np.asarray(self.actions.names), list(self.unsupported_actions))

    @property
    def segment_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.segments)

    @property
    def segments_from_behaviour(self) -> bool:
        """The segments are read from each customer's state (value tiers or behaviour types),
        not a customer attribute."""
        return bool(self.segment_value_cuts) or self.segment_types is not None

    def segment_labels(self, features: Mapping[str, NDArray[Any]]) -> NDArray[np.str_] | None:
        """(N,) each customer's segment read from their state features (N,) arrays (the
        tier of ``monetary`` for value tiers, the behaviour type for behaviour types): the one
        rule the scorer, the loop, drift and off-policy evaluation read segments by; None when
        the segments are a customer attribute."""
        if self.segment_types is not None:
            return self.segment_types.labels(features)
        if self.segment_value_cuts:
            monetary = np.asarray(features["monetary"], np.float64)
            return value_tier_labels(monetary, np.asarray(self.segment_value_cuts, np.float64))
        return None

    @property
    def kinds(self) -> tuple[str, ...]:
        """All conversion kinds of the world, in first-seen order."""
        return tuple(dict.fromkeys(k for s in self.segments for k in s.kinds))

    def require_identified_actions(self, purpose: str) -> None:
        """Raise :class:`~journeyopt.errors.JourneyoptError` if the world cannot tell what a
        contact does (calibrated from logs without contacts) and ``purpose`` needs it."""
        if self.responses is not None and not self.responses.actions_identified:
            raise JourneyoptError(
                f"world {self.name!r} was calibrated from logs without (enough) contacts: the "
                f"effects of contacts are not identified, so it cannot be used to {purpose}. "
                "It simulates the organic dynamics (no contact) only; calibrate on logs with "
                "logged contacts to learn a contact policy"
            )

    @cached_property
    def params(self) -> WorldParams:
        """The parameters as read-only arrays (see :class:`WorldParams`)."""
        return _params(self)


def _params(world: WorldSpec) -> WorldParams:
    segs = world.segments
    acts = world.actions.names

    def per_segment(name: str) -> NDArray[np.float64]:
        return np.array([getattr(s, name) for s in segs], np.float64)

    def per_action(name: str) -> NDArray[np.float64]:
        return np.array([[0.0, *(getattr(s, name).get(a, 0.0) for a in acts[1:])] for s in segs])

    kinds = world.kinds
    kind_probs = np.array([[s.kinds.get(k, (0.0, 1.0))[0] for k in kinds] for s in segs])
    kind_values = np.array([[s.kinds.get(k, (0.0, 1.0))[1] for k in kinds] for s in segs])
    season = np.zeros(54)
    weeks = np.arange(54)
    for w in world.seasonality:
        if w.first_week <= w.last_week:
            inside = (weeks >= w.first_week) & (weeks <= w.last_week)
        else:
            inside = (weeks >= w.first_week) | ((weeks >= 1) & (weeks <= w.last_week))
        season = season + np.where(inside, w.logit, 0.0)
    channel = np.array([world.channels.index(c) if c else -1 for c in world.actions.channels])
    params = WorldParams(
        prospect_logit=per_segment("prospect_logit"),
        return_logit=per_segment("return_logit"),
        lapsed_logit=per_segment("lapsed_logit"),
        habit_decay_weeks=per_segment("habit_decay_weeks"),
        loyalty_logit=per_segment("loyalty_logit"),
        engagement_logit=per_segment("engagement_logit"),
        engagement_value_lift=per_segment("engagement_value_lift"),
        inquiry_rate=per_segment("inquiry_rate"),
        value_shape=per_segment("value_shape"),
        fatigue_response=per_segment("fatigue_response"),
        fatigue_optout=per_segment("fatigue_optout"),
        action_logit=per_action("action_logit"),
        action_engagement=per_action("action_engagement"),
        optout=per_action("optout"),
        kind_probs=kind_probs,
        kind_values=kind_values,
        mean_value=(kind_probs * kind_values).sum(axis=1),
        cost=np.array(world.actions.costs, np.float64),
        channel=channel.astype(np.int64),
        season=season,
    )
    for array in params:
        array.flags.writeable = False
    return params


def check_probability(value: float, where: str) -> None:
    """A ``ConfigError`` naming ``where`` unless ``value`` is in [0, 1]."""
    if not 0.0 <= float(value) <= 1.0:
        raise ConfigError(f"{where} must be in [0, 1], got {value}")


def check_distribution(probs: Mapping[str, float], where: str, tolerance: float = 1e-4) -> None:
    """A ``ConfigError`` naming ``where`` unless ``probs`` are non-negative and sum to 1 within
    ``tolerance``."""
    # 1e-4: calibrated worlds write probabilities rounded to 6 decimals; samplers renormalise
    if any(p < 0 for p in probs.values()) or abs(sum(probs.values()) - 1.0) > tolerance:
        raise ConfigError(f"{where} must be non-negative and sum to 1, got {dict(probs)}")


def world_path(name_or_path: str | Path) -> Path:
    """The ``world.yaml`` of a shipped world name, or of a given file or folder; a
    ``ConfigError`` when none is given (empty, or a config's unset ``???``)."""
    if str(name_or_path).strip() in ("", "???"):
        raise ConfigError(
            "no world given: set the world (simulator.world, serve.world) to a shipped world "
            "name (simulators/<name>/) or a world folder"
        )
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml"):
        candidate = path
    elif path.is_dir():
        candidate = path / "world.yaml"
    else:
        candidate = WORLDS_DIR / str(name_or_path) / "world.yaml"
    if not candidate.is_file():
        shipped = sorted(p.parent.name for p in WORLDS_DIR.glob("*/world.yaml"))
        raise ConfigError(f"no world {str(name_or_path)!r} ({candidate}); shipped: {shipped}")
    return candidate


def load_world(name_or_path: str | Path) -> WorldSpec:
    """Load and validate a world: a shipped name (``coworking``), a folder or a YAML file.

    A calibrated world's ``world.yaml`` names its response tables (``responses:
    responses.npz``, relative to the YAML file).
    """
    path = world_path(name_or_path)
    with path.open(encoding="utf-8") as fh:
        raw = yaml.safe_load(fh)
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    if raw.get("kind", "world") != "world":
        raise ConfigError(
            f"{path}: a world of kind {raw['kind']!r} has its own dynamics and is not in this "
            "family; load a shop world with journeyopt.sim.shop.load_shop"
        )
    if "format_version" not in raw and not raw.get("responses"):  # a hand-written world
        return _world_or_config_error(raw, path)
    found = raw.get("format_version", 0)
    if found != WORLD_FORMAT_VERSION:
        if "format_version" in raw:
            raise WorldFormatError(path.parent, found, "")
        try:  # written before the version was recorded: read it if it still reads
            world = _world_or_config_error(raw, path)
            _check_response_rows(world, path)
        except Exception as err:
            raise WorldFormatError(path.parent, found, str(err).splitlines()[0]) from err
        return world
    world = _world_or_config_error(raw, path)
    _check_response_rows(world, path)
    return world


class WorldFormatError(ConfigError):
    """A world folder written in another format than this journeyopt reads (one line: the
    folder, the format found, the format expected, what to do)."""

    def __init__(self, folder: Path, found: object, problem: str) -> None:
        remedy = (
            "re-run journeyopt-calibrate on the logs to write the world again (or load it with "
            "the journeyopt version that wrote it)"
        )
        super().__init__(
            format_mismatch(folder, "world", found, WORLD_FORMAT_VERSION, remedy, problem)
        )


def _world_or_config_error(raw: Mapping[str, Any], path: Path) -> WorldSpec:
    try:
        return world_from_dict(raw, path.parent)
    except (KeyError, TypeError, ValueError) as err:
        raise ConfigError(f"{path}: invalid world: {err}") from err


def _check_response_rows(world: WorldSpec, path: Path) -> None:
    """A calibrated world's tables have one row per state of its summary's numbering (a
    table written under another numbering would be read at the wrong states)."""
    if world.responses is None:
        return
    from journeyopt.sim.discrete import DiscreteLayout  # the discrete module imports this one

    rows, states = world.responses.convert_logit.shape[0], DiscreteLayout.of(world).n_states
    if rows != states:
        raise ConfigError(
            f"{path.parent}: the response tables have {rows} state rows, the summary in "
            f"{path.name} numbers {states}"
        )


def required_section(raw: Mapping[str, Any], key: str, spec: type) -> dict[str, Any]:
    """The world file's section ``key`` as keyword arguments of the dataclass ``spec``; a
    one-line :class:`ConfigError` naming the first field without a default it lacks (a choice
    about the world's business that no default fits)."""
    given = dict(raw.get(key) or {})
    for f in fields(spec):
        required = f.default is MISSING and f.default_factory is MISSING
        if required and f.name not in given:
            raise ConfigError(
                f"world.{key}.{f.name} is not set: the world's file must give it (see "
                f"{spec.__name__} in docs/configuration.md)"
            )
    return given


def world_from_dict(raw: Mapping[str, Any], base_dir: Path | None = None) -> WorldSpec:
    """Build a :class:`WorldSpec` from the parsed YAML mapping (see ``world.yaml``); a
    ``responses`` file and a ``starting_population`` file are read relative to ``base_dir``
    (default the working directory)."""
    responses = None
    if raw.get("responses"):
        responses = FittedResponses.load((base_dir or Path()) / str(raw["responses"]))
    actions = raw["actions"]
    names = ("none", *(a for a in actions if a != "none"))
    if "discount_rate" in raw:
        raise ConfigError(
            "world.discount_rate is no longer read: declare the discount on the action that "
            "gives it (actions.<name>.discount: 0.25) and remove discount_rate"
        )

    def per_action(key: str, default: Any) -> tuple[Any, ...]:
        return tuple(actions[a].get(key, default) if a in actions else default for a in names)

    try:
        catalog = ActionCatalog(
            names=names,
            channels=tuple(str(c) for c in per_action("channel", "")),
            costs=tuple(float(c) for c in per_action("cost", 0.0)),
            discounts=tuple(float(d) for d in per_action("discount", 0.0)),
        )
    except ValueError as err:
        raise ConfigError(f"world.actions: {err}") from err
    channels = tuple(raw["channels"])
    segments = tuple(
        SegmentSpec(
            name=name,
            **{
                **seg,
                "kinds": {k: (float(v[0]), float(v[1])) for k, v in seg["kinds"].items()},
            },
        )
        for name, seg in raw["segments"].items()
    )
    population = required_section(raw, "population", PopulationSpec)
    for key in ("active_recency_weeks", "lapsed_recency_weeks"):
        if key in population:
            population[key] = tuple(population[key])
    raw_features = required_section(raw, "features", FeatureSpec)
    for key in ("rule_windows", "rule_actions"):
        if key in raw_features:
            raw_features[key] = tuple(raw_features[key])
    features = FeatureSpec(contact_channels=channels, **raw_features)
    base = None
    if raw.get("starting_population"):
        base = StartingBase.load(
            raw["starting_population"], base_dir or Path(), features, [s.name for s in segments]
        )
    if "currency" not in raw:  # no default: the world's values are in its business's currency
        raise ConfigError("world.currency is not set: the currency of its values and costs")
    return WorldSpec(
        name=str(raw["name"]),
        currency=str(raw["currency"]),
        channels=channels,
        actions=catalog,
        margin_rate=float(raw["margin_rate"]),
        fatigue_decay_weeks=float(raw["fatigue_decay_weeks"]),
        engagement_decay_weeks=float(raw["engagement_decay_weeks"]),
        segments=segments,
        seasonality=tuple(SeasonWindow(name=n, **w) for n, w in raw.get("seasonality", {}).items()),
        population=PopulationSpec(**population),
        discrete=DiscreteSpec(**required_section(raw, "discrete", DiscreteSpec)),
        features=features,
        engagement_kinds=dict(raw["engagement_kinds"]),
        responses=responses,
        base=base,
        logged_practice=_logged_practice(raw, base_dir),
        unsupported_actions=tuple(str(a) for a in raw.get("unsupported_actions", ())),
        segment_value_cuts=tuple(float(c) for c in raw.get("segment_value_cuts", ())),
        segment_types=(
            BehaviourTypes.from_dict(raw["segment_types"]) if "segment_types" in raw else None
        ),
    )


def _logged_practice(raw: Mapping[str, Any], base_dir: Path | None) -> LoggedPractice | None:
    """The world's practice estimated from the logs (``practice: <file>``), if it has one."""
    if not raw.get("practice"):
        return None
    from journeyopt.sim.practice import LoggedPractice  # the practice module imports this one

    return LoggedPractice.load((base_dir or Path()) / str(raw["practice"]))
