"""Screenshots of the MLflow UI as a user meets it: a real store, a real ``mlflow server`` on
loopback, a real browser (headless Chromium driven by Playwright).

    .venv/bin/pip install -c constraints.txt -e ".[screenshots]"   # Playwright, once
    .venv/bin/python docs/screenshots/take.py --out docs/screenshots \
        [--rollout-store sqlite:///work/rollout/mlflow.db]

It runs the commands a user runs (a smoke training run and ``journeyopt-compare`` on the
coworking demo world) into a fresh SQLite store in a temporary folder, serves that store with
``mlflow server`` and saves ``compare.png``: the comparison's child runs (one per policy) in the
runs page's chart view, one bar per policy for every final ``eval/value*`` metric. With
``--rollout-store <tracking URI>`` (a store in which the weekly cycle ran a staged rollout, e.g.
the closed-loop study of ``experiments/rollout/``) it also saves ``rollout.png``: the rollout's
weekly decision runs, one bar per week for the canary's difference to the previous version and
its always-valid bounds.

Chromium comes from the system (``--chromium``, default ``/usr/bin/chromium``; Debian:
``apt-get install chromium``); nothing is downloaded. The pictures depend on the MLflow UI's
layout (3.x); the run ids, values and the machine's timings differ from run to run.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

from mlflow.tracking import MlflowClient

BIN = Path(sys.executable).parent
EXPERIMENT = "journeyopt"
VIEWPORT = {"width": 1500, "height": 950}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run(command: list[str], work: Path, env: dict[str, str]) -> None:
    """Run one journeyopt command as a user would; stop on failure with its output."""
    print("$", " ".join(command), flush=True)
    done = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{command[0]} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")


def make_store(work: Path, env: dict[str, str]) -> None:
    """A smoke training run and a comparison of it with the baselines."""
    run([str(BIN / "journeyopt-train"), "train=smoke", "output_dir=train"], work, env)
    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    experiment = client.get_experiment_by_name(EXPERIMENT)
    assert experiment is not None
    trained = client.search_runs([experiment.experiment_id], max_results=1)[0].info.run_id
    run(
        [
            str(BIN / "journeyopt-compare"),
            f"runs=[{trained}]",
            "evaluation.n_customers=1000",
            "output_dir=compare",
        ],
        work,
        env,
    )


def serve(store: str, port: int) -> subprocess.Popen[bytes]:
    server = subprocess.Popen(
        [str(BIN / "mlflow"), "server", "--backend-store-uri", store, "--host", "127.0.0.1",
         "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                return server
        except OSError:
            time.sleep(0.5)
    server.kill()
    sys.exit("mlflow server did not answer within 120 s")


def shoot_compare(page: object, base: str, experiment_id: str, parent: str, out: Path) -> None:
    """The runs page in chart view, filtered to the comparison's child runs (one per policy):
    one bar per policy for the final ``eval/value_mean``."""
    from playwright.sync_api import Page

    assert isinstance(page, Page)
    search = urllib.parse.quote(f"tags.mlflow.parentRunId = '{parent}'")
    page.goto(f"{base}/#/experiments/{experiment_id}/runs?searchFilter={search}")
    page.wait_for_timeout(3000)
    close = page.get_by_role("button", name="Close")
    if close.count():
        close.first.click()  # the assistant's side panel
    page.locator("label:has(input[name='runs-view-mode'][value='CHART'])").click()
    page.wait_for_timeout(2000)
    # MLflow lists a matched child under its parent, collapsed: open it
    page.locator("button[data-component-id$='runnamecellrenderer.tsx_46']").first.click()
    page.wait_for_timeout(2000)
    page.get_by_placeholder("Search metric charts").fill("eval/value")
    page.wait_for_timeout(6000)  # the charts load their metrics one by one
    page.screenshot(path=str(out))
    print("wrote", out)


def shoot_rollout(page: object, base: str, experiment_id: str, out: Path) -> None:
    """The runs page in chart view, filtered to the staged rollout's weekly decisions
    (``rollout-v<version>-<day>`` runs, children of the weekly cycle's runs): one bar per week
    for the canary's difference to the previous version and its always-valid bounds."""
    from playwright.sync_api import Page

    assert isinstance(page, Page)
    search = urllib.parse.quote("attributes.run_name LIKE 'rollout-%'")
    page.goto(f"{base}/#/experiments/{experiment_id}/runs?searchFilter={search}")
    page.wait_for_timeout(3000)
    close = page.get_by_role("button", name="Close")
    if close.count():
        close.first.click()
    page.locator("label:has(input[name='runs-view-mode'][value='CHART'])").click()
    page.wait_for_timeout(2000)
    expand = page.locator("button[data-component-id$='runnamecellrenderer.tsx_46']")
    for i in range(expand.count()):
        expand.nth(i).click()
        page.wait_for_timeout(300)
    page.get_by_placeholder("Search metric charts").fill("rollout/vs_")
    page.wait_for_timeout(6000)
    page.screenshot(path=str(out))
    print("wrote", out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument(
        "--rollout-store",
        default="",
        help="tracking URI of a store holding a staged rollout's weekly decisions (e.g. the "
        "closed-loop study's, experiments/rollout/); without it no rollout.png is taken",
    )
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="journeyopt-screens-") as folder:
        work = Path(folder)
        store = f"sqlite:///{work / 'mlflow.db'}"
        env = {**os.environ, "MLFLOW_TRACKING_URI": store}
        make_store(work, env)
        client = MlflowClient(store)
        experiment = client.get_experiment_by_name(EXPERIMENT)
        assert experiment is not None
        parent = client.search_runs(
            [experiment.experiment_id], "tags.`mlflow.runName` = 'compare'", max_results=1
        )[0].info.run_id
        port = free_port()
        server = serve(store, port)
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=args.chromium, args=["--no-sandbox"]
                )
                page = browser.new_page(viewport=VIEWPORT)
                base = f"http://127.0.0.1:{port}"
                shoot_compare(
                    page, base, experiment.experiment_id, parent, args.out / "compare.png"
                )
                browser.close()
        finally:
            server.terminate()
            server.wait(timeout=30)
    if args.rollout_store:
        shoot_rollout_store(args.rollout_store, args.chromium, args.out / "rollout.png")


def shoot_rollout_store(store: str, chromium: str, out: Path) -> None:
    """Serve an existing store that holds a rollout and take ``rollout.png`` from it."""
    from playwright.sync_api import sync_playwright

    client = MlflowClient(store)
    found = client.search_runs(
        [e.experiment_id for e in client.search_experiments()],
        "attributes.run_name LIKE 'rollout-%'",
        max_results=1,
    )
    if not found:
        sys.exit(f"no rollout-* runs in {store}")
    port = free_port()
    server = serve(store, port)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            page = browser.new_page(viewport=VIEWPORT)
            base = f"http://127.0.0.1:{port}"
            shoot_rollout(page, base, found[0].info.experiment_id, out)
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
