"""Interaction logs: canonical schema, source configs, ingestion, de-duplication, identities."""
