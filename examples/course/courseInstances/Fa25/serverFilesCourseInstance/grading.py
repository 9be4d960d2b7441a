"""Grade cut-offs for Fall 2025."""

CUTOFFS = {"A": 90, "B": 80, "C": 70}
