"""Contact rules and today's practice for a catalogue other than the demo's: a frequency cap on a
channel the world lacks, or a practice rule naming a customer type it does not have, stops the
start-up with one line instead of silently capping or calling nobody."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from journeyopt.errors import ConfigError
from journeyopt.serving.config import HoldoutConfig, RulesConfig, ServingConfig
from journeyopt.serving.guards import serving_rules, staff_rules
from journeyopt.serving.scorer import Scorer
from journeyopt.serving.served_model import ServedModel
from journeyopt.sim.config import shipped_practice
from journeyopt.sim.world import WorldSpec
from tests.commands import DEMO_SERVING
from tests.serving.conftest import Registered

CRM_SEGMENTS = ("Freelancer", "Startup", "Firma")  # the example CRM export's customer types


def crm_world(world: WorldSpec) -> WorldSpec:
    """The coworking world with the example CRM export's customer type names."""
    segments = tuple(replace(s, name=n) for s, n in zip(world.segments, CRM_SEGMENTS, strict=True))
    return replace(world, segments=segments)


def test_caps_on_the_world_channels_are_applied(world: WorldSpec) -> None:
    rules = serving_rules(world, RulesConfig(frequency_caps={"phone": 0}, cooldown_weeks=0))
    assert dict(rules.frequency_caps) == {"phone": 0}


def test_a_cap_on_a_channel_the_world_lacks_is_refused(
    world: WorldSpec, served: ServedModel
) -> None:
    settings = ServingConfig(rules=RulesConfig(frequency_caps={"email": 2, "sms": 1}))
    message = (
        r"serve.rules.frequency_caps caps channel\(s\) \['sms'\] that world 'coworking' does "
        r"not have \(its contact channels: \['email', 'phone'\]\): remove them with "
        r"'~serve.rules.frequency_caps.sms'"
    )
    with pytest.raises(ConfigError, match=message):
        Scorer(served, settings, world)


def test_the_control_group_practice_must_fit_the_world(
    world: WorldSpec, served: ServedModel
) -> None:
    crm = HoldoutConfig(staff=shipped_practice("coworking_crm"))
    with pytest.raises(ConfigError, match=r"serve.holdout.staff.rules\[0\].segments names "
                       r"customer type\(s\) \['Startup', 'Firma'\] that world 'coworking' "
                       r"does not have"):  # fmt: skip
        Scorer(served, ServingConfig(holdout=crm), world)
    assert staff_rules(crm_world(world), crm).rules[0].segments == ("Startup", "Firma")
    with pytest.raises(ConfigError, match=r"\['startup_team', 'corporate_team'\].*"
                       r"\['Freelancer', 'Startup', 'Firma'\]"):  # fmt: skip
        staff_rules(crm_world(world), HoldoutConfig(staff=shipped_practice("coworking")))
    assert staff_rules(crm_world(world), HoldoutConfig()).rules == ()  # the schema: no practice


def test_serve_stops_at_start_up_on_a_cap_the_world_lacks(
    registered: Registered, tmp_path: Path
) -> None:
    command = [
        str(Path(sys.executable).with_name("journeyopt-serve")),
        *DEMO_SERVING,
        f"model={registered.folder}",
        "+serve.rules.frequency_caps.sms=1",
        f"hydra.run.dir={tmp_path / 'hydra'}",
    ]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        "error: serve.rules.frequency_caps caps channel(s) ['sms'] that world 'coworking' does "
        "not have (its contact channels: ['email', 'phone']): remove them with "
        "'~serve.rules.frequency_caps.sms', and cap a channel of the world with "
        "+serve.rules.frequency_caps.<channel>=<contacts>"
    ]
