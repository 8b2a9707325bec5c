"""Simulation: world specs, pure batched dynamics, contact rules, log generation and the exact
optimum of ground-truth worlds.

Main entry points: :func:`journeyopt.sim.world.load_world`,
:func:`journeyopt.sim.dynamics.sample_week`, :func:`journeyopt.sim.discrete.discrete_state`,
:func:`journeyopt.sim.logs.generate_logs`, :func:`journeyopt.sim.optimum.solve_optimum`.
"""
