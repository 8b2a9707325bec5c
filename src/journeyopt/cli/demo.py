"""``journeyopt-demo``: the main job on the embedded demo data.

    journeyopt-demo                      # outputs/demo/<date>/<time>/
    journeyopt-demo generate.n_customers=5000 generate.seed=1

Steps, each a plain function of the package:

1. generate coworking logs with realistic mess from the ground-truth world
   (:func:`journeyopt.cli.generate.run`);
2. ingest them: validate, normalise, resolve identities, de-duplicate, quarantine bad rows
   (:func:`journeyopt.data.ingest.ingest`), printing the reconciled counts;
3. build the weekly customer panel, segments, RFM scores and cohorts
   (:func:`journeyopt.cli.panel.build_outputs`), printing their summary.

Every run writes into its own Hydra run folder, so a re-run never touches an earlier one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import hydra
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig
from rich.console import Console

from journeyopt.cli import generate
from journeyopt.cli.entry import console as console_factory
from journeyopt.cli.entry import report_errors, to_object
from journeyopt.cli.ingest import counts_table
from journeyopt.cli.panel import build_outputs, print_panel_summary
from journeyopt.data.ingest import ingest, load_canonical
from journeyopt.data.source import SourceConfig
from journeyopt.panel.config import PanelConfig
from journeyopt.sim.config import GenerateConfig


@dataclass
class DemoConfig:
    """Schema of ``configs/demo.yaml``.

    Attributes:
        generate: The demo logs (world, customers, weeks, seed, mess rates).
        data: The source the logs are read with (the coworking source).
        panel: Panel windows and as-of date.
        output_dir: Root folder of this run's outputs; empty means Hydra's run folder
            (``outputs/demo/<date>/<time>``).
    """

    generate: GenerateConfig = field(default_factory=GenerateConfig)
    data: SourceConfig = field(default_factory=SourceConfig)
    panel: PanelConfig = field(default_factory=PanelConfig)
    output_dir: str = ""


ConfigStore.instance().store(name="demo_schema", node=DemoConfig)


@dataclass(frozen=True)
class DemoOutputs:
    """Folders one demo run wrote."""

    logs: Path
    canonical: Path
    panel: Path


def run_demo(cfg: DemoConfig, root: Path, console: Console | None = None) -> DemoOutputs:
    """Generate, ingest and build the panel under ``root``; print what happened."""
    console = console or console_factory()
    outputs = DemoOutputs(root / "logs", root / "canonical", root / "panel")

    console.rule("[bold]1. demo logs from the coworking world")
    cfg.generate.output_dir = str(outputs.logs)
    generate.run(cfg.generate)
    console.print(f"raw logs (with injected mess) in {outputs.logs}")

    console.rule("[bold]2. ingest: validate, resolve identities, de-duplicate")
    cfg.data.path = str(outputs.logs)
    result = ingest(cfg.data, outputs.canonical)
    console.print(counts_table(result))
    console.print(
        f"{result.resolved_customers:,} customers after identity resolution; "
        f"{result.rows_rejected:,} rows rejected -> {outputs.canonical / 'rejects.csv'}"
    )

    console.rule("[bold]3. weekly customer panel, segments, cohorts")
    logs = load_canonical(outputs.canonical)
    summary = build_outputs(logs, cfg.panel, cfg.data.contact_channels, outputs.panel)
    print_panel_summary(summary, console)
    console.print(f"panel, segments, RFM scores and cohort plot in {outputs.panel}")
    return outputs


def run(cfg: DictConfig) -> DemoOutputs:
    """Validate the composed config and run the demo in this run's folder."""
    demo = to_object(cfg, DemoConfig)
    root = Path(demo.output_dir or HydraConfig.get().runtime.output_dir)
    return run_demo(demo, root)


@hydra.main(version_base="1.3", config_path="../configs", config_name="demo")
def main(cfg: DictConfig) -> None:
    """Entry point of ``journeyopt-demo``."""
    report_errors(lambda: run(cfg))


if __name__ == "__main__":
    main()
