"""``journeyopt-score``: this week's contact list from raw logs (thin shell over
:func:`journeyopt.serving.batch.score_logs`).

    journeyopt-score data=coworking data.path=exports/ as_of=2024-06-03 out=work/actions.csv
    journeyopt-score --config-dir my_configs data=my_crm data.path=crm.csv as_of=2024-06-03 \\
        model=models:/journey-policy/3 out=work/actions.csv overwrite=true
"""

from __future__ import annotations

from pathlib import Path

from hydra.utils import to_absolute_path
from omegaconf import DictConfig
from rich.table import Table

from journeyopt.cli.entry import command, console, report_errors, to_object
from journeyopt.errors import ConfigError
from journeyopt.outputs import check_writable, refuse_inputs
from journeyopt.serving.batch import SIDE_FILES, ScoreResult, score_logs
from journeyopt.serving.config import ScoreJobConfig, register_configs
from journeyopt.serving.served_model import load_served_model

register_configs()


def summary_table(result: ScoreResult) -> Table:
    """Decisions by action, and why the contact rules refused each action to how many."""
    table = Table(
        title=f"decisions at {result.as_of} ({result.model_name} v{result.model_version})"
    )
    table.add_column("action")
    table.add_column("customers", justify="right")
    table.add_column("refused by the contact rules")
    for action, n in result.by_action.items():
        why = result.refused.get(action, {})
        table.add_row(action, f"{n:,}", ", ".join(f"{r} {c:,}" for r, c in why.items()))
    return table


def run(cfg: DictConfig) -> ScoreResult:
    """Validate the config, score, print the counts."""
    job = to_object(cfg, ScoreJobConfig)
    if not job.data.path:
        raise ConfigError("data.path is required: the file or folder of the logs to score")
    job.data.path = to_absolute_path(job.data.path)
    model = job.model if job.model.startswith("models:/") else to_absolute_path(job.model)
    out = Path(to_absolute_path(job.out))
    beside = {f"the {name} beside out": out.with_name(name) for name in SIDE_FILES}
    local_model = None if model.startswith("models:/") else model
    refuse_inputs({"out": out, **beside}, {"data.path": job.data.path, "model": local_model})
    check_writable(out, label="out")
    result = score_logs(
        job.data, job.as_of, load_served_model(model, job.tracking), job.serve, out, job.overwrite
    )
    shell = console()
    shell.print(summary_table(result))
    groups = ", ".join(f"{g} {n:,}" for g, n in result.by_group.items())
    shell.print(
        f"{result.customers:,} customers scored ({groups}; {result.unknown:,} unknown -> none; "
        f"{result.without_history:,} without history yet); "
        f"{result.signed_up_later:,} listed customers sign up after as_of (not scored); "
        f"{result.contacts:,} contacts -> {out}; "
        f"every decision -> {out.with_name('decisions.csv')}; "
        f"{result.rows_rejected:,} input rows rejected -> {out.with_name('rejects.csv')}"
    )
    for action, arms in result.capacity.items():  # every arm its share of a weekly capacity
        use = ", ".join(f"{arm} {u['given']:,} of {u['share']:,}" for arm, u in arms.items())
        shell.print(f"capacity {action}: {use}")
    return result


@command("score")
def main(cfg: DictConfig) -> None:
    """Entry point of ``journeyopt-score``."""
    report_errors(lambda: run(cfg))


if __name__ == "__main__":
    main()
