"""The idempotence soak (expplatform/soak.py): its driver, its landing changes, and one real
sequence that ends at the clean build next to one that cannot (no catch-up run)."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from expplatform.soak import Soak, Step, apply_change, catch_up, days_of, draw_steps

D = {n: date(2025, 12, n) for n in range(1, 5)}
DAYS = days_of(D[1], 4)


def run(a: int, b: int) -> Step:
    return Step("run", D[a], D[b])


def test_catch_up_runs_every_changed_or_never_run_date_as_contiguous_ranges():
    # 12-02..03 ran; a retraction landed in 12-03 afterwards; 12-01 and 12-04 never ran
    steps = [run(2, 3), Step("retract", D[2], D[3])]
    assert catch_up(steps, DAYS) == [run(1, 1), run(3, 4)]
    # everything ran after the last change: nothing to catch up
    assert catch_up([Step("redeliver", D[2], D[2]), run(1, 4)], DAYS) == []
    # a change to 12-01 and 12-04 after a full run: two separate single-day runs
    steps = [run(1, 4), Step("correct", D[1], D[1]), Step("retract", D[2], D[4])]
    assert catch_up(steps, DAYS) == [run(1, 1), run(4, 4)]


def test_the_driver_draws_every_kind_of_step_and_always_a_run():
    drawn = [draw_steps(seed, DAYS) for seed in range(200)]
    assert all(any(s.kind == "run" for s in steps) for steps in drawn)
    kinds = {s.kind for steps in drawn for s in steps}
    assert kinds == {"run", "redeliver", "correct", "retract", "redate"}
    assert all(s.start <= s.end for steps in drawn for s in steps)
    assert draw_steps(7, DAYS) == draw_steps(7, DAYS)  # a seed fixes its sequence


def _landing(root: Path) -> Path:
    ld = root / "launchdarkly" / "date=2025-12-01"
    ld.mkdir(parents=True)
    events = [
        # 2025-12-01 10:00 and 11:00 UTC
        {"event_id": "ld-1", "is_active": "Y", "event": {"key": "vault-launch", "creationDate": 1764583200000}},
        {"event_id": "ld-2", "is_active": "Y", "event": {"key": "vault-launch", "creationDate": 1764586800000}},
    ]  # fmt: skip
    (ld / "part-000.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    legacy = root / "legacy" / "date=2025-12-02"
    legacy.mkdir(parents=True)
    (legacy / "part-000.csv").write_text("id,user\nlg-1,u-1\nlg-2,u-2\n")
    return root


def test_landing_changes_do_what_they_say(tmp_path):
    landing = _landing(tmp_path)
    apply_change(landing, Step("retract", D[1], D[3], seed=5), 1)
    (retraction,) = (landing / "launchdarkly" / "date=2025-12-03").iterdir()
    event = json.loads(retraction.read_text())
    assert event["is_active"] == "N" and event["event_id"] in {"ld-1", "ld-2"}

    apply_change(landing, Step("redeliver", D[1], D[1], seed=1), 2)
    folder = landing / "launchdarkly" / "date=2025-12-01"
    assert (folder / "redelivered-002.jsonl").read_bytes() == (
        folder / "part-000.jsonl"
    ).read_bytes()

    # a copy of an event of 12-01 under a new time, landed in 12-04: one or two days later
    # (12-01 is the sample's first day: no earlier day), never after 12-04
    apply_change(landing, Step("redate", D[1], D[4], seed=2), 4)
    (redated,) = (landing / "launchdarkly" / "date=2025-12-04").iterdir()
    copy = json.loads(redated.read_text())
    original = {"ld-1": 1764583200000, "ld-2": 1764586800000}[copy["event_id"]]
    assert copy["is_active"] == "Y"
    assert copy["event"]["creationDate"] - original in (86_400_000, 2 * 86_400_000)

    apply_change(landing, Step("correct", D[2], D[2], seed=3), 3)
    lines = (landing / "legacy" / "date=2025-12-02" / "part-000.csv").read_text().splitlines()
    assert lines[0] == "id,user" and len(lines) == 2  # the header kept, one of two rows gone


@pytest.mark.slow
def test_a_sequence_ends_at_the_clean_build_and_one_left_stale_does_not(tmp_path):
    soak = Soak(tmp_path)
    steps = [run(3, 4), Step("retract", D[2], D[3], seed=11), run(1, 2)]
    caught_up = soak.sequence(0, 0, steps)
    assert [s.describe() for s in caught_up.steps[3:]] == ["run 12-03..12-03"]
    assert caught_up.differences == []
    stale = soak.sequence(1, 0, steps, caught_up=False)
    # the retraction landed in 12-03 after 12-03 ran: the warehouse still counts the event
    assert any(
        line.startswith("raw.partner_directpush_launchdarkly_events") for line in stale.differences
    )


@pytest.mark.slow
def test_a_sequence_with_a_re_dated_event_ends_at_the_clean_build(tmp_path):
    """The soak's re-dating step, end to end: a copy of an event of 12-01 dated two days later
    lands in 12-04 after a full run, and the catch-up run of 12-04 ends at the clean build
    (the event stays on 12-01, its earliest copy). The sample's folder 12-04 holds late events
    of 12-01, so that run rebuilds 12-01 anyway: the cases where the copy's other date is
    outside the run's window are pinned by test_rules_pinned.py's
    test_copies_on_different_dates_give_the_clean_build_in_any_run_order."""
    soak = Soak(tmp_path)
    # seed 13: ld-0000000649, a vault-onboarding-copy exposure of 12-01, copied as of 12-03
    steps = [run(1, 4), Step("redate", D[1], D[4], seed=13)]
    result = soak.sequence(0, 0, steps)
    assert [s.describe() for s in result.steps[2:]] == ["run 12-04..12-04"]
    assert result.differences == []
