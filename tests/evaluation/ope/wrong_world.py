"""A deliberately wrong model world for the model check's tests."""

from __future__ import annotations

import math
from dataclasses import replace

from journeyopt.sim.world import WorldSpec


def booking_odds_scaled(world: WorldSpec, factor: float) -> WorldSpec:
    """``world`` with every customer type's weekly booking odds multiplied by ``factor``
    (prospect, returning and lapsed conversion logits shifted by ``ln factor``)."""
    shift = math.log(factor)
    segments = tuple(
        replace(
            s,
            prospect_logit=s.prospect_logit + shift,
            return_logit=s.return_logit + shift,
            lapsed_logit=s.lapsed_logit + shift,
        )
        for s in world.segments
    )
    return replace(world, segments=segments, name=f"{world.name}_odds_x{factor:g}")


def action_lift_shifted(world: WorldSpec, action: str, shift: float) -> WorldSpec:
    """``world`` with ``action``'s conversion-logit lift raised by ``shift`` in every customer
    type: a model world that over-predicts the response to that one action."""
    segments = tuple(
        replace(s, action_logit={**s.action_logit, action: s.action_logit[action] + shift})
        for s in world.segments
    )
    return replace(world, segments=segments, name=f"{world.name}_{action}_plus{shift:g}")
