"""Bundled implementations under test: ``fast`` (the optimized buddy allocator) and its seeded-bug ``mutants``."""
