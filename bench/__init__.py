"""Side-by-side benchmarks of Secure Remote Access (run with ``scripts/bench``; not a test suite)."""
