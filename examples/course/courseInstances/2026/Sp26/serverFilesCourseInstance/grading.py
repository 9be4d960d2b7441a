"""Grade cut-offs for Spring 2026."""

CUTOFFS = {"A": 90, "B": 80, "C": 70}
