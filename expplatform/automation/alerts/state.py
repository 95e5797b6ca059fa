"""Alert state: which failures are open, so that a failure is posted when it starts and when it ends.

What a finished run tells the alerts is a :class:`RunOutcome` (built from the
run by the alert sensor; here it is plain data). :meth:`AlertState.record`
compares it with what is open and returns the transitions worth a message:

- a run of a *chain* (a run and its retries and re-executions, which share
  Dagster's `dagster/root_run_id`) failed while the chain had no open failure
  → `run_failed`; a later failure of the same chain is silent (Dagster's
  automatic retries announce themselves in the first message), and so is a
  failure of another run of the same job whose partitions all belong to an
  open failure (the landing sensor's catch-up of that day: the same episode);
- a run of a chain with an open failure succeeded, or another run of the same
  job that covers all the partitions of an open failure (the day rebuilt once
  its file was replaced) → `run_recovered`;
- a check failed and was not failing → `check_failing`; it was failing as a
  WARN and now fails as an ERROR → `check_escalated`; it was failing and
  passed again on every partition it failed on → `check_recovered`. A check
  is one (asset, check name); a pass on other partitions (a run of an older
  day) does not end its failure, so a check failing on the same data is posted
  once, not once per run that happens to skip the bad days.

The state is serialised into the alert sensor's cursor, which Dagster stores
in the instance (schedule storage) with each tick: it survives daemon
restarts and is committed together with the position in the run history, so
the two cannot disagree.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Literal

STATE_VERSION = 1
#: An open run failure is forgotten after this long (a chain nobody re-ran).
CHAIN_TTL = timedelta(days=7)
#: Partitions remembered per failing check (the cursor stays small; the rest is counted).
MAX_PARTITIONS = 31

SEVERITY_RANK = {"WARN": 1, "ERROR": 2}


def spelled_out(partitions: Iterable[str]) -> set[str]:
    """Partition keys, a single-run range of dates (`A..B`) spelled out day by day."""
    out: set[str] = set()
    for key in partitions:
        first, sep, last = key.partition("..")
        try:
            start, end = date.fromisoformat(first), date.fromisoformat(last)
        except ValueError:
            start = end = None
        if not sep or start is None or end is None or end < start:
            out.add(key)
            continue
        out.update((start + timedelta(days=i)).isoformat() for i in range((end - start).days + 1))
    return out


def run_partitions(tags: Mapping[str, str]) -> set[str]:
    """The partitions a run covers, from Dagster's tags (a key, or a single-run range)."""
    if tags.get("dagster/partition"):
        return {tags["dagster/partition"]}
    start = tags.get("dagster/asset_partition_range_start")
    end = tags.get("dagster/asset_partition_range_end")
    return spelled_out([f"{start}..{end}"]) if start and end else set()


@dataclass(frozen=True)
class CheckOutcome:
    """One check (asset, name) in one run: failed if any of its evaluations in the run failed."""

    asset: str
    check: str
    passed: bool
    severity: str  # "ERROR" | "WARN" (of the worst failed evaluation; the spec's when passed)
    #: Failed: the partitions that failed (freshness: the missing ones); passed: those evaluated.
    partitions: tuple[str, ...] = ()
    description: str | None = None
    metadata: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class RunOutcome:
    """What a finished run tells the alerts."""

    run_id: str
    job_name: str
    succeeded: bool
    tags: Mapping[str, str] = field(default_factory=dict)
    #: The root run of its chain (Dagster's `dagster/root_run_id`); its own id for a first run.
    chain_id: str = ""
    #: Dagster's `dagster/retry_number`: 0 for a first run, N for the N-th automatic retry.
    retry_number: int = 0
    #: Whether Dagster will launch an automatic retry of this failed run, and how many remain.
    will_retry: bool = False
    retries_left: int = 0
    failed_steps: Mapping[str, str] = field(default_factory=dict)
    error: str | None = None
    not_materialized: tuple[str, ...] = ()
    checks: tuple[CheckOutcome, ...] = ()

    @property
    def chain(self) -> str:
        return self.chain_id or self.run_id

    @property
    def partitions(self) -> set[str]:
        """The partitions the run covers (empty for a run without partitions)."""
        return run_partitions(self.tags)


@dataclass
class OpenCheck:
    """A check whose latest evaluation failed (and was posted)."""

    asset: str
    check: str
    severity: str
    since_run: str
    since: str  # ISO time the failure was first seen
    last_run: str
    #: Every partition it failed on (as reported), for the recovery message.
    partitions: list[str] = field(default_factory=list)
    #: The partitions (spelled out) whose latest evaluation failed; empty: not known.
    failing: list[str] = field(default_factory=list)


@dataclass
class OpenChain:
    """A run chain whose failure was posted and that has not succeeded since."""

    chain_id: str
    job_name: str
    first_run: str
    since: str
    last_run: str
    attempts: int = 1
    #: The partitions of the failed run (spelled out); empty for a run without partitions.
    partitions: list[str] = field(default_factory=list)


TransitionKind = Literal[
    "run_failed", "run_recovered", "check_failing", "check_escalated", "check_recovered"
]


@dataclass(frozen=True)
class Transition:
    """A change worth a message; `opened` is the failure a recovery or escalation refers to."""

    kind: TransitionKind
    run: RunOutcome
    check: CheckOutcome | None = None
    opened: OpenCheck | OpenChain | None = None


def merge_partitions(known: list[str], new: tuple[str, ...]) -> list[str]:
    """Known partitions plus new ones, sorted, at most MAX_PARTITIONS (the newest kept)."""
    merged = sorted(set(known) | set(new))
    return merged[-MAX_PARTITIONS:]


@dataclass
class AlertState:
    """The open failures, plus the last run-status event the alert sensor has handled."""

    #: Storage id of the last run-status event handled; None until the sensor's first tick.
    after: int | None = None
    checks: dict[tuple[str, str], OpenCheck] = field(default_factory=dict)
    chains: dict[str, OpenChain] = field(default_factory=dict)

    # --- transitions ----------------------------------------------------------------------------

    def record(self, run: RunOutcome, now: datetime) -> list[Transition]:
        """Apply one finished run; the transitions to post, run first, then checks by name."""
        at = now.astimezone(UTC).isoformat(timespec="seconds")
        out: list[Transition] = []
        chain = self.chains.get(run.chain)
        covered = run.partitions
        if not run.succeeded:
            episode = chain or next(
                (
                    c
                    for c in self.chains.values()
                    if c.job_name == run.job_name and covered and covered <= set(c.partitions)
                ),
                None,
            )
            if episode is None:
                self.chains[run.chain] = OpenChain(
                    run.chain, run.job_name, run.run_id, at, run.run_id,
                    partitions=sorted(covered),
                )  # fmt: skip
                out.append(Transition("run_failed", run))
            else:
                episode.attempts += 1
                episode.last_run = run.run_id
        else:
            ended = [chain] if chain is not None else []
            ended += [
                c
                for c in self.chains.values()
                if c is not chain
                and c.job_name == run.job_name
                and c.partitions
                and set(c.partitions) <= covered
            ]
            for opened in ended:
                del self.chains[opened.chain_id]
                out.append(Transition("run_recovered", run, opened=opened))

        for outcome in sorted(run.checks, key=lambda c: (c.asset, c.check)):
            key = (outcome.asset, outcome.check)
            current = self.checks.get(key)
            if outcome.passed:
                if current is not None:
                    rechecked = spelled_out(outcome.partitions)
                    failing = set(current.failing) or spelled_out(current.partitions)
                    still = sorted(failing - rechecked) if rechecked else []
                    if still:  # passed elsewhere: still failing where it was not re-checked
                        current.failing = still
                        current.last_run = run.run_id
                        continue
                    del self.checks[key]
                    out.append(Transition("check_recovered", run, outcome, current))
                continue
            failed_on = tuple(spelled_out(outcome.partitions))
            if current is None:
                self.checks[key] = OpenCheck(
                    outcome.asset,
                    outcome.check,
                    outcome.severity,
                    run.run_id,
                    at,
                    run.run_id,
                    merge_partitions([], outcome.partitions),
                    merge_partitions([], failed_on),
                )
                out.append(Transition("check_failing", run, outcome))
                continue
            current.last_run = run.run_id
            current.partitions = merge_partitions(current.partitions, outcome.partitions)
            current.failing = merge_partitions(current.failing, failed_on)
            if SEVERITY_RANK.get(outcome.severity, 0) > SEVERITY_RANK.get(current.severity, 0):
                current.severity = outcome.severity
                out.append(Transition("check_escalated", run, outcome, current))
        return out

    def expire(self, now: datetime) -> list[str]:
        """Forget run failures older than CHAIN_TTL; the chain ids forgotten."""
        cutoff = now - CHAIN_TTL
        old = [c for c, o in self.chains.items() if datetime.fromisoformat(o.since) < cutoff]
        for chain_id in old:
            del self.chains[chain_id]
        return old

    # --- the cursor -----------------------------------------------------------------------------

    def to_cursor(self) -> str:
        """Compact JSON, stable (sorted) so an unchanged state gives the same cursor."""
        return json.dumps(
            {
                "version": STATE_VERSION,
                "after": self.after,
                "checks": [asdict(c) for _, c in sorted(self.checks.items())],
                "chains": [asdict(c) for _, c in sorted(self.chains.items())],
            },
            sort_keys=True,
            separators=(",", ":"),
        )

    @classmethod
    def from_cursor(cls, cursor: str | None) -> AlertState:
        """The state in a cursor; a missing or unreadable cursor starts afresh (after=None)."""
        if not cursor:
            return cls()
        try:
            raw = json.loads(cursor)
            if not isinstance(raw, dict) or raw.get("version") != STATE_VERSION:
                return cls()
            checks = [OpenCheck(**c) for c in raw.get("checks", [])]
            chains = [OpenChain(**c) for c in raw.get("chains", [])]
            after = raw.get("after")
        except (ValueError, TypeError):
            return cls()
        return cls(
            after=int(after) if after is not None else None,
            checks={(c.asset, c.check): c for c in checks},
            chains={c.chain_id: c for c in chains},
        )
