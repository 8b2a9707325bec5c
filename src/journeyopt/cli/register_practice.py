"""``journeyopt-register-practice``: today's practice (the control group's,
``serve.holdout.staff``) as a registered policy version that ``journeyopt-serve`` and
``journeyopt-score`` serve exactly as the control group runs it.

    journeyopt-register-practice serve.world=work/world champion=true
    journeyopt-register-practice --config-dir my_configs serve.world=work/world \\
        practice@serve.holdout.staff=my_practice rules@serve.rules=my_rules

A thin shell over :func:`journeyopt.serving.practice.register_practice`. Exit codes: 0
registered, 2 bad input (one line naming the problem).
"""

from __future__ import annotations

from omegaconf import DictConfig

from journeyopt.cli.entry import command, console, report_errors, to_object
from journeyopt.serving.practice import (
    RegisteredPractice,
    RegisterPracticeConfig,
    register_configs,
    register_practice,
)

register_configs()


def run(cfg: DictConfig) -> RegisteredPractice:
    """Validate the composed config, register, print what was registered."""
    job = to_object(cfg, RegisterPracticeConfig)
    done = register_practice(job.serve, job.tracking, champion=job.champion)
    served = done.practice
    console().print(
        f"{done.version.uri}: today's practice ({type(served.practice).__name__}, campaign "
        f"calendar from {served.calendar_origin}) for world {job.serve.world}"
        + (", now the champion" if done.champion else ""),
        highlight=False,
    )
    return done


@command("register_practice")
def main(cfg: DictConfig) -> None:
    """Entry point of ``journeyopt-register-practice``."""
    report_errors(lambda: run(cfg))


if __name__ == "__main__":
    main()
