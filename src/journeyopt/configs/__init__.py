"""Hydra configs shipped with journeyopt (a package so that Hydra can find them)."""
