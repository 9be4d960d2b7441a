"""Solve a linear equation: parameter generation and grading."""

import random


def generate(data):
    a = random.randint(2, 9)
    b = random.randint(1, 20)
    data["params"]["a"] = a
    data["params"]["b"] = b
    data["correct_answers"]["x"] = round(b / a, 3)


def grade(data):
    if data["score"] < 1 and data["submitted_answers"].get("x") == 0:
        data["feedback"]["x"] = "Zero is never the answer here."
