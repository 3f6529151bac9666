"""Shared fixtures. Fuzz runs are unseeded; reproduce a failure with ``pytest --hypothesis-seed=N``
(hypothesis prints the seed and a ``@reproduce_failure`` line when a property fails)."""
