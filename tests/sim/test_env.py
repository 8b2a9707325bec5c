"""The gymnasium environment and the vectorised population environment."""

from __future__ import annotations

from dataclasses import replace

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import journeyopt  # noqa: F401  (registers the env)
from journeyopt.sim.env import ENV_ID, CustomerJourneyEnv, InitialPool
from journeyopt.sim.rules import ContactRules
from journeyopt.sim.vec_env import PopulationVecEnv
from journeyopt.sim.world import WorldSpec


@pytest.fixture(scope="module")
def pool(world: WorldSpec) -> InitialPool:
    return InitialPool.draw(world, 300, seed=0, horizon_weeks=52)


def _rollout(env: CustomerJourneyEnv, seed: int, actions: list[int]) -> list[tuple]:
    obs, _ = env.reset(seed=seed)
    steps = [(obs.tobytes(),)]
    for a in actions:
        obs, r, term, trunc, info = env.step(a)
        steps.append((obs.tobytes(), r, term, trunc, info["action"]))
    return steps


def test_checkers_pass(world: WorldSpec, pool: InitialPool) -> None:
    gym_check_env(CustomerJourneyEnv(world, horizon_weeks=8, pool=pool), skip_render_check=True)
    sb3_check_env(CustomerJourneyEnv(world, horizon_weeks=8, pool=pool), warn=True)


def test_registered_on_import() -> None:
    env = gymnasium.make(ENV_ID, world="coworking", horizon_weeks=3, pool_size=50)
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    env.close()


def test_two_seed_determinism(world: WorldSpec, pool: InitialPool) -> None:
    actions = [4, 1, 3, 0, 2, 4, 4, 1] * 2
    env = CustomerJourneyEnv(world, horizon_weeks=16, pool=pool)
    first = [_rollout(env, seed, actions) for seed in (1, 2)]
    again = [
        _rollout(CustomerJourneyEnv(world, horizon_weeks=16, pool=pool), s, actions) for s in (1, 2)
    ]
    assert first == again
    assert first[0] != first[1]


def test_truncated_at_horizon_never_terminated(world: WorldSpec, pool: InitialPool) -> None:
    env = CustomerJourneyEnv(world, horizon_weeks=5, pool=pool)
    env.reset(seed=0)
    flags = [env.step(0)[2:4] for _ in range(5)]
    assert flags == [(False, False)] * 4 + [(False, True)]
    with pytest.raises(RuntimeError, match="episode is over"):
        env.step(0)


def test_opted_out_customer_only_none(world: WorldSpec, pool: InitialPool) -> None:
    # a customer opted out of every channel
    opted = replace(pool.state, opted_out=np.ones_like(pool.state.opted_out))
    env = CustomerJourneyEnv(world, horizon_weeks=6, pool=replace(pool, state=opted))
    env.reset(seed=3)
    assert env.action_masks().tolist() == [True, False, False, False, False]
    info = env.step(4)[4]
    assert info["forbidden"] and info["action"] == 0 and info["forbidden_actions"] == 1
    assert info["contact_cost"] == 0.0


def test_forbidden_actions_never_contact(world: WorldSpec, pool: InitialPool) -> None:
    # a cap of zero phone contacts forbids calls for everybody
    rules = ContactRules(world.actions, world.features, frequency_caps={"phone": 0})
    env = PopulationVecEnv(world, 200, horizon_weeks=4, rules=rules, pool=pool, seed=0)
    env.reset()
    call = world.actions.names.index("personal_call")
    assert not env.action_masks()[:, call].any()
    _, rewards, _, _ = env.step(np.full(200, call))
    assert env.forbidden_actions == 200
    assert (env.features["contacts_4w_phone"] == 0).all()
    assert (rewards >= 0).all()  # no contact cost, no discount


def test_single_and_vectorised_identical(world: WorldSpec, pool: InitialPool) -> None:
    rng = np.random.default_rng(5)
    actions = rng.integers(0, world.actions.n_actions, size=20)
    single = CustomerJourneyEnv(world, horizon_weeks=10, pool=pool)
    vec = PopulationVecEnv(world, 1, horizon_weeks=10, pool=pool)
    vec.seed(11)
    obs_v = vec.reset()
    obs_s, _ = single.reset(seed=11)
    for a in actions:
        np.testing.assert_array_equal(obs_s, obs_v[0])
        np.testing.assert_array_equal(single.action_masks(), vec.env_method("action_masks")[0])
        obs_s, r_s, _, trunc, _ = single.step(int(a))
        obs_v, r_v, done, infos = vec.step(np.array([a]))
        assert np.float32(r_s) == r_v[0]
        assert trunc == done[0]
        if trunc:
            np.testing.assert_array_equal(obs_s, infos[0]["terminal_observation"])
            obs_s, _ = single.reset()


def test_vec_auto_reset(world: WorldSpec, pool: InitialPool) -> None:
    env = PopulationVecEnv(world, 50, horizon_weeks=3, pool=pool, seed=0)
    first = env.reset()
    for week in range(1, 4):
        obs, _, dones, infos = env.step(np.zeros(50, np.int64))
        assert dones.all() == (week == 3)
    assert all(i["TimeLimit.truncated"] for i in infos)
    assert env.week == 0
    woy = env.layout.index("week_of_year")
    terminal = np.stack([i["terminal_observation"] for i in infos])
    # the terminal observation is of week 4 of the year, the fresh one of week 1 again
    np.testing.assert_allclose(terminal[:, woy], 3 / 52, rtol=1e-6)
    np.testing.assert_allclose(obs[:, woy], 0.0)
    assert obs.shape == first.shape == (50, env.layout.size)


def test_maskable_ppo_reads_vec_masks(world: WorldSpec, pool: InitialPool) -> None:
    from sb3_contrib.common.maskable.utils import get_action_masks, is_masking_supported

    env = PopulationVecEnv(world, 7, horizon_weeks=3, pool=pool, seed=0)
    env.reset()
    assert is_masking_supported(env)
    np.testing.assert_array_equal(get_action_masks(env), env.action_masks())


def test_maskable_ppo_learns_on_the_vec_env(world: WorldSpec, pool: InitialPool) -> None:
    import torch
    from sb3_contrib import MaskablePPO

    torch.set_num_threads(1)
    env = PopulationVecEnv(world, 8, horizon_weeks=4, pool=pool, seed=0)
    model = MaskablePPO("MlpPolicy", env, n_steps=8, batch_size=32, n_epochs=1, seed=0)
    model.learn(total_timesteps=64)
    actions, _ = model.predict(env.reset(), action_masks=env.action_masks())
    assert actions.shape == (8,)


def test_vec_infos_are_empty_between_resets_even_if_a_caller_writes(
    world: WorldSpec, pool: InitialPool
) -> None:
    env = PopulationVecEnv(world, 20, horizon_weeks=4, pool=pool, seed=0)
    env.reset()
    infos = env.step(np.zeros(20, np.int64))[3]
    assert len(infos) == 20 and not any(infos)
    infos[3]["episode"] = {"r": 1.0}  # e.g. a wrapper writing into the list it was given
    again = env.step(np.zeros(20, np.int64))[3]
    assert len(again) == 20 and not any(again)
    assert infos[3] == {"episode": {"r": 1.0}}  # the caller's list is left alone
