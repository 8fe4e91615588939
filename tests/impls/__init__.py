"""Alternative correct allocators: they place blocks differently from ``fast`` and must pass the whole suite."""
