"""The source registry: every landing-zone source declared once.

A :class:`Source` says where its files land, how they are parsed, which raw table they load into
and — for a *flag source* (exposure events) — the raw column holding the event time, the dbt
staging model that puts its events into the common exposure shape and the column of
`seeds/experiments.csv` holding its flag keys. Everything else is derived from the registry:

- ingestion: one raw asset per source (`expplatform.ingestion.assets`), the parser chosen by
  `format` (`expplatform.ingestion.loaders`);
- the recompute window of a daily run (`expplatform.transform.window`);
- the Python checks per source (rejected-record rate, late events) and the freshness checks;
- the landing sensor, the landing-zone freshness check and the sample range of the CLI;
- the dbt union of exposures: `int_experiment_user_days` loops over the dbt var `flag_sources`,
  which every dbt invocation receives from :meth:`SourceRegistry.dbt_vars`;
- the benchmark's bare floor script.

Adding a flag source is one entry here plus one staging model (README, "Where to change what").
The order of the flag sources is the contract's tie-break order (rule 6: LaunchDarkly before
legacy).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from dagster import AssetKey


@dataclass(frozen=True)
class Source:
    """One landing-zone source and the raw table it loads into."""

    #: `source` in raw.rejected_records; also the dbt source name of its raw table.
    name: str
    #: The landing-zone sub-folder (daily sources: one `date=YYYY-MM-DD` folder per arrival date).
    folder: str
    #: `raw.<table>`: the raw table (declared with its columns in the dbt sources YAML).
    raw_table: str
    #: File name endings read from the folder (gzip is read transparently).
    suffixes: tuple[str, ...]
    #: The parser (expplatform.ingestion.loaders.PARSERS).
    format: str
    #: Partitioned by arrival date (`date=` folders) rather than a snapshot/change log.
    daily: bool
    description: str
    #: Flag sources only: the raw column with the event time (UTC timestamp).
    event_time_column: str | None = None
    #: Flag sources only: the dbt staging model giving the common exposure shape.
    staging_model: str | None = None
    #: Flag sources only: the column of seeds/experiments.csv with this source's flag keys.
    flag_key_column: str | None = None
    #: Unpartitioned sources: only the newest file (by name) counts (a full snapshot).
    newest_file_only: bool = False
    #: Parser options, e.g. the JSON paths of a generic JSONL source's fields.
    options: Mapping[str, Any] = field(default_factory=dict, hash=False, compare=False)

    @property
    def is_flag_source(self) -> bool:
        """Whether the source carries exposure events (it feeds the dbt union)."""
        return self.staging_model is not None

    @property
    def table(self) -> str:
        """The qualified raw table (`raw.<name>`)."""
        return self.raw_table

    @property
    def table_name(self) -> str:
        """The raw table without its schema."""
        return self.raw_table.split(".", 1)[1]

    @property
    def step_key(self) -> str:
        """The Dagster step (op) that loads the raw table: `raw__<table>`."""
        return f"raw__{self.table_name}"

    @property
    def asset_key(self) -> AssetKey:
        """The Dagster asset key of the raw table: `raw/<table>`."""
        return AssetKey(self.raw_table.split("."))

    # kept for the loaders, which say `partitioned`
    @property
    def partitioned(self) -> bool:
        return self.daily


LAUNCHDARKLY = Source(
    name="launchdarkly",
    folder="launchdarkly",
    raw_table="raw.partner_directpush_launchdarkly_events",
    suffixes=(".jsonl", ".jsonl.gz"),
    format="launchdarkly_export",
    daily=True,
    description="LaunchDarkly data-export events pushed by the partner "
    "(launchdarkly/date=D/*.jsonl[.gz]), one row per accepted line, duplicates and retractions "
    "included. Bad lines go to raw.rejected_records.",
    event_time_column="event_creationdate",
    staging_model="stg_launchdarkly__flag_events",
    flag_key_column="launchdarkly_flag_key",
)
LEGACY = Source(
    name="legacy",
    folder="legacy",
    raw_table="raw.legacy_feature_flag_events",
    suffixes=(".csv", ".csv.gz"),
    format="legacy_csv",
    daily=True,
    description="Legacy flag system export (legacy/date=D/*.csv), one row per accepted CSV row, "
    "timestamps normalised to UTC and value parsed to a boolean. Bad rows go to "
    "raw.rejected_records.",
    event_time_column="timestamp",
    staging_model="stg_legacy__flag_events",
    flag_key_column="legacy_flag_key",
)
USERS = Source(
    name="users",
    folder="users",
    raw_table="raw.users",
    suffixes=(".csv", ".csv.gz"),
    format="users_csv",
    daily=False,
    newest_file_only=True,
    description="The newest users snapshot (users/*.csv, newest by file name is the truth): "
    "user_id, created_at, country, is_test_account.",
)
SUBSCRIPTIONS = Source(
    name="subscriptions",
    folder="subscriptions",
    raw_table="raw.subscription_changes",
    suffixes=(".csv", ".csv.gz"),
    format="subscriptions_csv",
    daily=False,
    description="The subscription change log (every subscriptions/*.csv): from effective_at on, "
    "the user is on tier. Repeated change ids are kept here and deduplicated in staging.",
)


@dataclass(frozen=True)
class SourceRegistry:
    """The sources of one deployment, in declaration order."""

    sources: tuple[Source, ...]

    def __post_init__(self) -> None:
        for attribute in ("name", "folder", "raw_table"):
            values = [getattr(s, attribute) for s in self.sources]
            duplicates = sorted({v for v in values if values.count(v) > 1})
            if duplicates:
                raise ValueError(f"source registry: duplicate {attribute} {', '.join(duplicates)}")
        for source in self.flag_sources:
            if not (source.daily and source.event_time_column and source.flag_key_column):
                raise ValueError(
                    f"source registry: flag source {source.name} needs daily=True, "
                    "event_time_column and flag_key_column"
                )

    def __iter__(self) -> Iterator[Source]:
        return iter(self.sources)

    @property
    def daily(self) -> tuple[Source, ...]:
        """Sources partitioned by arrival date."""
        return tuple(s for s in self.sources if s.daily)

    @property
    def snapshots(self) -> tuple[Source, ...]:
        """Unpartitioned sources (snapshots and change logs)."""
        return tuple(s for s in self.sources if not s.daily)

    @property
    def flag_sources(self) -> tuple[Source, ...]:
        """Sources of exposure events, in the contract's tie-break order."""
        return tuple(s for s in self.sources if s.is_flag_source)

    def get(self, name: str) -> Source:
        """The source called `name` (KeyError naming the known ones otherwise)."""
        for source in self.sources:
            if source.name == name:
                return source
        raise KeyError(f"unknown source {name!r}; known: {', '.join(s.name for s in self)}")

    def with_source(self, source: Source) -> SourceRegistry:
        """A registry with one more source (appended: last in the tie-break order)."""
        return SourceRegistry((*self.sources, source))

    def dbt_vars(self) -> dict[str, Any]:
        """The dbt vars every invocation receives (`var('flag_sources')` in the models)."""
        return {
            "flag_sources": [
                {
                    "name": s.name,
                    "staging_model": s.staging_model,
                    "flag_key_column": s.flag_key_column,
                    "rank": rank,
                }
                for rank, s in enumerate(self.flag_sources, start=1)
            ]
        }


DEFAULT_REGISTRY = SourceRegistry((LAUNCHDARKLY, LEGACY, USERS, SUBSCRIPTIONS))
