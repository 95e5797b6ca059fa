"""The issue's targets and how a result measures against them."""

from __future__ import annotations

from typing import Any

#: The issue's targets, at the default scale on the 2-core machine.
TARGET_A_OVER_C = 1.5
TARGET_B_LATE_OVER_EARLY = 1.2
TARGET_DASHBOARD_MS = 50.0
TARGET_DASHBOARD_SPEEDUP = 1000.0
TARGET_PEAK_RSS_GIB = 4.0
#: One daily partition of the `make run` sample on a built warehouse, command start to exit.
TARGET_E_SINGLE_DAY_S = 10.0


def evaluate_targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target of the issue with the measured value and whether it is met."""
    targets: list[dict[str, Any]] = []

    def add(name: str, value: float | None, limit: float, higher_is_better: bool = False) -> None:
        met = None
        if value is not None:
            met = value >= limit if higher_is_better else value <= limit
        targets.append(
            {
                "target": name,
                "value": value,
                "limit": limit,
                "rule": ">=" if higher_is_better else "<=",
                "met": met,
            }
        )

    a, b, c, d = (result.get(k) for k in ("backfill", "daily", "bare", "dashboard"))
    if a and c:
        add(
            "A backfill wall / C bare wall",
            a["wall_s"]["median"] / c["wall_s"]["median"],
            TARGET_A_OVER_C,
        )
    if b:
        add(
            f"B day {b['late']['day']} / B day {b['early']['day']} (wall)",
            b["late_over_early"],
            TARGET_B_LATE_OVER_EARLY,
        )
    if d:
        for name, q in d["queries"].items():
            add(f"D {name} median ms", q["warm_ms"]["median"], TARGET_DASHBOARD_MS)
            add(
                f"D {name} speed-up vs ad-hoc",
                q["speedup_vs_adhoc"],
                TARGET_DASHBOARD_SPEEDUP,
                higher_is_better=True,
            )
    if a:
        add("A peak RSS GiB (max of runs)", a["peak_rss_gib"]["max"], TARGET_PEAK_RSS_GIB)
    if b:
        peak = max(b["early"]["peak_rss_gib"]["max"], b["late"]["peak_rss_gib"]["max"])
        add("B peak RSS GiB (max of runs)", peak, TARGET_PEAK_RSS_GIB)
    e = result.get("single")
    if e:
        add(
            f"E make-run day {e['day']}, command start to exit (s, median)",
            e["wall_s"]["median"],
            TARGET_E_SINGLE_DAY_S,
        )
    return targets
