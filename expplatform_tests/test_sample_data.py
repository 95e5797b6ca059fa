"""The sample-data generator writes the contract's landing zone (§2), deterministically, with every quirk.

Files are parsed here with json/csv/gzip only; expected values come from the
contract and the documented story, never from the generator's internals.
"""

from __future__ import annotations

import csv
import gzip
import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from expplatform.sample_data import SampleSummary, generate_landing_zone

START = date(2025, 12, 1)
DAYS = 6
USERS = 300
LD_KEYS = {"vault-launch", "vault-onboarding-copy", "dark-mode"}
LEGACY_KEYS = {"vault_launch", "vault_onboarding_copy", "dark_mode"}
TRUE_SPELLINGS = {"true", "t", "1"}


def _all_files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def _folder_date(path: Path) -> date:
    return date.fromisoformat(path.parent.name.removeprefix("date="))


def _parse_legacy_ts(text: str) -> datetime | None:
    """Contract §2.2: full ISO-8601 date-time, `Z` or offset, none = UTC; else None."""
    text = text.strip()
    if len(text) < 16 or "T" not in text and " " not in text:
        return None
    try:
        ts = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


@dataclass
class Sample:
    """A generated landing zone, parsed."""

    root: Path
    summary: SampleSummary
    # (folder date, file name, line number, parsed object) of every LD line that is valid JSON
    ld: list[tuple[date, str, dict]] = field(default_factory=list)
    ld_not_json: list[str] = field(default_factory=list)
    legacy: list[tuple[date, str, dict[str, str]]] = field(default_factory=list)
    legacy_header: list[list[str]] = field(default_factory=list)
    users: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    subscriptions: dict[str, list[dict[str, str]]] = field(default_factory=dict)

    def good_ld(self) -> list[tuple[date, str, dict]]:
        """LD lines the contract accepts (valid id, user and millisecond creationDate)."""
        out = []
        for folder, name, obj in self.ld:
            event = obj.get("event")
            if not isinstance(event, dict) or not obj.get("event_id"):
                continue
            user = (event.get("contextKeys") or {}).get("user")
            created = event.get("creationDate")
            if not user or not isinstance(created, int) or created < 10**11:
                continue
            if created > _ms(folder + timedelta(days=2)):
                continue
            out.append((folder, name, obj))
        return out

    def good_legacy(self) -> list[tuple[date, str, dict[str, str]]]:
        return [
            (folder, name, row)
            for folder, name, row in self.legacy
            if row["id"] and row["user"] and _parse_legacy_ts(row["timestamp"]) is not None
        ]


def _ms(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)


def _ld_date(obj: dict) -> date:
    return datetime.fromtimestamp(obj["event"]["creationDate"] / 1000, UTC).date()


def _read_sample(root: Path, summary: SampleSummary) -> Sample:
    sample = Sample(root=root, summary=summary)
    for path in sorted((root / "launchdarkly").glob("date=*/*")):
        opener = gzip.open if path.name.endswith(".gz") else open
        with opener(path, "rt", encoding="utf-8") as fh:
            for line in fh:
                try:
                    sample.ld.append((_folder_date(path), path.name, json.loads(line)))
                except json.JSONDecodeError:
                    sample.ld_not_json.append(line)
    for path in sorted((root / "legacy").glob("date=*/*.csv")):
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            header = next(reader)
            sample.legacy_header.append(header)
            for values in reader:
                sample.legacy.append(
                    (_folder_date(path), path.name, dict(zip(header, values, strict=True)))
                )
    for path in sorted((root / "users").glob("*.csv")):
        with open(path, newline="", encoding="utf-8") as fh:
            sample.users[path.name] = list(csv.DictReader(fh))
    for path in sorted((root / "subscriptions").glob("*.csv")):
        with open(path, newline="", encoding="utf-8") as fh:
            sample.subscriptions[path.name] = list(csv.DictReader(fh))
    return sample


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Sample:
    root = tmp_path_factory.mktemp("landing")
    summary = generate_landing_zone(root, start=START, days=DAYS, users=USERS, seed=7)
    return _read_sample(root, summary)


# --------------------------------------------------------------------------- layout & API


def test_layout_and_file_names(sample: Sample) -> None:
    root = sample.root
    assert sorted(p.name for p in root.iterdir()) == [
        "launchdarkly",
        "legacy",
        "subscriptions",
        "users",
    ]
    ld_folders = sorted(p.name for p in (root / "launchdarkly").iterdir())
    legacy_folders = sorted(p.name for p in (root / "legacy").iterdir())
    all_days = [f"date={START + timedelta(days=k)}" for k in range(DAYS)]
    # Migration: legacy only in the first third, both in the middle, LaunchDarkly only at the end.
    assert legacy_folders == all_days[:4]
    assert ld_folders == all_days[2:]
    for folder in ld_folders:
        assert [p.name for p in (root / "launchdarkly" / folder).iterdir()] == ["part-000.jsonl"]
    for folder in legacy_folders:
        assert [p.name for p in (root / "legacy" / folder).iterdir()] == ["part-000.csv"]
    users = sorted(p.name for p in (root / "users").iterdir())
    assert users == ["users_2025-11-30.csv", "users_2025-12-06.csv"]
    subs = sorted(p.name for p in (root / "subscriptions").iterdir())
    assert len(subs) >= 2
    assert all(
        name.startswith("subscription_changes_") and date.fromisoformat(name[21:31])
        for name in subs
    )


def test_headers_are_the_contract_columns(sample: Sample) -> None:
    assert all(
        h == ["id", "user", "timestamp", "key", "variation_name", "value"]
        for h in sample.legacy_header
    )
    for rows in sample.users.values():
        assert list(rows[0]) == ["user_id", "created_at", "country", "is_test_account"]
    for rows in sample.subscriptions.values():
        assert list(rows[0]) == ["subscription_change_id", "user_id", "tier", "effective_at"]


def test_summary_counts_what_was_written(sample: Sample) -> None:
    s = sample.summary
    assert (s.start, s.days, s.users) == (START, DAYS, USERS)
    assert s.launchdarkly_lines == len(sample.ld) + len(sample.ld_not_json)
    assert s.legacy_lines == len(sample.legacy)
    assert s.files == sum(1 for p in sample.root.rglob("*") if p.is_file())
    assert 0 < s.bad_lines < 0.01 * (s.launchdarkly_lines + s.legacy_lines)
    text = s.as_text()
    assert str(s.launchdarkly_lines) in text.replace(",", "")


def test_launchdarkly_lines_have_the_contract_shape(sample: Sample) -> None:
    top = {"event_id", "is_active", "project", "environment", "event"}
    event_keys = {
        "kind", "creationDate", "key", "version", "contextKeys", "variation",
        "variationName", "value", "default", "reason",
    }  # fmt: skip
    good = sample.good_ld()
    assert len(good) > 0.99 * len(sample.ld)
    for _, _, obj in good:
        assert set(obj) == top
        assert obj["is_active"] in ("Y", "N")
        assert (obj["project"], obj["environment"]) == ("default", "production")
        event = obj["event"]
        assert set(event) - {"prereqOf"} == event_keys
        assert obj["event_id"].startswith("ld-")
        assert event["contextKeys"]["user"].startswith("u-")
        assert event["key"] in LD_KEYS
        assert isinstance(event["variation"], int) and isinstance(event["version"], int)
        assert event["kind"] in ("feature", "debug")
        assert isinstance(event["reason"]["inExperiment"], bool)
        if "prereqOf" in event:
            assert event["prereqOf"] == "vault-onboarding-copy"  # never null, only when present
    # A typical line is exactly the contract's example layout.
    first = (
        (sample.root / "launchdarkly" / "date=2025-12-03" / "part-000.jsonl")
        .read_text()
        .splitlines()[0]
    )
    assert first.startswith('{"event_id": "ld-') and '"event": {"kind": ' in first


# --------------------------------------------------------------------------- determinism


def test_same_arguments_give_identical_bytes(tmp_path: Path) -> None:
    # Several gzip parts per day, written by a thread pool: still byte-identical.
    args = {
        "start": START,
        "days": 4,
        "users": 120,
        "seed": 3,
        "files_per_day": 2,
        "compress": True,
    }
    a = generate_landing_zone(tmp_path / "a", **args)
    b = generate_landing_zone(tmp_path / "b", **args)
    assert _all_files(tmp_path / "a") == _all_files(tmp_path / "b")
    assert (a.files, a.launchdarkly_lines, a.legacy_lines, a.bad_lines) == (
        b.files, b.launchdarkly_lines, b.legacy_lines, b.bad_lines,
    )  # fmt: skip
    generate_landing_zone(tmp_path / "c", **{**args, "seed": 4})
    assert _all_files(tmp_path / "a") != _all_files(tmp_path / "c")


def test_regenerating_replaces_only_the_source_folders(tmp_path: Path) -> None:
    stale = tmp_path / "launchdarkly" / "date=2020-01-01" / "part-000.jsonl"
    stale.parent.mkdir(parents=True)
    stale.write_text("{}\n")
    keep = tmp_path / "notes" / "keep.txt"
    keep.parent.mkdir()
    keep.write_text("mine")
    (tmp_path / "README.txt").write_text("also mine")
    generate_landing_zone(tmp_path, start=START, days=3, users=50)
    first = _all_files(tmp_path)
    assert not stale.exists()
    assert keep.read_text() == "mine" and (tmp_path / "README.txt").exists()
    generate_landing_zone(tmp_path, start=START, days=3, users=50)
    assert _all_files(tmp_path) == first


def test_gzip_and_several_files_per_day(tmp_path: Path) -> None:
    summary = generate_landing_zone(
        tmp_path, start=START, days=3, users=200, files_per_day=3, compress=True
    )
    parsed = _read_sample(tmp_path, summary)
    for folder in (tmp_path / "launchdarkly").iterdir():
        names = sorted(p.name for p in folder.iterdir())
        assert names == ["part-000.jsonl.gz", "part-001.jsonl.gz", "part-002.jsonl.gz"]
        for p in folder.iterdir():
            with gzip.open(p, "rt") as fh:
                fh.read()  # a readable gzip stream
    for folder in (tmp_path / "legacy").iterdir():
        assert sorted(p.name for p in folder.iterdir()) == [
            "part-000.csv",
            "part-001.csv",
            "part-002.csv",
        ]
    assert summary.launchdarkly_lines == len(parsed.ld) + len(parsed.ld_not_json)
    assert summary.legacy_lines == len(parsed.legacy)


def test_events_per_day_is_respected(tmp_path: Path) -> None:
    target = 3000
    generate_landing_zone(
        tmp_path, start=START, days=DAYS, users=USERS, events_per_day=target, files_per_day=2
    )
    per_day: Counter[str] = Counter()
    for path in tmp_path.glob("launchdarkly/date=*/*.jsonl"):
        per_day[path.parent.name] += len(path.read_bytes().splitlines())
    for path in tmp_path.glob("legacy/date=*/*.csv"):
        per_day[path.parent.name] += len(path.read_bytes().splitlines()) - 1
    assert len(per_day) == DAYS
    for day, lines in per_day.items():
        assert abs(lines - target) <= 0.05 * target, (day, lines)


# --------------------------------------------------------------------------- quirks


def test_retried_event_ids_within_a_file_and_across_folders(sample: Sample) -> None:
    for rows, id_of in (
        ([(f, n, o) for f, n, o in sample.good_ld()], lambda o: o["event_id"]),
        ([(f, n, r) for f, n, r in sample.good_legacy()], lambda r: r["id"]),
    ):
        per_file = Counter((folder, name, id_of(obj)) for folder, name, obj in rows)
        assert any(c > 1 for c in per_file.values())
        folders = defaultdict(set)
        for folder, _, obj in rows:
            folders[id_of(obj)].add(folder)
        assert any(len(f) > 1 for f in folders.values())


def test_retractions_copy_existing_events(sample: Sample) -> None:
    good = sample.good_ld()
    active_in: dict[str, set[date]] = defaultdict(set)
    retracted_in: dict[str, set[date]] = defaultdict(set)
    for folder, _, obj in good:
        (active_in if obj["is_active"] == "Y" else retracted_in)[obj["event_id"]].add(folder)
    assert retracted_in
    assert all(eid in active_in for eid in retracted_in)  # copies of real events
    assert any(min(retracted_in[e]) > min(active_in[e]) for e in retracted_in)  # a later folder
    assert len(retracted_in) < 0.02 * len(good)


def test_debug_prerequisite_and_unregistered_flag_events(sample: Sample) -> None:
    events = [obj["event"] for _, _, obj in sample.good_ld()]
    assert any(e["kind"] == "debug" for e in events)
    prereqs = [e for e in events if "prereqOf" in e]
    assert prereqs and all(e["key"] == "vault-launch" for e in prereqs)
    assert any(e["key"] == "dark-mode" for e in events)
    assert any(r["key"] == "dark_mode" for _, _, r in sample.good_legacy())


def test_late_events_are_one_or_two_days_late_never_more(sample: Sample) -> None:
    lateness = Counter()
    for folder, _, obj in sample.good_ld():
        lateness[(folder - _ld_date(obj)).days] += 1
    for folder, _, row in sample.good_legacy():
        lateness[(folder - _parse_legacy_ts(row["timestamp"]).date()).days] += 1
    assert set(lateness) <= {0, 1, 2}
    assert lateness[1] > 0 and lateness[2] > 0
    assert lateness[0] > 0.9 * sum(lateness.values())


def test_legacy_timestamp_and_boolean_spellings(sample: Sample) -> None:
    stamps = [r["timestamp"] for _, _, r in sample.good_legacy()]
    assert any(s.endswith("Z") for s in stamps)
    assert any(s.endswith("+01:00") for s in stamps)
    assert any(len(s) == 19 for s in stamps)  # no offset: UTC
    values = {r["value"] for _, _, r in sample.legacy}
    assert {"true", "false", "t", "f", "1", "0", "TRUE"} <= values
    assert {v.lower() for v in values} <= {"true", "false", "t", "f", "1", "0"}
    assert {r["key"] for _, _, r in sample.legacy} == LEGACY_KEYS
    assert all(r["id"].startswith("lg-") for _, _, r in sample.good_legacy())


def _exposures(sample: Sample, ld_key: str, legacy_key: str) -> list[tuple[str, str, str, date]]:
    """(source, user, normalised variation, date) of exposures per contract §4 (no dedup)."""
    out = []
    for _, _, obj in sample.good_ld():
        e = obj["event"]
        if (
            e["key"] == ld_key
            and e["kind"] == "feature"
            and "prereqOf" not in e
            and obj["is_active"] == "Y"
        ):
            out.append(
                ("ld", e["contextKeys"]["user"], e["variationName"].strip().lower(), _ld_date(obj))
            )
    for _, _, r in sample.good_legacy():
        if r["key"] == legacy_key:
            ts = _parse_legacy_ts(r["timestamp"])
            out.append(("legacy", r["user"], r["variation_name"].strip().lower(), ts.date()))
    return out


def test_variations_odd_spellings_switchers_and_both_sources(sample: Sample) -> None:
    exposures = _exposures(sample, "vault-launch", "vault_launch")
    assert {v for _, _, v, _ in exposures} == {"control", "treatment"}
    raw_names = [o["event"]["variationName"] for _, _, o in sample.good_ld()]
    raw_names += [r["variation_name"] for _, _, r in sample.good_legacy()]
    assert any(n != n.strip() for n in raw_names)  # e.g. " Treatment "
    assert any(n.strip() != n.strip().lower() for n in raw_names)

    seen: dict[str, set[str]] = defaultdict(set)
    sources: dict[str, set[str]] = defaultdict(set)
    for source, user, variation, _ in exposures:
        seen[user].add(variation)
        sources[user].add(source)
    multi = {u for u, v in seen.items() if len(v) > 1}
    assert multi, "some users are seen in two variations"
    assert len(multi) < 0.1 * len(seen)
    both = {u for u, s in sources.items() if s == {"ld", "legacy"}}
    assert both, "some users are seen in both sources"
    assert any(u not in multi for u in both)  # ... with the same variation in both
    # The assignment is close to 50/50.
    first = Counter(sorted(seen[u])[0] for u in seen if u not in multi)
    assert 0.35 < first["control"] / sum(first.values()) < 0.65


def test_onboarding_copy_runs_from_the_start_with_three_variations(sample: Sample) -> None:
    exposures = _exposures(sample, "vault-onboarding-copy", "vault_onboarding_copy")
    assert {v for _, _, v, _ in exposures} == {"control", "treatment_a", "treatment_b"}
    assert min(d for *_, d in exposures) == START


def test_onboarding_copy_ends_on_day_20(tmp_path: Path) -> None:
    summary = generate_landing_zone(tmp_path, start=START, days=25, users=80)
    parsed = _read_sample(tmp_path, summary)
    dates = Counter(
        d for *_, d in _exposures(parsed, "vault-onboarding-copy", "vault_onboarding_copy")
    )
    end = date(2025, 12, 20)
    assert dates[end] > 0
    after = {d: c for d, c in dates.items() if d > end}
    # Only a few straggler evaluations within two days after the end, none later.
    assert all(d <= end + timedelta(days=2) for d in after)
    assert sum(after.values()) < 0.05 * dates[end]


def test_bad_launchdarkly_lines_of_every_kind(sample: Sample) -> None:
    assert sample.ld_not_json
    kinds = Counter()
    for folder, _, obj in sample.ld:
        event = obj.get("event")
        if not isinstance(event, dict):
            kinds["no_event"] += 1
            continue
        if not obj.get("event_id"):
            kinds["no_event_id"] += 1
        if not (event.get("contextKeys") or {}).get("user"):
            kinds["no_user"] += 1
        created = event.get("creationDate")
        if isinstance(created, str):
            kinds["string_date"] += 1
        elif created < 10**11:
            kinds["epoch_seconds"] += 1
        elif created > _ms(folder + timedelta(days=2)):
            kinds["future"] += 1
    assert set(kinds) == {
        "no_event",
        "no_event_id",
        "no_user",
        "string_date",
        "epoch_seconds",
        "future",
    }
    assert sum(kinds.values()) + len(sample.ld_not_json) < 0.01 * len(sample.ld)


def test_bad_legacy_rows_of_every_kind(sample: Sample) -> None:
    rows = [r for _, _, r in sample.legacy]
    assert any(not r["id"] for r in rows)
    assert any(not r["user"] for r in rows)
    stamps = [r["timestamp"] for r in rows]
    assert any(len(s) == 10 and date.fromisoformat(s) for s in stamps)  # a date alone
    assert any(_parse_legacy_ts(s) is None and len(s) != 10 for s in stamps)  # garbage
    assert len(sample.good_legacy()) > 0.99 * len(rows)


# --------------------------------------------------------------------------- users & subscriptions


def test_user_snapshots_differ_and_spell_test_accounts_variously(sample: Sample) -> None:
    old = {r["user_id"]: r for r in sample.users["users_2025-11-30.csv"]}
    new = {r["user_id"]: r for r in sample.users["users_2025-12-06.csv"]}
    assert all(u.startswith("u-") and len(u) == 8 for u in new)
    test_new = {u for u, r in new.items() if r["is_test_account"] in TRUE_SPELLINGS}
    assert {new[u]["is_test_account"] for u in test_new} == TRUE_SPELLINGS
    assert {r["is_test_account"] for r in new.values()} <= TRUE_SPELLINGS | {"false", "f", "0"}
    assert 0 < len(test_new) < 0.1 * len(new)
    # A user flagged as a test account only in the newest snapshot.
    assert any(u in old and old[u]["is_test_account"] not in TRUE_SPELLINGS for u in test_new)
    # Some users with events are missing from the newest snapshot; sign-ups appear in it.
    event_users = {o["event"]["contextKeys"]["user"] for _, _, o in sample.good_ld()}
    event_users |= {r["user"] for _, _, r in sample.good_legacy()}
    assert event_users - set(new)
    assert set(new) - set(old)
    # Test accounts have exposures, so excluding them matters.
    assert test_new & event_users


def test_subscription_log_quirks(sample: Sample) -> None:
    files = sample.subscriptions
    ids_per_file = [Counter(r["subscription_change_id"] for r in rows) for rows in files.values()]
    total = Counter()
    for ids in ids_per_file:
        total.update(ids.keys())
    assert any(c > 1 for c in total.values()), "a change id repeated across files"
    rows = [r for rows in files.values() for r in rows]
    assert {r["tier"] for r in rows} == {"standard", "plus", "premium"}
    changes = defaultdict(list)
    for r in rows:
        changes[r["user_id"]].append(
            datetime.fromisoformat(r["effective_at"].replace("Z", "+00:00"))
        )
    new = {r["user_id"] for r in sample.users["users_2025-12-06.csv"]}
    assert new - set(changes), "some users have no subscription"
    # A mid-day change: effective during a day on which the user has exposures.
    days_with_events: dict[str, set[date]] = defaultdict(set)
    for _, user, _, day in _exposures(sample, "vault-launch", "vault_launch"):
        days_with_events[user].add(day)
    mid_day = [
        (u, t)
        for u, times in changes.items()
        for t in times
        if t.time() != datetime.min.time() and t.date() in days_with_events[u]
    ]
    assert mid_day
