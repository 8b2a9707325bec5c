"""Thin Hydra entry points (``journeyopt-*`` commands) over plain, testable functions."""
