"""B's daily run split into a fixed part and a part proportional to the day's events.

Two estimates, both from measured runs (nothing is modelled ahead of time):

- **Two sizes** (needs B and E in one result): B's late day (the default scale, millions of
  event lines) and E's day (the make-run sample, tens of thousands) are both whole daily
  runs of the same pipeline. The line through (events, wall seconds) of the two gives the
  fixed seconds (the intercept) and the seconds per million events (the slope). It assumes
  time is linear in the day's events and that history size does not matter, which B's
  late/early ratio checks (history grows about threefold between them).
- **From the step timings** (B alone): the time that is overhead whatever the day's size:
  process start-up (imports, definitions), the process's exit, dbt's own start-up and
  parsing inside each dbt step (the step's time minus its models' and tests' time), and
  Dagster's time between steps. The rest (loads, models, tests, Python checks) is counted
  as per-event; it includes work that scales with history or users rather than events,
  so this fixed part is a lower bound.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any


def two_point_fit(small: tuple[int, float], large: tuple[int, float]) -> dict[str, float] | None:
    """The line through two (events, seconds) points: fixed seconds and seconds per 1M events.

    None when both points have the same number of events (no slope to measure).
    """
    (n1, t1), (n2, t2) = small, large
    if n1 == n2:
        return None
    slope = (t2 - t1) / (n2 - n1)
    return {"fixed_s": t1 - slope * n1, "per_million_events_s": slope * 1e6}


def step_overheads(runs: Sequence[dict[str, Any]]) -> dict[str, float] | None:
    """Median seconds of the size-independent parts of measured runs (see the module doc)."""
    parts: dict[str, list[float]] = {}
    for run in runs:
        detail = run.get("detail") or {}
        startup, execute = detail.get("startup_s"), detail.get("execute_s")
        steps = detail.get("steps") or {}
        if startup is None or execute is None or not steps:
            continue
        dbt = sum(
            max(0.0, s.get("seconds", 0.0) - s.get("models_s", 0.0) - s.get("tests_s", 0.0))
            for s in steps.values()
            if s.get("models_s") or s.get("tests_s")
        )
        in_steps = sum(s.get("seconds", 0.0) for s in steps.values())
        values = {
            "wall_s": run["wall_s"],
            "startup_s": startup,
            "exit_s": max(0.0, run["wall_s"] - startup - execute),
            "dbt_overhead_s": dbt,
            "between_steps_s": max(0.0, execute - in_steps),
        }
        values["fixed_s"] = sum(v for k, v in values.items() if k != "wall_s")
        values["rest_s"] = run["wall_s"] - values["fixed_s"]
        for name, value in values.items():
            parts.setdefault(name, []).append(value)
    if not parts:
        return None
    return {name: statistics.median(values) for name, values in parts.items()}


def daily_split(result: dict[str, Any]) -> dict[str, Any] | None:
    """B's late daily run as fixed + per-event parts, by both methods where the data allow."""
    daily, single = result.get("daily"), result.get("single")
    if not daily:
        return None
    late = daily["late"]
    split: dict[str, Any] = {
        "day": late["day"],
        "event_lines": late.get("event_lines"),
        "wall_s": late["wall_s"]["median"],
        "from_steps": step_overheads(late.get("runs", [])),
    }
    if single and late.get("event_lines") and single.get("event_lines"):
        fit = two_point_fit(
            (single["event_lines"], single["wall_s"]["median"]),
            (late["event_lines"], late["wall_s"]["median"]),
        )
        if fit is not None:
            split["two_sizes"] = {
                **fit,
                "small": {"day": single["day"], "event_lines": single["event_lines"]},
                "large": {"day": late["day"], "event_lines": late["event_lines"]},
            }
    return split
