"""Contact policies behind one interface (:class:`journeyopt.agents.policy.Policy`): baselines,
the exact optimum and trained agents."""
