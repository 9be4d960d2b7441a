"""Helpers shared by every question's server.py."""


def sigfig(x, digits=3):
    return float(f"{x:.{digits}g}")
