"""Off-policy evaluation: a target policy's value estimated from logged decisions.

- :mod:`~journeyopt.evaluation.ope.logged`: trajectories from the panel of canonical logs;
- :mod:`~journeyopt.evaluation.ope.bandit`: one-step IPS, SNIPS, DM, DR, switch-DR, clipped;
- :mod:`~journeyopt.evaluation.ope.sequential`: PDIS, WPDIS, sequential DR, direct value;
- :mod:`~journeyopt.evaluation.ope.model_value`, :mod:`~journeyopt.evaluation.ope.fqe`: the
  value models (the world's, fitted-Q evaluation);
- :mod:`~journeyopt.evaluation.ope.bootstrap`: intervals by the bootstrap over customers;
- :mod:`~journeyopt.evaluation.ope.diagnostics`: effective sample size and overlap;
- :mod:`~journeyopt.evaluation.ope.model_check`: is the model world right about the logs (the
  logging policy replayed in it against what the logs realised);
- :mod:`~journeyopt.evaluation.ope.evaluate`: all of it for one policy.
"""
