"""Soak test under faults (scripts/soak) and the checks of its premises."""
