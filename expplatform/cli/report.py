"""`expplatform report`: allocation over time of one experiment, from the serving copy.

The report reads the readers' copy of the marts (EXPPLATFORM_SERVING_PATH), never the warehouse,
so it answers in milliseconds even while a run writes (expplatform/serving.py).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import time
from collections.abc import Sequence
from datetime import date
from pathlib import Path

from expplatform import catalog
from expplatform.cli.common import EXIT_OK, date_arg, err, note
from expplatform.config import get_settings

REPORT_COLUMNS = (
    "date",
    "variation_name",
    "new_users",
    "cumulative_users",
    "active_users",
    "exposures",
)


def allocation_report(
    con, experiment: str, *, by_tier: bool, start: date | None, end: date | None
) -> list[dict[str, object]]:
    """Allocation over time for one experiment from the mart (parameterised SQL)."""
    tier = ", subscription_tier" if by_tier else ""
    rows = con.execute(
        f"""
        select date, variation_name{tier},
               sum(new_users)::bigint as new_users,
               sum(cumulative_users)::bigint as cumulative_users,
               sum(active_users)::bigint as active_users,
               sum(exposures)::bigint as exposures
        from {catalog.MART_ALLOCATION}
        where experiment_key = $experiment
          and ($start::date is null or date >= $start::date)
          and ($end::date is null or date <= $end::date)
        group by all
        order by date, variation_name{tier}
        """,
        {"experiment": experiment, "start": start, "end": end},
    )
    names = [d[0] for d in rows.description]
    return [dict(zip(names, r, strict=True)) for r in rows.fetchall()]


def format_rows(rows: Sequence[dict[str, object]], fmt: str) -> str:
    """Render report rows as an aligned table, CSV or JSON."""
    if fmt == "json":
        return json.dumps(rows, default=str, indent=2)
    if not rows:
        return ""
    names = list(rows[0])
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=names, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return buffer.getvalue().rstrip("\n")
    cells = [[str(r[n]) for n in names] for r in rows]
    widths = [max(len(n), *(len(c[i]) for c in cells)) for i, n in enumerate(names)]
    numeric = [isinstance(rows[0][n], int | float) for n in names]

    def line(values: Sequence[str]) -> str:
        return "  ".join(
            v.rjust(w) if num else v.ljust(w)
            for v, w, num in zip(values, widths, numeric, strict=True)
        ).rstrip()

    return "\n".join([line(names), line(["-" * w for w in widths]), *(line(c) for c in cells)])


def cmd_report(args: argparse.Namespace) -> int:
    from expplatform.warehouse import WarehouseBusyError, connect

    settings = get_settings()
    if args.start and args.end and args.end < args.start:
        return err(f"--end {args.end} is before --start {args.start}")
    serving = settings.serving
    if not serving.exists():
        return err(
            f"the serving copy {serving} does not exist yet: it is published by every run — run "
            "`expplatform materialize` (or `make run`) first"
        )
    started = time.perf_counter()
    try:
        with connect(serving, read_only=True, on_wait=note, wait_seconds=args.wait) as con:
            rows = allocation_report(
                con, args.experiment, by_tier=args.by == "tier", start=args.start, end=args.end
            )
            if not rows:
                experiments = [
                    r[0]
                    for r in con.execute(
                        f"select distinct experiment_key from {catalog.MART_ALLOCATION} order by 1"
                    ).fetchall()
                ]
                return err(
                    f"no allocation rows for experiment {args.experiment!r} in that range; "
                    f"experiments with data: {', '.join(experiments) or 'none'}"
                )
    except WarehouseBusyError as exc:
        return err(str(exc))
    print(format_rows(rows, args.format))
    note(f"({len(rows)} rows in {1000 * (time.perf_counter() - started):.0f} ms from {serving})")
    if args.html:
        from expplatform.health import render_health_page

        Path(args.html).parent.mkdir(parents=True, exist_ok=True)
        Path(args.html).write_text(render_health_page(serving, args.experiment), encoding="utf-8")
        note(f"health page written to {args.html}")
    return EXIT_OK


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report", help="allocation over time of one experiment (from the serving copy)"
    )
    p.add_argument("--experiment", required=True)
    p.add_argument("--by", choices=["variation", "tier"], default="variation")
    p.add_argument("--start", type=date_arg("--start"))
    p.add_argument("--end", type=date_arg("--end"))
    p.add_argument("--format", choices=["table", "csv", "json"], default="table")
    p.add_argument("--html", metavar="PATH", help="also write the experiment's health page here")
    p.add_argument(
        "--wait", type=float, default=10.0, help="seconds to wait for a locked serving copy"
    )
    p.set_defaults(func=cmd_report)
