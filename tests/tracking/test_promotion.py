"""The promotion gate: decisions in both directions against a real MLflow store."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from mlflow.exceptions import MlflowException
from omegaconf import OmegaConf
from sklearn.linear_model import LogisticRegression

import journeyopt
from journeyopt.agents.baselines import MyopicPolicy, StaffPolicy
from journeyopt.agents.sb3 import policy_spec
from journeyopt.cli.entry import report_errors, to_object
from journeyopt.cli.promote import (
    GateConfig,
    PromoteConfig,
    PromoteOPEConfig,
    champion_policy,
    check_trained_rules,
    load_served,
    model_evidence,
    promote,
    recent_panel,
    register_configs,
    resolve_candidate,
    run_gate,
    served_trajectories,
)
from journeyopt.data.ingest import ingest_to_logs
from journeyopt.data.source import SourceConfig
from journeyopt.errors import ConfigError, JourneyoptError
from journeyopt.evaluation.config import EvaluationConfig
from journeyopt.evaluation.ope.logged import logged_trajectories
from journeyopt.evaluation.ope.model_value import ValueModel
from journeyopt.panel.build import build_panel
from journeyopt.serving.config import RulesConfig, ServingConfig
from journeyopt.serving.guards import serving_rules
from journeyopt.sim.behaviour import contact_rules
from journeyopt.sim.config import (
    GenerateConfig,
    PracticeRuleConfig,
    SimulatorConfig,
    StaffRulesConfig,
    shipped_practice,
    shipped_rules,
)
from journeyopt.sim.logs import generate_logs, write_logs
from journeyopt.sim.observation import observation_layout
from journeyopt.sim.practice import Practice
from journeyopt.sim.world import WorldSpec, load_world
from journeyopt.tracking.config import TrackingConfig
from journeyopt.tracking.model import LinearSoftmaxPolicy, log_policy_model
from journeyopt.tracking.promotion import (
    INCONCLUSIVE_EXIT_CODE,
    REFUSED_EXIT_CODE,
    Evidence,
    PromotionRefused,
    decide,
    simulation_evidence,
)
from journeyopt.tracking.registry import CHAMPION, RULES_TAG, PolicyRegistry
from journeyopt.tracking.run import tracked_run
from tests.built_once import built_once
from tests.evaluation.ope.wrong_world import booking_odds_scaled
from tests.panel.windows import panel_config

CONFIGS = Path(journeyopt.__file__).parent / "configs"


def test_decide_names_failed_tests() -> None:
    good = simulation_evidence("world", np.array([2.0, 3.0, 4.0]), np.zeros(3), 0.95, 0.0)
    bad = Evidence("ope", "dr", 1.0, 1.0, 0.0, -0.5, 0.0, False, "lower bound -0.5 is not above 0")
    assert good.passed and decide([good]).promote
    decision = decide([good, bad])
    assert not decision.promote
    assert decision.reasons == ("ope test failed (dr): lower bound -0.5 is not above 0",)
    assert list(decision.table["test"]) == ["simulation", "ope"]
    with pytest.raises(ValueError, match="needs evidence"):
        decide([])


@pytest.fixture(scope="module")
def recent_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Staff rules with 10 % exploration (the demo's setting), 1,500 customers, 6 weeks; one
    folder for the whole run (the gate modules that import this fixture share it, so
    :func:`cloned_myopic` fits their candidate once per process)."""
    return built_once(tmp_path_factory, "recent_logs", _write_recent_logs)


def _write_recent_logs(out: Path) -> Path:
    cfg = GenerateConfig(
        staff=shipped_practice("coworking"),
        output_dir=str(out),
        n_customers=1500,
        weeks=6,
        exploration=0.1,
        initial_share=1.0,
    )
    write_logs(
        generate_logs(load_world("coworking"), cfg, np.random.default_rng(0)), out, overwrite=True
    )
    return out


def coworking_source(logs: Path) -> SourceConfig:
    source = OmegaConf.load(CONFIGS / "data" / "coworking.yaml")
    source.path = str(logs)
    return to_object(source, SourceConfig)


def register(settings: TrackingConfig, policy: LinearSoftmaxPolicy, name: str) -> str:
    """Log and register ``policy``; its version."""
    n_features, n_actions = policy.weights.shape
    obs = np.zeros((2, n_features), np.float32)
    with tracked_run({}, name, tracking=settings, log_config=False) as run:
        info = log_policy_model(run, policy, obs, np.ones((2, n_actions), bool))
    assert info is not None
    return PolicyRegistry(settings).register(info).version


def fixed_action(action: int) -> LinearSoftmaxPolicy:
    """A linear policy that always picks ``action`` when allowed."""
    world = load_world("coworking")
    spec = policy_spec(world, observation_layout(world))
    bias = np.full(len(spec.action_names), -20.0)
    bias[action] = 20.0
    return LinearSoftmaxPolicy(spec, np.zeros((len(spec.feature_names), len(bias))), bias)


def cloned_myopic(logs: Path, world: WorldSpec | None = None) -> LinearSoftmaxPolicy:
    """The myopic next-best offer of ``world`` (default: the coworking world) cloned into a
    linear softmax policy (multinomial logistic regression on the logged customers'
    observation vectors): a registrable candidate that is clearly better than the staff rules
    in the coworking world. Fitted once per process for the same logs folder and the default
    world (seven gate tests register it; nothing modifies it)."""
    if world is None:
        return _cloned_myopic_of_coworking(logs.resolve())
    return _clone_myopic(logs, world)


@functools.cache
def _cloned_myopic_of_coworking(logs: Path) -> LinearSoftmaxPolicy:
    return _clone_myopic(logs, load_world("coworking"))


def _clone_myopic(logs: Path, world: WorldSpec) -> LinearSoftmaxPolicy:
    layout = observation_layout(world)
    source = coworking_source(logs)
    panel = build_panel(ingest_to_logs(source)[0], panel_config(), tuple(source.contact_channels))
    logged = logged_trajectories(panel, world, contact_rules(world), 4)
    myopic, rng = MyopicPolicy(world), np.random.default_rng(0)
    x, y = [], []
    for t in range(logged.horizon_weeks):
        seen = logged.observation(t)
        x.append(seen.vector(layout))
        y.append(myopic.act(seen, np.ones_like(logged.masks[:, t]), rng)[0])
    fit = LogisticRegression(C=10.0, max_iter=500).fit(np.concatenate(x), np.concatenate(y))
    weights = np.zeros((len(layout.columns), world.actions.n_actions))
    bias = np.full(world.actions.n_actions, -50.0)  # actions the myopic policy never picks
    weights[:, fit.classes_] = fit.coef_.T
    bias[fit.classes_] = fit.intercept_
    return LinearSoftmaxPolicy(policy_spec(world, layout), weights, bias)


def gate_config(candidate: str, logs: Path, settings: TrackingConfig) -> PromoteConfig:
    """The default gate (thresholds, estimator, window), on fewer customers and replicates and
    a 26-week value horizon (half the world's outcome models to tabulate)."""
    return PromoteConfig(
        candidate=candidate,
        data=coworking_source(logs),
        panel=panel_config(),
        simulator=SimulatorConfig(world="coworking", horizon_weeks=26),
        n_customers=400,
        ope=PromoteOPEConfig(n_boot=100, rollout_customers=300),
        tracking=settings,
        evaluation=EvaluationConfig(staff=shipped_practice("coworking")),
        serve=ServingConfig(rules=shipped_rules("coworking")),
    )


def test_at_default_thresholds_small_logs_cannot_show_the_model_right(
    mlflow_sqlite: TrackingConfig, recent_logs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """1,500 customers over 6 weeks, the true world as the model: the default gate refuses
    even a clearly better candidate, because these logs cannot show the model right within
    10 % (the equivalence test) about the logging policy or the actions the candidate leans
    on — as inconclusive (exit code 4: no evidence against it, not enough for it;
    tests/tracking/test_gate_inconclusive.py). The refusal names the model check of each
    action with its gap and interval; the terminal shows the evidence table."""
    registry = PolicyRegistry(mlflow_sqlite)
    assert GateConfig() == gate_config("x", recent_logs, mlflow_sqlite).gate
    assert GateConfig().model_check_strict and GateConfig().require_model_free
    better = register(mlflow_sqlite, cloned_myopic(recent_logs), "myopic_clone")
    cfg = gate_config(f"models:/{registry.name}/{better}", recent_logs, mlflow_sqlite)
    with pytest.raises(SystemExit) as exited:  # as journeyopt-promote runs it
        report_errors(lambda: promote(cfg))
    assert exited.value.code == INCONCLUSIVE_EXIT_CODE
    printed = capsys.readouterr()
    message = printed.err.strip().splitlines()[-1]  # after MLflow's own log lines
    assert sum(line.startswith("error:") for line in printed.err.splitlines()) == 1
    assert message.startswith(
        f"error: inconclusive, not enough evidence: models:/{registry.name}/{better} not "
        "promoted over "
    )
    assert "simulation test failed" not in message
    # one logged week of 1,500 customers: the clone's mailings rest on a few logged ones
    assert "overlap diagnostics failed: action 'newsletter'" in message
    assert "logged decisions took it where the target would too (at least 30 needed)" in message
    assert "model_check test inconclusive (outcome of 'newsletter'" in message
    assert "the candidate chooses it in" in message and "(90 % CI " in message
    with pytest.raises(MlflowException):
        registry.alias(CHAMPION)
    shown = printed.out
    assert f"promotion gate: models:/{registry.name}/{better} inconclusive" in shown
    for word in ("simulation", "ope", "model_free", "model_check", "today's practice"):
        assert word in shown


def without_model_tests(cfg: PromoteConfig) -> PromoteConfig:
    """The opt-out of the model's tests: their failures are warnings, and the value tests'
    intervals count sampling noise only (``model_error=False``): these small logs bound the
    world's error so loosely that the clone's simulated gain would be inconclusive
    (tests/tracking/test_gate_model_error.py covers that widening)."""
    cfg.gate = GateConfig(require_model_check=False, require_model_free=False, model_error=False)
    return cfg


def test_gate_in_both_directions_with_the_model_tests_as_warnings(
    mlflow_sqlite: TrackingConfig, recent_logs: Path
) -> None:
    registry = PolicyRegistry(mlflow_sqlite)
    better = register(mlflow_sqlite, cloned_myopic(recent_logs), "myopic_clone")
    quiet = register(mlflow_sqlite, fixed_action(0), "no_contact")

    def config(version: str) -> PromoteConfig:
        cfg = without_model_tests(
            gate_config(f"models:/{registry.name}/{version}", recent_logs, mlflow_sqlite)
        )
        # one logged week of 1,500 customers holds 7 to 9 supporting decisions per action of
        # the clone: the support check (test above) would refuse it; this test is about the
        # direction of the gate
        cfg.ope.min_action_support = 5
        return cfg

    # no champion yet: both are compared with the staff rules; silence loses in both tests
    with pytest.raises(PromotionRefused, match="simulation test failed") as refused:
        promote(config(quiet))
    assert refused.value.exit_code == REFUSED_EXIT_CODE
    assert "ope test failed (lt_dr" in str(refused.value)
    with pytest.raises(MlflowException):
        registry.alias(CHAMPION)

    decision = promote(config(better))
    assert decision.promote, decision.reasons
    table = decision.table
    ope = table.set_index("test").loc["ope"]
    assert ope["lower_bound"] > 0 and "26-week value" in ope["source"]
    assert ope["baseline"] == "today's practice" and ope["blocking"]
    check = table[table["key"] == "model_check"].iloc[0]  # the true world as model
    assert not check["blocking"] and "x 5 weeks" in check["source"]
    actions = table[table["key"].str.startswith("model_check_")]
    assert len(actions) >= 2 and decision.warnings  # small logs: warned, not refused
    free = table.set_index("test").loc["model_free"]
    assert "logged weeks supported" in free["source"] and not free["blocking"]
    assert registry.alias(CHAMPION).version == better

    # now the clone is champion: silence is refused against it, and judged against today's
    # practice too (rows that do not block)
    with pytest.raises(PromotionRefused, match="ope test failed") as refused:
        promote(config(quiet))
    assert registry.alias(CHAMPION).version == better
    client = registry.client
    experiment = client.get_experiment_by_name(mlflow_sqlite.experiment)
    assert experiment is not None
    runs = client.search_runs(
        [experiment.experiment_id], "tags.`journeyopt.promotion.decision` = 'refused'"
    )
    assert len(runs) == 2
    last = max(runs, key=lambda r: r.info.start_time)
    decision_json = client.download_artifacts(last.info.run_id, "promotion/decision.json")
    evidence = pd.read_json(decision_json, typ="series")["evidence"]
    baselines = {(e["test"], e["baseline"], e["blocking"]) for e in evidence}
    champion = f"champion (models:/{registry.name}/{better})"
    assert ("simulation", champion, True) in baselines
    assert ("simulation", "today's practice", False) in baselines
    assert ("ope", champion, True) in baselines and ("ope", "today's practice", False) in baselines
    metrics = last.data.metrics
    assert metrics["gate/promoted"] == 0.0
    assert "gate/ope_estimate" in metrics and "gate/ope_vs_practice_estimate" in metrics
    assert "gate/simulation_vs_practice_ci_low" in metrics and "gate/model_free_passed" in metrics
    history = client.get_metric_history(last.info.run_id, "gate/ope_estimate")
    assert [m.step for m in history] == [0]  # one value per run: the UI draws bars


def test_window_only_estimator_keeps_working(
    mlflow_sqlite: TrackingConfig, recent_logs: Path
) -> None:
    """The window-only estimators stay available (``gate.ope_estimator=dr``): over a 4-week
    window a fixed-action policy fails the overlap diagnostics, and the gate says so."""
    registry = PolicyRegistry(mlflow_sqlite)
    calls = register(mlflow_sqlite, fixed_action(1), "always_newsletter")
    cfg = gate_config(f"models:/{registry.name}/{calls}", recent_logs, mlflow_sqlite)
    cfg.gate = GateConfig(ope_estimator="dr", require_model_check=False, require_model_free=False)
    cfg.ope = PromoteOPEConfig(horizon_weeks=4, n_boot=100)
    with pytest.raises(PromotionRefused, match="overlap diagnostics failed"):
        promote(cfg)


def test_logs_without_propensities_get_calibrated_behaviour_cloning(recent_logs: Path) -> None:
    """Logs whose contacts carry no propensity (most CRM exports): the behaviour policy's
    probabilities are estimated by behaviour cloning, its calibration is reported, and the
    estimates are close to the probabilities the logging policy really used."""
    world = load_world("coworking")
    source = coworking_source(recent_logs)
    panel = build_panel(ingest_to_logs(source)[0], panel_config(), tuple(source.contact_channels))
    logged = logged_trajectories(panel, world, contact_rules(world), 4)
    assert logged.propensity_source == "logged"
    assert logged.propensity_calibration.empty

    blind = panel.assign(propensity=np.nan)
    estimated = logged_trajectories(blind, world, contact_rules(world), 4)
    assert estimated.propensity_source == "estimated"
    assert not estimated.propensity_calibration.empty
    assert estimated.propensity.shape == logged.propensity.shape
    assert ((estimated.propensity > 0) & (estimated.propensity <= 1)).all()
    # staff rules with 10 % exploration: the classifier recovers the logged probabilities
    error = np.abs(estimated.propensity - logged.propensity)
    assert float(np.median(error)) < 0.05
    assert float(error.mean()) < 0.08  # a uniform guess would be off by about 0.7


def test_candidate_by_run_id_or_models_uri(mlflow_sqlite: TrackingConfig) -> None:
    """``candidate=`` takes a registered version's URI or the id of the run that logged and
    registered it (its newest version); anything else is refused in one clear line."""
    policy = fixed_action(0)
    n_features, n_actions = policy.weights.shape
    with tracked_run({}, "cand", tracking=mlflow_sqlite, log_config=False) as run:
        info = log_policy_model(
            run, policy, np.zeros((2, n_features), np.float32), np.ones((2, n_actions), bool)
        )
        run_id = run.run_id
    assert info is not None and run_id is not None
    registry = PolicyRegistry(mlflow_sqlite)
    first = registry.register(info)
    second = registry.register(info)
    assert resolve_candidate(registry, run_id).version == second.version
    assert resolve_candidate(registry, first.uri).version == first.version
    with pytest.raises(JourneyoptError, match=r"no version of \S+ was registered by this run"):
        resolve_candidate(registry, "0" * 32)
    with pytest.raises(JourneyoptError, match="candidate=models:/journey-policy/99"):
        resolve_candidate(registry, "models:/journey-policy/99")


def test_model_check_blocks_a_wrong_model_world_or_warns(
    mlflow_sqlite: TrackingConfig, recent_logs: Path
) -> None:
    """A model world with the booking odds doubled overvalues what the logging policy
    earned: the gate's model check fails and refuses the promotion; with
    ``gate.require_model_check=false`` the failure is a warning and the other tests decide."""
    registry = PolicyRegistry(mlflow_sqlite)
    better = register(mlflow_sqlite, cloned_myopic(recent_logs), "myopic_clone")
    cfg = gate_config(f"models:/{registry.name}/{better}", recent_logs, mlflow_sqlite)
    version = resolve_candidate(registry, cfg.candidate)
    candidate = load_served(version, mlflow_sqlite, load_world("coworking"), "candidate")
    wrong = booking_odds_scaled(load_world("coworking"), 2.0)
    staff = StaffPolicy(wrong, shipped_practice("coworking").to_practice())

    decision = run_gate(cfg, wrong, (wrong,), version, candidate, staff, "staff_rules")
    assert not decision.promote
    assert any(r.startswith("model_check test failed") for r in decision.reasons)
    assert not decision.inconclusive  # shown wrong: evidence against, not want of it
    table = decision.table
    check = table[table["key"] == "model_check"].iloc[0]
    assert not check["passed"] and check["lower_bound"] > cfg.gate.model_check_tolerance
    assert check["candidate"] > check["champion"]  # predicted above realised

    # the same tests with the check as a warning: the other tests decide
    cfg.gate = GateConfig(require_model_check=False)
    others = [e for e in decision.evidence if e.test != "model_check"]
    warned = model_evidence(cfg, ValueModel(wrong), recent_panel(cfg))[0]
    assert not warned.passed and not warned.blocking
    lenient = decide([*others, warned])
    assert lenient.warnings == (f"model_check test failed, not blocking ({warned.source}): "
                                f"{warned.note}",)  # fmt: skip
    assert not any(r.startswith("model_check") for r in lenient.reasons)
    assert lenient.promote == all(e.passed for e in others)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"model_check_tolerance": 0.0}, "gate.model_check_tolerance must be in"),
        ({"model_check_tolerance": 1.0}, "gate.model_check_tolerance must be in"),
        ({"model_check_min_action_share": 0.0}, "gate.model_check_min_action_share must be in"),
        ({"model_check_min_action_share": 1.2}, "gate.model_check_min_action_share must be in"),
        ({"model_check_outcome_weeks": 0}, "gate.model_check_outcome_weeks must be >= 1"),
        ({"confidence": 1.0}, "gate.confidence must be in"),
        ({"ope_estimator": "ips"}, "gate.ope_estimator: unknown 'ips'"),
    ],
)
def test_gate_settings_are_validated(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        GateConfig(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"horizon_weeks": 0}, "ope.horizon_weeks must be >= 1"),
        ({"model_check_weeks": 0}, "ope.model_check_weeks must be >= 1"),
        ({"model_free_max_weeks": 0}, "ope.model_free_max_weeks must be >= 1"),
        ({"rollout_customers": 0}, "ope.rollout_customers must be >= 1"),
    ],
)
def test_gate_ope_settings_are_validated(kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        PromoteOPEConfig(**kwargs)


def test_without_champion_the_baseline_is_the_configured_staff_practice(
    mlflow_sqlite: TrackingConfig, recent_logs: Path
) -> None:
    """With no champion the candidate is judged against ``evaluation.staff`` (the practice
    ``journeyopt-evaluate``/``-compare`` use); without one configured, a practice that contacts
    nobody (nothing of the demo is assumed); a rule naming a customer type the world does not
    have is refused (it would silently call nobody: an easier baseline)."""
    world = load_world("coworking")
    registry = PolicyRegistry(mlflow_sqlite)
    staff = StaffRulesConfig(
        rules=[PracticeRuleConfig(action="newsletter", segments=["freelancer"], every_weeks=2)]
    )
    policy, ref = champion_policy(registry, mlflow_sqlite, world, staff=staff)
    assert ref == "staff_rules" and isinstance(policy, StaffPolicy)
    assert policy.practice == staff.to_practice() != shipped_practice("coworking").to_practice()
    default, _ = champion_policy(registry, mlflow_sqlite, world)
    assert isinstance(default, StaffPolicy) and default.practice == Practice()

    quiet = register(mlflow_sqlite, fixed_action(0), "no_contact")
    cfg = gate_config(f"models:/{registry.name}/{quiet}", recent_logs, mlflow_sqlite)
    crm = StaffRulesConfig(
        rules=[PracticeRuleConfig(action="personal_call", segments=["Startup", "Firma"])]
    )
    cfg.evaluation = EvaluationConfig(staff=crm)
    unknown = (
        r"evaluation.staff.rules\[0\].segments names customer type\(s\) \['Startup', 'Firma'\]"
    )
    with pytest.raises(ConfigError, match=unknown):
        promote(cfg)  # refused before any test runs, nothing recorded or promoted
    with pytest.raises(MlflowException):
        registry.alias(CHAMPION)


def test_promote_config_reads_the_practice_of_evaluate_and_compare() -> None:
    """``evaluation.staff`` choices reach the gate exactly as they reach
    ``journeyopt-compare``: a whole practice file, or one field of a rule."""
    register_configs()
    overrides = [
        "candidate=models:/journey-policy/1",
        "data=coworking",
        "simulator=coworking",
        "panel=coworking",
        "practice@evaluation.staff=coworking_crm",
        "evaluation.staff.rules.0.segments=[Firma]",
    ]
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = to_object(compose("promote", overrides=overrides), PromoteConfig)
    assert cfg.evaluation.staff.rules[0].segments == ["Firma"]
    assert cfg.evaluation.staff.rules[1:] == shipped_practice("coworking_crm").rules[1:]


def test_the_gate_masks_logged_weeks_with_the_served_contact_rules(recent_logs: Path) -> None:
    """Off-policy evaluation allows exactly what serving allows: ``serve.rules`` (caps,
    cool-down) mask the logged weeks, not only the world's opt-outs."""
    world = load_world("coworking")
    cfg = gate_config("models:/journey-policy/1", recent_logs, TrackingConfig())
    panel = recent_panel(cfg)
    served = served_trajectories(cfg, panel, world, 2)
    own = logged_trajectories(panel[panel["week"] > panel["week"].max() - 2], world,
                              contact_rules(world), 2)  # fmt: skip
    assert served.masks.shape == own.masks.shape
    assert not (served.masks & ~own.masks).any()  # the served rules only forbid more
    assert (own.masks & ~served.masks).any()  # caps and cool-downs bite on these logs
    expected = serving_rules(world, cfg.serve.rules)
    for t in range(2):
        features = {name: values[:, t] for name, values in served.features.items()}
        np.testing.assert_array_equal(served.masks[:, t], expected.masks(features))

    cfg.serve = ServingConfig(rules=RulesConfig(frequency_caps={"email": 0}, cooldown_weeks=0))
    no_email = served_trajectories(cfg, panel, world, 2)
    email = [a for a, ch in enumerate(world.actions.channels) if ch == "email"]
    assert email and not no_email.masks[:, :, email].any()


def test_a_candidate_trained_under_other_rules_than_served_is_refused_naming_them(
    mlflow_sqlite: TrackingConfig, recent_logs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Training under the demo's rules and serving under one's own (or the reverse) is what a
    user forgets: the gate stops before any simulation with one line naming the options."""
    registry = PolicyRegistry(mlflow_sqlite)
    served = shipped_rules("coworking")
    version = register(mlflow_sqlite, fixed_action(0), "no_contact")
    trained = RulesConfig(frequency_caps={"email": 5}, cooldown_weeks=served.cooldown_weeks)
    registry.client.set_model_version_tag(registry.name, version, RULES_TAG, trained.fingerprint())
    cfg = gate_config(f"models:/{registry.name}/{version}", recent_logs, mlflow_sqlite)
    with pytest.raises(SystemExit) as exited:  # as journeyopt-promote runs it
        report_errors(lambda: promote(cfg))
    assert exited.value.code == 2
    message = capsys.readouterr().err.strip().splitlines()[-1]
    assert message.startswith(f"error: models:/{registry.name}/{version} was trained under other")
    assert "frequency_caps: " in message and "rules@simulator.rules=" in message

    # the same rules pass the check (and a version without the tag is not checked)
    registry.client.set_model_version_tag(registry.name, version, RULES_TAG, served.fingerprint())
    check_trained_rules(registry, registry.version(version), served)
    quiet = register(mlflow_sqlite, fixed_action(0), "untagged")
    check_trained_rules(registry, registry.version(quiet), trained)
