"""The two event line formats, rendered column-wise into byte templates with numpy.

:class:`LineFormat` turns a layout (constant text, zero-padded numbers,
strings picked per row) into all of a chunk's lines at once; :func:`ld_format`
/ :func:`ld_fields` and :func:`legacy_format` / :func:`legacy_fields` are the
LaunchDarkly JSON line and the legacy CSV row, odd variation spellings included.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import timedelta

import numpy as np

from expplatform.sample_data.batches import Batch
from expplatform.sample_data.story import (
    BOOL_SPELLINGS,
    DARK,
    DATE_PAD,
    DAY_MS,
    DAY_S,
    LD_KEYS,
    LD_REASONS,
    LD_VALUES,
    LD_VERSIONS,
    LEGACY_KEYS,
    LEGACY_TZ,
    LEGACY_TZ_OFFSET_S,
    PREREQ_OF,
    VARIATIONS,
    Plan,
)

LEGACY_HEADER = b"id,user,timestamp,key,variation_name,value\n"


_DIGITS4 = (((np.arange(10_000)[:, None] // np.array([1000, 100, 10, 1])) % 10) + 48).astype(
    np.uint8
)


def _put_digits(out: np.ndarray, col: int, width: int, values: np.ndarray) -> None:
    """Write zero-padded decimal `values` into columns [col, col+width) of `out`, 4 digits a step."""
    v = values.astype(np.int64)
    end = col + width
    while width > 0:
        k = min(4, width)
        out[:, end - k : end] = _DIGITS4[v % 10_000][:, 4 - k :]
        v = v // 10_000
        end -= k
        width -= k


def _variant_table(strings: Sequence[str]) -> np.ndarray:
    """Strings as rows of a uint8 table, NUL-padded to the longest (NULs are dropped on render)."""
    encoded = [s.encode("ascii") for s in strings]
    table = np.zeros((len(encoded), max(1, max(len(b) for b in encoded))), dtype=np.uint8)
    for i, b in enumerate(encoded):
        table[i, : len(b)] = np.frombuffer(b, dtype=np.uint8)
    return table


class LineFormat:
    """A line layout rendered for many rows at once.

    Parts are constant text, ``("d", field, width)`` zero-padded numbers or
    ``("v", field, strings)`` picked per row by an index. Every row is first
    rendered at the maximum width (variants NUL-padded), then the NULs are
    squeezed out: the whole line set is built with a handful of vectorised
    numpy operations instead of per-row string formatting.
    """

    def __init__(self, parts: Iterable[str | tuple]) -> None:
        template = bytearray()
        self._digits: list[tuple[str, int, int]] = []
        self._variants: list[tuple[str, int, np.ndarray]] = []
        for part in parts:
            if isinstance(part, str):
                template += part.encode("ascii")
            elif part[0] == "d":
                _, name, width = part
                self._digits.append((name, len(template), width))
                template += b"0" * width
            else:
                _, name, strings = part
                table = _variant_table(strings)
                self._variants.append((name, len(template), table))
                template += bytes(table.shape[1])
        self._template = np.frombuffer(bytes(template), dtype=np.uint8)

    def render(self, fields: dict[str, np.ndarray], rows: int) -> np.ndarray:
        """The `rows` lines as one flat uint8 array, from one value array per field."""
        out = np.empty((rows, self._template.size), dtype=np.uint8)
        out[:] = self._template
        for name, col, width in self._digits:
            _put_digits(out, col, width, fields[name])
        for name, col, table in self._variants:
            out[:, col : col + table.shape[1]] = table[fields[name]]
        flat = out.reshape(-1)
        return flat[flat != 0]


def _csv_field(value: str) -> str:
    # Quote what a CSV reader could otherwise trim or split (the odd " Treatment ").
    if value != value.strip() or "," in value or '"' in value:
        return '"' + value.replace('"', '""') + '"'
    return value


def _name_spellings(name: str) -> list[str]:
    """The canonical name first, then odd spellings (index = the `odd` code 1..4)."""
    cap = name.capitalize()
    if "_" in name:  # treatment_a -> Treatment_A
        cap = cap[:-1] + cap[-1].upper()
    return [name, cap, f" {cap} ", name.upper(), f"{name} "]


def _variation_name_table(csv: bool) -> list[str]:
    # Index = (flag * 3 + variation) * 5 + odd.
    table: list[str] = []
    for names in VARIATIONS:
        for var in range(3):
            for odd in range(5):
                s = _name_spellings(names[var])[odd] if var < len(names) else ""
                table.append(_csv_field(s) if csv else s)
    return table


def ld_format(plan: Plan) -> LineFormat:
    """The LaunchDarkly export line: one JSON object (contract §2.1)."""
    vnames = _variation_name_table(csv=False)
    values = [LD_VALUES[f][v] if v < len(LD_VALUES[f]) else "" for f in range(3) for v in range(3)]
    versions = [ver for pair in LD_VERSIONS for ver in pair]
    return LineFormat(
        [
            '{"event_id": "ld-',
            ("d", "id", 10),
            '", "is_active": "',
            ("v", "active", ["Y", "N"]),
            '", "project": "default", "environment": "production", "event": {"kind": "',
            ("v", "kind", ["feature", "debug"]),
            '", "creationDate": ',
            ("d", "creation", 13),
            ', "key": "',
            ("v", "flag", LD_KEYS),
            '", "version": ',
            ("v", "version", versions),
            ', "contextKeys": {"user": "u-',
            ("d", "user", plan.user_width),
            '"}, "variation": ',
            ("d", "var", 1),
            ', "variationName": "',
            ("v", "vname", vnames),
            '", "value": ',
            ("v", "value", values),
            ', "default": false, "reason": ',
            ("v", "reason", LD_REASONS),
            ("v", "prereq", ["", PREREQ_OF]),
            "}}\n",
        ]
    )


def ld_fields(rows: Batch, plan: Plan) -> dict[str, np.ndarray]:
    """The values of :func:`ld_format`'s fields for a batch of LaunchDarkly rows."""
    ev_day = rows["ev_day"].astype(np.int64)
    flag = rows["flag"].astype(np.intp)
    var = rows["var"].astype(np.intp)
    return {
        "id": rows["id"],
        "active": rows["active"],
        "kind": rows["kind"],
        "creation": (plan.epoch_day0 + ev_day) * DAY_MS + rows["ms"],
        "flag": flag,
        "version": flag * 2 + (ev_day >= plan.legacy_end),
        "user": rows["user"].astype(np.int64) + 1,
        "var": var,
        "vname": (flag * 3 + var) * 5 + rows["odd"],
        "value": flag * 3 + var,
        "reason": (flag == DARK).astype(np.intp),
        "prereq": rows["prereq"],
    }


def legacy_format(plan: Plan) -> LineFormat:
    """The legacy export row: plain CSV with local times and odd spellings (contract §2.2)."""
    dates = [
        (plan.start + timedelta(days=k - DATE_PAD)).isoformat()
        for k in range(plan.days + 2 * DATE_PAD)
    ]
    spellings = [pair[0] for pair in BOOL_SPELLINGS] + [pair[1] for pair in BOOL_SPELLINGS]
    return LineFormat(
        [
            "lg-",
            ("d", "id", 10),
            ",u-",
            ("d", "user", plan.user_width),
            ",",
            ("v", "date", dates),
            "T",
            ("d", "hh", 2),
            ":",
            ("d", "mi", 2),
            ":",
            ("d", "ss", 2),
            ("v", "tz", LEGACY_TZ),
            ",",
            ("v", "flag", LEGACY_KEYS),
            ",",
            ("v", "vname", _variation_name_table(csv=True)),
            ",",
            ("v", "value", spellings),
            "\n",
        ]
    )


def legacy_fields(rows: Batch, plan: Plan) -> dict[str, np.ndarray]:
    """The values of :func:`legacy_format`'s fields for a batch of legacy rows."""
    # The clock written is local time for the row's offset (+01:00 shows UTC + 1 h).
    tz = rows["tz"].astype(np.intp)
    local = rows["ms"] // 1000 + LEGACY_TZ_OFFSET_S[tz]
    flag = rows["flag"].astype(np.intp)
    var = rows["var"].astype(np.intp)
    sod = local % DAY_S
    return {
        "id": rows["id"],
        "user": rows["user"].astype(np.int64) + 1,
        "date": rows["ev_day"].astype(np.int64) + local // DAY_S + DATE_PAD,
        "hh": sod // 3600,
        "mi": sod // 60 % 60,
        "ss": sod % 60,
        "tz": tz,
        "flag": flag,
        "vname": (flag * 3 + var) * 5 + rows["odd"],
        "value": (var != 0) * len(BOOL_SPELLINGS) + rows["spell"],
    }
