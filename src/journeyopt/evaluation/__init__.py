"""Evaluation of contact policies: simulation with common random numbers and confidence
intervals (:func:`journeyopt.evaluation.simulate.evaluate_policies`)."""
