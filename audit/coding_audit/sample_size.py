"""How many encounters an audit needs: Cochran's sample size for a proportion, with the finite
population correction when the population is known.

    n0 = z^2 * p * (1 - p) / e^2          z: the two-sided normal quantile of the confidence,
    n  = n0 / (1 + (n0 - 1) / N)          p: the expected error rate, e: the precision (margin),
                                          N: the population (the frame's size)

both rounded up. (W. G. Cochran, Sampling Techniques, 3rd ed., 1977, eq. 4.2 and 4.3.)"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Any

from audit.errors import InvalidInput

MIN_PRECISION = 0.001
"""A margin of 0.1 percentage point: at 99.9% confidence and p = 0.5 that already needs 2.7M encounters."""
FORMULA = "Cochran: n0 = z^2 p (1-p) / e^2; finite population: n = n0 / (1 + (n0 - 1) / N); rounded up"


def sample_size(
    confidence: float, precision: float, expected_error_rate: float, population: int | None = None
) -> dict[str, Any]:
    if not MIN_PRECISION <= precision < 0.5:  # 9.2e-247 (schemathesis) divided by zero: a 500 before
        raise InvalidInput("precision", f"precision must be from {MIN_PRECISION} to below 0.5")
    # -inv_cdf of the lower tail: 1 - (1 - c) / 2 rounds to 1.0 for c a hair below 1, and inv_cdf(1.0) raises
    z = -NormalDist().inv_cdf((1 - confidence) / 2)
    p = expected_error_rate
    n0 = z * z * p * (1 - p) / (precision * precision)
    n = _finite_population(n0, population)
    needed = max(1, math.ceil(n - 1e-9))
    if population:
        needed = min(needed, population)
    return {
        "n": needed,
        "n0": math.ceil(n0 - 1e-9),
        "z": round(z, 4),
        "confidence": confidence,
        "precision": precision,
        "expected_error_rate": p,
        "population": population,
        "formula": FORMULA,
    }


def _finite_population(n0: float, population: int | None) -> float:
    """Cochran's correction. At n0 <= 1 the answer is at most one encounter, and the formula's denominator
    1 + (n0 - 1) / N can round to zero there (p = 5e-324, N = 1: a division by zero found by schemathesis)."""
    if not population or n0 <= 1:
        return n0
    return n0 / (1 + (n0 - 1) / population)
