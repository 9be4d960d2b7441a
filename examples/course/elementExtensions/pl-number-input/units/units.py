"""Accepts SI prefixes in numeric answers."""

PREFIXES = {"k": 1e3, "m": 1e-3, "u": 1e-6}


def parse(value):
    unit = value[-1:]
    return float(value[:-1]) * PREFIXES[unit] if unit in PREFIXES else float(value)
