"""Bundled implementations: `reference`, `fast`, and the seeded-bug mutants of `fast`."""
