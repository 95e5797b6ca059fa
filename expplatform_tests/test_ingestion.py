"""Landing zone → raw tables: parsing, every rejection rule, replacement, atomicity.

Fixtures are a few hand-written lines; expected rows are written out by hand.
2025-12-01T10:15:00Z is 1764584100000 ms since the epoch (the contract's example).
"""

from __future__ import annotations

import json
import random
from datetime import date, datetime
from pathlib import Path

import pytest

from expplatform.ingestion import launchdarkly
from expplatform.ingestion.landing import LAUNCHDARKLY, LEGACY, SUBSCRIPTIONS, USERS
from expplatform.ingestion.loaders import LoadError, load_daily_partitions, load_snapshot
from expplatform_tests.conftest import ld_line, write_text

D1 = date(2025, 12, 1)
D2 = date(2025, 12, 2)
MS_1015 = 1764584100000  # 2025-12-01 10:15:00 UTC


def ld_path(landing: Path, day: date, name: str = "part-000.jsonl") -> Path:
    return landing / "launchdarkly" / f"date={day.isoformat()}" / name


def legacy_path(landing: Path, day: date, name: str = "part-000.csv") -> Path:
    return landing / "legacy" / f"date={day.isoformat()}" / name


def table(con, sql: str) -> list[tuple]:
    return con.execute(sql).fetchall()


def rejects(con, source: str) -> list[tuple]:
    return table(
        con,
        f"select _source_file, line_number, reason from raw.rejected_records "
        f"where source = '{source}' order by _source_file, line_number",
    )


class TestLaunchDarkly:
    def test_every_rule_on_a_hand_written_file(self, con, landing):
        lines = [
            ld_line("ld-1", "u-1", MS_1015, variation=" Treatment ", value={"a": 1}),  # 1 loaded
            "not json at all",  # 2 invalid_json
            '{"event_id": "ld-2", "is_active": "Y"}',  # 3 missing_event
            ld_line(None, "u-1", MS_1015),  # 4 missing_event_id
            ld_line("", "u-1", MS_1015),  # 5 missing_event_id (empty)
            ld_line("ld-3", None, MS_1015),  # 6 missing_user_id
            ld_line("ld-4", "u-1", str(MS_1015)),  # 7 creationDate as string
            ld_line("ld-5", "u-1", MS_1015 // 1000),  # 8 epoch seconds
            ld_line("ld-6", "u-1", None),  # 9 missing_timestamp (JSON null)
            ld_line("ld-7", "u-1", 1764806400000),  # 10 2025-12-04 00:00: > 1 day after load D2
            ld_line("ld-8", "u-2", 1764719999000, kind="debug", active="N", prereq_of="p"),  # 11
            "",  # 12 empty line
            ld_line("ld-1", "u-1", MS_1015),  # 13 a retried id: raw keeps duplicates
        ]
        write_text(ld_path(landing, D2), "\n".join(lines) + "\n")

        report = load_daily_partitions(con, LAUNCHDARKLY, landing, [D2])

        assert (report.lines, report.loaded, report.rejected) == (13, 3, 10)
        assert table(
            con,
            "select event_id, event_contextkeys_user, event_creationdate, event_variationname, "
            "event_value, event_kind, is_active, event_prereqof, event_in_experiment, _load_date, "
            "_source_file, _line_number from raw.partner_directpush_launchdarkly_events "
            "order by _line_number",
        ) == [
            ("ld-1", "u-1", datetime(2025, 12, 1, 10, 15), " Treatment ", '{"a":1}', "feature", "Y",
             None, True, D2, "launchdarkly/date=2025-12-02/part-000.jsonl", 1),
            ("ld-8", "u-2", datetime(2025, 12, 2, 23, 59, 59), "treatment", "true", "debug", "N",
             "p", True, D2, "launchdarkly/date=2025-12-02/part-000.jsonl", 11),
            ("ld-1", "u-1", datetime(2025, 12, 1, 10, 15), "treatment", "true", "feature", "Y",
             None, True, D2, "launchdarkly/date=2025-12-02/part-000.jsonl", 13),
        ]  # fmt: skip
        f = "launchdarkly/date=2025-12-02/part-000.jsonl"
        assert rejects(con, "launchdarkly") == [
            (f, 2, "invalid_json"),
            (f, 3, "missing_event"),
            (f, 4, "missing_event_id"),
            (f, 5, "missing_event_id"),
            (f, 6, "missing_user_id"),
            (f, 7, "invalid_timestamp"),
            (f, 8, "timestamp_in_seconds"),
            (f, 9, "missing_timestamp"),
            (f, 10, "future_timestamp"),
            (f, 12, "empty_line"),
        ]
        assert table(con, "select raw_record from raw.rejected_records where line_number = 2") == [
            ("not json at all",)
        ]

    def test_gzip_bom_crlf_and_bad_encoding(self, con, landing):
        body = "\r\n".join([ld_line("ld-1", "u-1", MS_1015), ld_line("ld-2", "u-2", MS_1015)])
        write_text(ld_path(landing, D1, "a.jsonl.gz"), "\ufeff" + body + "\r\n", compress=True)
        bad = ld_path(landing, D1, "b.jsonl")
        bad.write_bytes(
            ld_line("ld-3", "u-3", MS_1015).encode()
            + b"\n"
            + b'{"event_id": "ld-\xff"}\n'
            + ld_line("ld-4", "u-4", MS_1015).encode()
            + b"\n"
        )

        report = load_daily_partitions(con, LAUNCHDARKLY, landing, [D1])

        per_file = {f.source_file: (f.lines, f.loaded, f.rejected_total) for f in report.files}
        assert per_file == {
            "launchdarkly/date=2025-12-01/a.jsonl.gz": (2, 2, 0),
            "launchdarkly/date=2025-12-01/b.jsonl": (3, 2, 1),
        }
        assert table(
            con,
            "select event_id, _line_number from raw.partner_directpush_launchdarkly_events "
            "order by event_id",
        ) == [("ld-1", 1), ("ld-2", 2), ("ld-3", 1), ("ld-4", 3)]
        assert rejects(con, "launchdarkly") == [
            ("launchdarkly/date=2025-12-01/b.jsonl", 2, "invalid_encoding")
        ]

    def test_hidden_and_foreign_files_are_ignored(self, con, landing):
        write_text(ld_path(landing, D1), ld_line("ld-1", "u-1", MS_1015) + "\n")
        write_text(ld_path(landing, D1, ".part-001.jsonl.tmp"), "garbage\n")
        write_text(ld_path(landing, D1, "_SUCCESS"), "")
        write_text(ld_path(landing, D1, "notes.txt"), "garbage\n")
        report = load_daily_partitions(con, LAUNCHDARKLY, landing, [D1])
        assert [f.source_file for f in report.files] == [
            "launchdarkly/date=2025-12-01/part-000.jsonl"
        ]

    def test_fields_of_any_json_type_load_as_their_text(self, con, landing):
        """Values typed otherwise than usual: loaded as text exactly like strings would be."""
        lines = [
            # 1: numeric id, padded user, float ms, numbers and booleans as strings
            '{"event_id": 42, "is_active": "Y", "event": {"kind": "feature", '
            '"creationDate": 1764584100000.0, "key": "vault-launch", "version": "7", '
            '"contextKeys": {"user": " u-1 "}, "variation": 1, "variationName": "treatment", '
            '"value": "on", "default": null, "reason": {"kind": "RULE_MATCH", "inExperiment": "true"}}}',
            # 2: an object as user id, an array as value, a number as project
            '{"event_id": "ld-2", "is_active": "N", "project": 3, "event": {"kind": "debug", '
            '"creationDate": 1764584100000, "key": "k", "contextKeys": {"user": {"id": 7}}, '
            '"variationName": null, "value": [1, "a"], "reason": {"kind": "OFF"}, "prereqOf": "parent"}}',
            '{"event_id": " ", "event": {"creationDate": 1764584100000, "contextKeys": {"user": "u"}}}',
            '{"event_id": "ld-4", "event": {"creationDate": "1764584100000", "contextKeys": {"user": "u"}}}',
            '{"event_id": "ld-5", "event": {"creationDate": true, "contextKeys": {"user": "u"}}}',
            '{"event_id": "ld-6", "event": {"contextKeys": {"user": "u"}}}',
            '{"event_id": "ld-7", "event": {"creationDate": 1764584100000, "contextKeys": "u"}}',
            '{"event_id": "ld-8", "event": "x"}',
            '{"event_id": "ld-9", "event": {}}',
            "   ",
            '{"event_id": "ld-11", "event": {"creationDate": 1e30, "contextKeys": {"user": "u"}}}',
            # 12: 2025-12-03 23:59:59.9994: rounds to the last millisecond before the limit
            '{"event_id": "ld-12", "event": {"creationDate": 1764806399999.4, "contextKeys": {"user": "u"}}}',
        ]
        write_text(ld_path(landing, D2), "\n".join(lines) + "\n")

        report = load_daily_partitions(con, LAUNCHDARKLY, landing, [D2])

        assert (report.lines, report.loaded, report.rejected) == (12, 3, 9)
        assert table(
            con,
            "select event_id, event_contextkeys_user, event_creationdate, event_version, "
            "event_variation, event_value, event_default, event_in_experiment, project, "
            "event_prereqof, _line_number from raw.partner_directpush_launchdarkly_events "
            "order by _line_number",
        ) == [
            ("42", "u-1", datetime(2025, 12, 1, 10, 15), 7, 1, "on", None, True, None, None, 1),
            ("ld-2", '{"id":7}', datetime(2025, 12, 1, 10, 15), None, None, '[1,"a"]', None, None,
             "3", "parent", 2),
            ("ld-12", "u", datetime(2025, 12, 3, 23, 59, 59, 999000), None, None, None, None, None,
             None, None, 12),
        ]  # fmt: skip
        f = "launchdarkly/date=2025-12-02/part-000.jsonl"
        assert rejects(con, "launchdarkly") == [
            (f, 3, "missing_event_id"),
            (f, 4, "invalid_timestamp"),
            (f, 5, "invalid_timestamp"),
            (f, 6, "missing_timestamp"),
            (f, 7, "missing_user_id"),
            (f, 8, "missing_event"),
            (f, 9, "missing_user_id"),
            (f, 10, "empty_line"),
            (f, 11, "invalid_timestamp"),
        ]

    def test_a_folder_of_many_files_is_read_in_batches(self, con, landing):
        names = [f"part-{i:03d}.jsonl" for i in range(11)]  # more than one batch
        for i, name in enumerate(names):
            write_text(ld_path(landing, D1, name), f"{ld_line(f'ld-{i}', 'u', MS_1015)}\nx\n")
        write_text(ld_path(landing, D2), ld_line("ld-d2", "u", MS_1015) + "\n")

        report = load_daily_partitions(con, LAUNCHDARKLY, landing, [D1, D2])

        assert [(f.source_file, f.lines, f.loaded, dict(f.rejected)) for f in report.files] == [
            (f"launchdarkly/date=2025-12-01/{name}", 2, 1, {"invalid_json": 1}) for name in names
        ] + [("launchdarkly/date=2025-12-02/part-000.jsonl", 1, 1, {})]
        assert table(
            con,
            "select event_id, _source_file, _line_number, _load_date "
            "from raw.partner_directpush_launchdarkly_events order by _source_file, event_id",
        ) == [
            (f"ld-{i}", f"launchdarkly/date=2025-12-01/{name}", 1, D1)
            for i, name in enumerate(names)
        ] + [("ld-d2", "launchdarkly/date=2025-12-02/part-000.jsonl", 1, D2)]
        assert rejects(con, "launchdarkly") == [
            (f"launchdarkly/date=2025-12-01/{name}", 2, "invalid_json") for name in names
        ]

    def test_fast_path_loads_exactly_what_the_slow_path_would(self, con, landing):
        """Differential: 3,000 seeded random lines, loaded; then every line put through the
        slow path (the field-by-field SQL that names reasons) must give the same rows and
        the same rejects."""
        rng = random.Random(13)
        odd = [None, True, False, 0, 7, -1, 1.5, 1e3, "", " ", "x", " u-1 ", "7", "true",
               {"a": 1}, [1, "a"], {}, "é", 'a"b', 12345678901234567890123]  # fmt: skip
        stamps = [MS_1015, MS_1015 + 0.5, MS_1015 // 1000, str(MS_1015), -MS_1015, 1e11,
                  1e11 - 1, 1e13, 1e30, 1764806399999, 1764806400000, None, True, "x",
                  [MS_1015], 9223372036854775807, 18446744073709551615]  # fmt: skip
        lines = []
        for _ in range(3000):
            event = {
                "kind": rng.choice(["feature", "debug", None, 3]),
                "creationDate": rng.choice(stamps + [MS_1015] * 30),
                "key": rng.choice(["vault-launch", None, 1]),
                "version": rng.choice(odd),
                "contextKeys": rng.choice(
                    [{"user": "u-2"}] * 6 + [{"user": rng.choice(odd)}, {}, "u"]
                ),
                "variation": rng.choice(odd),
                "variationName": rng.choice(odd),
                "value": rng.choice(odd),
                "default": rng.choice(odd),
                "reason": rng.choice(
                    [{"kind": "RULE_MATCH", "inExperiment": rng.choice(odd)}, "x"]
                ),
                "prereqOf": rng.choice([None, "p", "", 1]),
            }
            record = {
                "event_id": rng.choice(["ld-1", " ld-2 ", 5, "ld-3"] * 4 + ["", None, {"x": 1}]),
                "is_active": rng.choice(["Y", "N", None]),
                "project": rng.choice(odd),
                "event": rng.choice([event] * 9 + [[1], "x", None, {}]),
            }
            for key in [k for k in record if rng.random() < 0.05]:
                del record[key]
            lines.append(
                rng.choice(["", "  ", "not json", "null", "[1]", "{}"])
                if rng.random() < 0.02
                else json.dumps(record, ensure_ascii=rng.random() < 0.5)
            )
        write_text(ld_path(landing, D2), "\n".join(lines) + "\n")
        report = load_daily_partitions(con, LAUNCHDARKLY, landing, [D2])
        assert 500 < report.loaded < 2500  # both paths had work

        con.execute(
            "create or replace temp table _batch_files as "
            "select 0 as file_idx, 'f' as source_file, ?::date as load_date",
            [D2],
        )
        con.execute(
            "create or replace temp table _slow_lines as select 0 as file_idx, "
            "unnest(range(1, ?)) as line_number, unnest(?::varchar[]) as line",
            [len(lines) + 1, [line or None for line in lines]],
        )
        con.execute(f"create or replace temp table _parsed as {launchdarkly.slow_sql()}")
        slow_loaded = table(
            con,
            f"select line_number, {launchdarkly._LD_INSERT_COLUMNS} "
            "from _parsed where reason is null order by 1",
        )
        assert slow_loaded == table(
            con,
            "select _line_number, * exclude (_load_date, _source_file, _line_number, _loaded_at) "
            "from raw.partner_directpush_launchdarkly_events order by 1",
        )
        assert table(
            con, "select line_number, reason from _parsed where reason is not null order by 1"
        ) == table(con, "select line_number, reason from raw.rejected_records order by 1")


class TestLegacy:
    HEADER = "id,user,timestamp,key,variation_name,value"

    def test_timestamps_values_and_rejections(self, con, landing):
        rows = [
            self.HEADER,
            "lg-1,u-1,2025-12-01T10:00:00Z,vault_launch,Control,t",  # 2
            "lg-2,u-2,2025-12-01T10:00:00+01:00,vault_launch,treatment,TRUE",  # 3 → 09:00 UTC
            "lg-3,u-3,2025-12-01 10:00:00,vault_launch,treatment,0",  # 4 no offset = UTC
            "lg-4,u-4,2025-12-01,vault_launch,control,f",  # 5 date only
            "lg-5,,2025-12-01T10:00:00Z,vault_launch,control,1",  # 6 empty user
            ",u-6,2025-12-01T10:00:00Z,vault_launch,control,1",  # 7 missing id
            "lg-7,u-7,yesterday,vault_launch,control,1",  # 8 garbage timestamp
            "lg-8,u-8,2025-12-01T10:00:00Z,vault_launch",  # 9 missing fields
            'lg-9,"u-9",2025-12-01T10:00:00-05:30,vault_launch,"treat,ment",false',  # 10
            "lg-10,u-10,2025-12-05T00:00:00Z,vault_launch,control,1",  # 11 future (load D2)
        ]
        write_text(legacy_path(landing, D2), "\n".join(rows) + "\n")

        report = load_daily_partitions(con, LEGACY, landing, [D2])

        assert (report.lines, report.loaded, report.rejected) == (10, 4, 6)
        assert table(
            con,
            'select id, "user", "timestamp", variation_name, value, _line_number '
            "from raw.legacy_feature_flag_events order by _line_number",
        ) == [
            ("lg-1", "u-1", datetime(2025, 12, 1, 10, 0), "Control", True, 2),
            ("lg-2", "u-2", datetime(2025, 12, 1, 9, 0), "treatment", True, 3),
            ("lg-3", "u-3", datetime(2025, 12, 1, 10, 0), "treatment", False, 4),
            ("lg-9", "u-9", datetime(2025, 12, 1, 15, 30), "treat,ment", False, 10),
        ]
        f = "legacy/date=2025-12-02/part-000.csv"
        assert rejects(con, "legacy") == [
            (f, 5, "invalid_timestamp"),
            (f, 6, "missing_user_id"),
            (f, 7, "missing_event_id"),
            (f, 8, "invalid_timestamp"),
            (f, 9, "malformed_row"),
            (f, 11, "future_timestamp"),
        ]

    def test_missing_required_column_fails_naming_the_file(self, con, landing):
        write_text(
            legacy_path(landing, D1),
            "id,user,timestamp,key,value\nlg-1,u,2025-12-01T00:00:00Z,k,1\n",
        )
        with pytest.raises(
            LoadError,
            match=r"legacy/date=2025-12-01/part-000.csv: missing required column\(s\) variation_name",
        ):
            load_daily_partitions(con, LEGACY, landing, [D1])

    def test_extra_column_is_ignored_and_header_only_file_is_empty(self, con, landing):
        write_text(
            legacy_path(landing, D1),
            self.HEADER + ",note\r\nlg-1,u-1,2025-12-01T10:00:00Z,vault_launch,control,1,hello\r\n",
        )
        write_text(legacy_path(landing, D1, "part-001.csv"), self.HEADER + "\n")
        write_text(legacy_path(landing, D1, "part-002.csv"), "")
        report = load_daily_partitions(con, LEGACY, landing, [D1])
        assert [(f.lines, f.loaded) for f in report.files] == [(1, 1), (0, 0), (0, 0)]


class TestReplacement:
    def _raw(self, con) -> list[tuple]:
        return table(
            con,
            "select * exclude (_loaded_at) from raw.partner_directpush_launchdarkly_events order by all",
        )

    def _rejected(self, con) -> list[tuple]:
        return table(con, "select * exclude (_loaded_at) from raw.rejected_records order by all")

    def _landing(self, landing: Path) -> None:
        write_text(ld_path(landing, D1), ld_line("ld-1", "u-1", MS_1015) + "\nbad\n")
        write_text(ld_path(landing, D2), ld_line("ld-2", "u-2", MS_1015) + "\n")
        write_text(ld_path(landing, date(2025, 12, 3)), ld_line("ld-3", "u-3", MS_1015) + "\n")

    def test_loading_twice_and_overlapping_ranges_duplicate_nothing(self, con, landing):
        self._landing(landing)
        load_daily_partitions(con, LAUNCHDARKLY, landing, [D1, D2, date(2025, 12, 3)])
        once_raw, once_rejected = self._raw(con), self._rejected(con)
        assert len(once_raw) == 3 and len(once_rejected) == 1

        load_daily_partitions(con, LAUNCHDARKLY, landing, [D2])
        load_daily_partitions(con, LAUNCHDARKLY, landing, [D1, D2])
        load_daily_partitions(con, LAUNCHDARKLY, landing, [D2, date(2025, 12, 3)])
        load_daily_partitions(con, LAUNCHDARKLY, landing, [D1])

        assert self._raw(con) == once_raw
        assert self._rejected(con) == once_rejected

    def test_unreadable_file_fails_and_keeps_previous_partition(self, con, landing):
        self._landing(landing)
        load_daily_partitions(con, LAUNCHDARKLY, landing, [D1, D2])
        before_raw, before_rejected = self._raw(con), self._rejected(con)

        good = write_text(ld_path(landing, D2, "part-001.jsonl.gz"), "x" * 1000, compress=True)
        good.write_bytes(good.read_bytes()[:20])  # truncated gzip
        with pytest.raises(
            LoadError, match=r"launchdarkly/date=2025-12-02/part-001.jsonl.gz: cannot be read"
        ):
            load_daily_partitions(con, LAUNCHDARKLY, landing, [D1, D2])

        assert self._raw(con) == before_raw
        assert self._rejected(con) == before_rejected

    def test_removed_file_disappears_on_reload(self, con, landing):
        self._landing(landing)
        load_daily_partitions(con, LAUNCHDARKLY, landing, [D1, D2])
        ld_path(landing, D2).unlink()
        load_daily_partitions(con, LAUNCHDARKLY, landing, [D2])
        assert [r[0] for r in self._raw(con)] == ["ld-1"]


class TestSnapshots:
    def test_users_newest_snapshot_only(self, con, landing):
        write_text(
            landing / "users" / "users_2025-12-01.csv",
            "user_id,created_at,country,is_test_account\nu-1,2025-01-01T00:00:00Z,DE,true\n",
        )
        write_text(
            landing / "users" / "users_2025-12-02.csv",
            "user_id,created_at,country,is_test_account\n"
            "u-1,2025-01-01T00:00:00Z,DE,f\n"
            "u-2,2025-02-01T00:00:00+01:00,FR,TRUE\n"
            ",2025-02-01T00:00:00Z,FR,1\n"
            "u-3,,,\n",
        )  # fmt: skip
        report = load_snapshot(con, USERS, landing)
        assert (report.lines, report.loaded, report.rejected) == (4, 3, 1)
        assert table(con, "select user_id, created_at, country, is_test_account from raw.users order by 1") == [
            ("u-1", datetime(2025, 1, 1), "DE", False),
            ("u-2", datetime(2025, 1, 31, 23), "FR", True),
            ("u-3", None, None, None),
        ]  # fmt: skip
        assert rejects(con, "users") == [("users/users_2025-12-02.csv", 4, "missing_user_id")]

    def test_subscription_changes_every_file_and_bad_tier(self, con, landing):
        header = "subscription_change_id,user_id,tier,effective_at\n"
        write_text(
            landing / "subscriptions" / "a.csv", header + "sc-1,u-1,Plus ,2025-12-01T12:00:00Z\n"
        )
        write_text(
            landing / "subscriptions" / "b.csv",
            header + "sc-1,u-1,plus,2025-12-01T12:00:00Z\nsc-2,u-1,gold,2025-12-02T00:00:00Z\n",
        )
        report = load_snapshot(con, SUBSCRIPTIONS, landing)
        assert (report.loaded, report.rejected) == (2, 1)
        assert table(con, "select subscription_change_id, tier, effective_at from raw.subscription_changes order by _source_file") == [
            ("sc-1", "plus", datetime(2025, 12, 1, 12)),
            ("sc-1", "plus", datetime(2025, 12, 1, 12)),
        ]  # fmt: skip
        assert rejects(con, "subscriptions") == [("subscriptions/b.csv", 3, "invalid_tier")]


def test_loaded_plus_rejected_equals_lines_for_every_file(con, landing):
    write_text(
        ld_path(landing, D1),
        "\n".join([ld_line("a", "u", MS_1015), "x", ld_line("b", None, 5)]) + "\n",
    )
    write_text(
        legacy_path(landing, D1), TestLegacy.HEADER + "\nlg,u,2025-12-01T00:00:00Z,k,v,1\nlg,u\n"
    )
    for spec in (LAUNCHDARKLY, LEGACY):
        report = load_daily_partitions(con, spec, landing, [D1])
        for f in report.files:
            assert f.loaded + f.rejected_total == f.lines
    counts = dict(
        table(
            con,
            "select _source_file, count(*) from (select _source_file from raw.partner_directpush_launchdarkly_events "
            "union all select _source_file from raw.legacy_feature_flag_events "
            "union all select _source_file from raw.rejected_records) group by 1",
        )
    )
    assert counts == {
        "launchdarkly/date=2025-12-01/part-000.jsonl": 3,
        "legacy/date=2025-12-01/part-000.csv": 2,
    }
