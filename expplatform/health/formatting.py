"""Numbers as the health page prints them, and the arithmetic behind the banner's shares.

Kept apart from the HTML so each rule (3 significant digits for p-values, signed
percentage points, weights normalised to sum 1) is a pure function with its own tests.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")

#: What each sample-ratio status means for a reader of the page (contract §5's rules).
STATUS_LABELS = {
    "healthy": "Healthy",
    "warning": "Warning",
    "unhealthy": "Unhealthy",
    "not_enough_traffic": "Not enough traffic",
    "no_data": "No data",
}
STATUS_EXPLANATIONS = {
    "healthy": "The split of users matches the planned weights (p ≥ 0.01).",
    "warning": (
        "The split of users is further from the planned weights than chance usually explains "
        "(p < 0.01): watch it, it may turn into a mismatch."
    ),
    "unhealthy": (
        "Sample-ratio mismatch: the split of users differs from the planned weights "
        "(p < 0.001, an arm's share off by at least 0.1 percentage points). The assignment is "
        "broken or biased; do not read this experiment's results until the cause is found "
        "(docs/RUNBOOK.md)."
    ),
    "not_enough_traffic": (
        "Too few users to test the split: every arm needs at least 8 users in the test."
    ),
    "no_data": "No user has been assigned to this experiment yet.",
}
#: Banner and strip colours (the same hues as the matplotlib chart of `expplatform report`).
STATUS_COLOURS = {
    "healthy": "#2e7d32",
    "warning": "#f9a825",
    "unhealthy": "#c62828",
    "not_enough_traffic": "#9e9e9e",
    "no_data": "#9e9e9e",
}
#: Order of the statuses from worst to best (index page summary, legends).
STATUS_ORDER = ("unhealthy", "warning", "not_enough_traffic", "healthy", "no_data")

DASH = "—"
MINUS = "−"


def format_significant(value: float | None, digits: int = 3) -> str:
    """`value` to `digits` significant digits, trailing zeros kept (0.500, 1.00, 0.00468).

    Values below 0.001 are written in scientific notation (1.74 × 10⁻⁶) so a reader
    never has to count zeros. Zero is printed as "0"; None (no test) as a dash.
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return DASH
    if digits < 1:
        raise ValueError(f"digits must be >= 1, got {digits}")
    if value == 0:
        return "0"
    sign = MINUS if value < 0 else ""
    magnitude = abs(value)
    # Round first, then choose the notation: 0.0009996 rounds to 0.00100, not 1.00 × 10⁻³.
    mantissa, exponent = f"{magnitude:.{digits - 1}e}".split("e")
    exp = int(exponent)
    if -3 <= exp < digits:
        return f"{sign}{magnitude:.{digits - 1 - exp}f}"
    if digits <= exp < 6:
        # 12345.6 to 3 digits is 12300: round to the digit, print the integer
        return f"{sign}{round(magnitude, digits - 1 - exp):.0f}"
    return f"{sign}{mantissa} × 10{str(exp).translate(_SUPERSCRIPT)}"


def format_p_value(p: float | None) -> str:
    """A p-value to 3 significant digits; an underflowed 0 as "< 10⁻³⁰⁰" (not a certainty)."""
    if p is not None and p == 0:
        return "< 10" + "-300".translate(_SUPERSCRIPT)
    return format_significant(p, 3)


def format_chi_square(chi: float | None) -> str:
    """χ² with two decimals and thousands separators (a dash when there is no test)."""
    if chi is None or math.isnan(chi):
        return DASH
    return f"{chi:,.2f}"


def format_count(n: int | None) -> str:
    """A count with thousands separators."""
    return DASH if n is None else f"{n:,}"


def format_share(share: float | None) -> str:
    """A share as a percentage with two decimals (the unhealthy threshold is 0.1 points)."""
    if share is None:
        return DASH
    text = f"{share * 100:.2f}%"
    return text.replace("-", MINUS)


def format_points(difference: float | None) -> str:
    """A share difference in signed percentage points: +14.29 pp, −0.05 pp, 0.00 pp."""
    if difference is None:
        return DASH
    points = round(difference * 100, 2)
    if points == 0:
        return "0.00 pp"
    return f"{'+' if points > 0 else MINUS}{abs(points):.2f} pp"


def format_timestamp(value: datetime | None) -> str:
    """A UTC timestamp to the second, labelled UTC (the serving copy stores naive UTC)."""
    return DASH if value is None else f"{value:%Y-%m-%d %H:%M:%S} UTC"


def degrees_of_freedom(registered_arms: int) -> int | None:
    """Pearson's test over k registered arms has k − 1 degrees of freedom (None below 2 arms)."""
    return registered_arms - 1 if registered_arms >= 2 else None


@dataclass(frozen=True)
class ArmShare:
    """One arm of the sample-ratio test: users in the test, observed and expected share."""

    arm: str
    users: int
    observed_share: float | None
    expected_share: float

    @property
    def difference(self) -> float | None:
        """Observed minus expected share (None while no user is in the test)."""
        return None if self.observed_share is None else self.observed_share - self.expected_share


def arm_shares(users: Mapping[str, int], weights: Sequence[tuple[str, float]]) -> list[ArmShare]:
    """Observed vs expected share per registered arm, in the order of `weights`.

    `weights` are the registry's (arm, expected_weight); they are normalised to sum 1,
    as the contract's test does. `users` holds the users in the test per arm (users in
    several variations and unregistered variations already left out); an arm absent
    from it has 0 users. Observed shares are None while no user is in the test.
    """
    total_weight = sum(weight for _, weight in weights)
    if not weights or total_weight <= 0:
        raise ValueError(f"expected weights must be positive, got {list(weights)}")
    total_users = sum(users.get(arm, 0) for arm, _ in weights)
    return [
        ArmShare(
            arm=arm,
            users=users.get(arm, 0),
            observed_share=users.get(arm, 0) / total_users if total_users else None,
            expected_share=weight / total_weight,
        )
        for arm, weight in weights
    ]
