"""Typed configuration of ``journeyopt-evaluate``.

:class:`EvaluationConfig` is the schema of the ``evaluation`` config group
(``configs/evaluation/*.yaml``); :class:`EvaluateConfig` the schema of ``configs/evaluate.yaml``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from journeyopt.agents.baselines import BASELINES
from journeyopt.errors import ConfigError
from journeyopt.sim.config import SimulatorConfig, StaffRulesConfig


@dataclass
class EvaluationConfig:
    """Which policies are compared on how many simulated customers.

    Attributes:
        n_customers: Customers drawn from the world's initial population (every policy meets
            the same ones).
        seed: Seed of the population, the world's random numbers and the policies' own.
        policies: Baselines to compare, by name (see ``journeyopt.agents.baselines``).
        reference: Policy the paired uplifts are measured against.
        staff: Today's contact practice (the ``staff_rules`` baseline).
    """

    n_customers: int = 10_000
    seed: int = 0
    policies: list[str] = field(default_factory=lambda: list(BASELINES))
    reference: str = "staff_rules"
    staff: StaffRulesConfig = field(default_factory=StaffRulesConfig)

    def __post_init__(self) -> None:
        if self.n_customers < 2:
            raise ConfigError(f"evaluation.n_customers must be >= 2, got {self.n_customers}")
        unknown = [p for p in self.policies if p not in BASELINES]
        if unknown:
            raise ConfigError(f"evaluation.policies: unknown {unknown}; known: {list(BASELINES)}")
        if not self.policies:
            raise ConfigError("evaluation.policies must name at least one policy")
        if len(set(self.policies)) != len(self.policies):
            raise ConfigError(f"evaluation.policies has duplicates: {self.policies}")


@dataclass
class EvaluateConfig:
    """``journeyopt-evaluate``: compare policies in a world and write the tables and chart.

    Attributes:
        simulator: The world, horizon, discount factor and first week of year.
        evaluation: Policies, customers and seed.
        output_dir: Folder for ``evaluation.csv``, ``evaluation.md`` and ``evaluation.png``.
        overwrite: Allow writing into a non-empty ``output_dir``.
    """

    simulator: SimulatorConfig = field(default_factory=SimulatorConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    output_dir: str = MISSING
    overwrite: bool = False


def register_configs() -> None:
    """Register ``evaluation/base_evaluation`` and ``base_evaluate`` in Hydra's ConfigStore."""
    cs = ConfigStore.instance()
    cs.store(group="evaluation", name="base_evaluation", node=EvaluationConfig)
    cs.store(name="base_evaluate", node=EvaluateConfig)
