"""Deterministic sample landing zone: the money-vaults story, with every quirk of the contract.

:func:`generate_landing_zone` writes the four source folders of the data
contract (§2) for ``days`` arrival days from ``start``. Same arguments, same
bytes: all randomness comes from numpy generators seeded with ``seed`` (one
stream per arrival day), and files are rendered in a fixed order.

The story (offsets are days after ``start``; dates for the default start
2025-12-01 and ``days=30``):

* ``vault-launch`` (LaunchDarkly key ``vault-launch``, legacy key
  ``vault_launch``): variations ``control`` / ``treatment``, 50/50 by a hash of
  the user id. Runs from ``start`` for the whole sample (registry: start_date
  2025-12-01, empty end_date). The flag version is 7, then 8 from the
  LaunchDarkly-only cut-over.
* ``vault-onboarding-copy`` (LaunchDarkly ``vault-onboarding-copy``, legacy
  ``vault_onboarding_copy``): variations ``control`` / ``treatment_a`` /
  ``treatment_b``, 1/3 each by a hash of the user id. Runs from ``start`` to
  ``start + 19`` inclusive, whatever ``days`` is: **registry start_date
  2025-12-01, end_date 2025-12-20**. A few straggler evaluations (stale
  clients) still arrive on the two days after the end; they are no exposures.
* ``dark-mode`` / ``dark_mode``: an unregistered flag (variations ``off`` / ``on``).
* Migration (thirds of ``days``, floor): days ``[0, days//3)`` legacy only,
  ``[days//3, 2*days//3)`` both systems (each user moves to LaunchDarkly on their
  own day; 5% of users emit through both on the same day, always with the same
  variation), then LaunchDarkly only. Default: legacy 12-01..12-10, both
  12-11..12-20, LaunchDarkly only 12-21..12-30. Legacy folders exist only for
  the days the legacy system exported, LaunchDarkly folders from its first day.
* Users ``u-000001``..; snapshots ``users_<start-1>.csv`` (older) and
  ``users_<start+days-1>.csv`` (newest = truth). Subscription change logs
  ``subscription_changes_<date>.csv`` at ``start``, every 7 days, and the last day.

Quirks, in small proportions: retried LaunchDarkly and legacy event ids (same
file and re-delivered in the next arrival folder), retracted copies
(``is_active = "N"``; some before the original in the file, some in the next
folder), ``debug`` events, prerequisite evaluations (``prereqOf``), late
events (event time 1 or 2 days before the folder date, never more), about 1.5%
of users switching ``vault-launch`` variation once, odd variation spellings
(``" Treatment "``), tier changes during days with exposures, users without
subscription, test accounts spelled ``true``/``1``/``t`` (some only in the newest
snapshot, a few un-flagged in it), users missing from the newest snapshot, legacy
timestamps with ``Z``, ``+01:00``, ``+00:00`` or no offset, legacy booleans spelled
true/false/t/f/1/0/TRUE/True, and about 0.02% bad lines of every kind listed
in §2.5 (each kind at least once in a sample).

``events_per_day`` fixes the number of LaunchDarkly + legacy lines of every
arrival day (quirk lines included, within ~1%); by default it is about ten per
active user. Lines are rendered column-wise into byte templates with numpy
(no per-event Python), and files are compressed and written by two threads.

Modules, one job each: :mod:`.story` (the fixed facts and rates above, and a
run's calendar), :mod:`.population` (per-user facts, users and subscriptions
files), :mod:`.events` (a day's clean events), :mod:`.quirks` (retried and
retracted copies, bad lines), :mod:`.formats` (the two line formats),
:mod:`.batches` (column batches), :mod:`.writer` (part files, compression) and
:mod:`.landing_zone` (:func:`generate_landing_zone`, :class:`SampleSummary`).
"""

from __future__ import annotations

from expplatform.sample_data.landing_zone import SampleSummary, generate_landing_zone
from expplatform.sample_data.story import ONBOARDING_END_OFFSET_DAYS

__all__ = ["SampleSummary", "generate_landing_zone", "ONBOARDING_END_OFFSET_DAYS"]
