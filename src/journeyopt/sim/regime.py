"""Regime changes: a world whose customers suddenly behave differently (a pandemic empties
the coworking space, a competitor opens next door).

:func:`changed_world` is a pure function of a ground-truth :class:`WorldSpec`: one customer
type books less and tires of contacts faster. :func:`world_in_week` gives the world in force in
a given week of a closed loop (the original before ``RegimeChange.after_week``, the changed one
from it on). The exact optimum of the changed world
(:func:`journeyopt.sim.optimum.solve_optimum`) is the ceiling any adaptation can reach.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from journeyopt.errors import ConfigError
from journeyopt.sim.world import SegmentSpec, WorldSpec


@dataclass(frozen=True)
class RegimeChange:
    """How and when a customer type changes.

    Attributes:
        segment: Customer type that changes (a name of ``world.segments``).
        after_week: First week index (0-based, of the closed loop) of the new regime.
        booking_factor: Multiplies the type's weekly odds of booking, whatever its state
            (prospect, returning, lapsed): 0.5 halves them, which for the small weekly rates of
            the coworking world (1-5 %) halves the booking rate.
        fatigue_factor: Multiplies the type's contact fatigue: the share of a contact's effect
            lost right after another contact (``fatigue_response``, capped at 1) and the
            extra opt-out risk of a tired customer (``fatigue_optout``).
    """

    segment: str
    after_week: int
    booking_factor: float = 0.5
    fatigue_factor: float = 2.0

    def __post_init__(self) -> None:
        if self.after_week < 0:
            raise ConfigError(f"regime.after_week must be >= 0, got {self.after_week}")
        if not self.booking_factor > 0:
            raise ConfigError(f"regime.booking_factor must be > 0, got {self.booking_factor}")
        if self.fatigue_factor < 0:
            raise ConfigError(f"regime.fatigue_factor must be >= 0, got {self.fatigue_factor}")


def changed_segment(segment: SegmentSpec, change: RegimeChange) -> SegmentSpec:
    """``segment`` after ``change``: booking logits shifted by ``ln(booking_factor)`` (odds
    multiplied), fatigue scaled by ``fatigue_factor``."""
    shift = math.log(change.booking_factor)
    return replace(
        segment,
        prospect_logit=segment.prospect_logit + shift,
        return_logit=segment.return_logit + shift,
        lapsed_logit=segment.lapsed_logit + shift,
        fatigue_response=min(1.0, segment.fatigue_response * change.fatigue_factor),
        fatigue_optout=segment.fatigue_optout * change.fatigue_factor,
    )


def changed_world(world: WorldSpec, change: RegimeChange) -> WorldSpec:
    """The world of the new regime (named ``<world>-after-<segment>-change``).

    Raises:
        ConfigError: ``change.segment`` is not a customer type of ``world``, or ``world`` is a
            calibrated world (its responses are fitted tables, not the types' parameters).
    """
    if world.responses is not None:
        raise ConfigError(
            f"world {world.name!r} is calibrated: a regime change applies to a parametric "
            "ground-truth world (simulators/<name>/)"
        )
    if change.segment not in world.segment_names:
        raise ConfigError(
            f"regime.segment: {change.segment!r} is not a customer type of world "
            f"{world.name!r} ({list(world.segment_names)})"
        )
    segments = tuple(
        changed_segment(s, change) if s.name == change.segment else s for s in world.segments
    )
    return replace(world, name=f"{world.name}-after-{change.segment}-change", segments=segments)


def world_in_week(
    world: WorldSpec, changed: WorldSpec, change: RegimeChange | None, week: int
) -> WorldSpec:
    """The world in force in closed-loop week ``week``: ``changed`` from
    ``change.after_week`` on, ``world`` before (and always without a change)."""
    return changed if change is not None and week >= change.after_week else world
