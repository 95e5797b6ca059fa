{#- DuckDB: replace_where on the recomputed dates; Spark: overwrite those date partitions. -#}
{{
    config(
        tags=['daily'],
        **incremental_config(
            ["{{ in_recompute_window('exposure_date') }}"], date_partition='exposure_date'
        )
    )
}}
-- depends_on: {{ source('ops', 'recompute_dates') }}

-- One row per experiment, user and exposure date, test accounts included (they are removed
-- in fct_experiment_exposures_daily, so a change of the users snapshot never needs the raw
-- events again). An incremental run rebuilds the event dates in ops.recompute_dates from
-- every loaded event of those dates.
with

{% if is_incremental() -%}
-- The range join is redundant with the exact date filter below, but lets DuckDB push the
-- window's bounds into the raw table scan and skip the row groups of other dates (an IN
-- filter on a computed date does not), which keeps a run's cost proportional to its window,
-- not to the history.
recompute_bounds as (

    select
        cast(min(recompute_date) as timestamp) as window_start_at,
        cast(max(recompute_date) + 1 as timestamp) as window_end_at

    from {{ source('ops', 'recompute_dates') }}

),

{% endif -%}
{#- The flag sources come from the source registry (expplatform/sources.py), which every
    invocation passes as the var `flag_sources`: name, staging model, the registry column of its
    flag keys and its rank in the tie-break order (contract rule 6). -#}
{%- set event_columns -%}
        events.event_id,
        events.user_id,
        events.event_at,
        events.event_date,
        events.flag_key,
        events.variation_name,
        events.is_active,
        events.is_retracted,
        events.event_kind,
        events.prerequisite_of,
        events._load_date,
        events._source_file,
        events._line_number
{%- endset %}
{%- for flag_source in var('flag_sources') %}
{{ flag_source.name }}_window_events as (

    select
        {{ event_columns }}

    from {{ ref(flag_source.staging_model) }} as events
    {% if is_incremental() -%}
    inner join recompute_bounds
        on events.event_at >= recompute_bounds.window_start_at
        and events.event_at < recompute_bounds.window_end_at
    where {{ in_recompute_window('events.event_date') }}
    {%- endif %}

),

{{ flag_source.name }}_events as (

    select * from {{ flag_source.name }}_window_events
    {% if is_incremental() -%}
    -- Every copy of those events dated outside the window too: copies of one event id may
    -- carry different timestamps (docs/DATA_MODEL.md), and the event is its earliest copy
    -- unless a copy retracts it, wherever the copies fall. (ops.recompute_dates holds the
    -- dates of every copy of the events a run loads: expplatform/transform/window.py.)
    union all

    select
        {{ event_columns }}

    from {{ ref(flag_source.staging_model) }} as events
    where
        events.event_id in (select event_id from {{ flag_source.name }}_window_events)
        and not {{ in_recompute_window('events.event_date') }}
    {%- endif %}

),
{% endfor %}
experiments as (

    select
        experiment_key,
        {%- for flag_source in var('flag_sources') %}
        {{ flag_source.flag_key_column }},
        {%- endfor %}
        start_date,
        end_date

    from {{ ref('experiments') }}

),

-- Contract rule 2: one event per id and source. An id with any retracted copy is dropped
-- whatever the arrival order; otherwise the earliest copy is kept (its timestamp, user,
-- variation and key are the event's), and an incremental run keeps it only when its date is
-- one the run rebuilds. Window functions rather
-- than arg_min over a struct: several times faster on millions of events. (A filter over a
-- numbered subquery rather than DuckDB's QUALIFY, which Spark SQL does not have: same plan.)
{% for source_name in var('flag_sources') | map(attribute='name') %}
{{ source_name }}_numbered as (

    select
        event_id,
        user_id,
        event_at,
        event_date,
        flag_key,
        variation_name,
        is_active,
        event_kind,
        prerequisite_of,
        row_number() over (
            partition by event_id
            order by event_at, _load_date, _source_file, _line_number
        ) as copy_number,
        bool_or(is_retracted) over (partition by event_id) as has_retraction

    from {{ source_name }}_events

),

{{ source_name }}_deduplicated as (

    select
        event_id,
        user_id,
        event_at,
        event_date,
        flag_key,
        variation_name,
        is_active,
        event_kind,
        prerequisite_of

    from {{ source_name }}_numbered
    where
        copy_number = 1
        and not has_retraction
        {%- if is_incremental() %}
        and {{ in_recompute_window('event_date') }}
        {%- endif %}

),
{% endfor %}

-- Contract rule 1: an exposure is an active 'feature' evaluation (not a prerequisite) of a
-- registered flag, dated within the experiment's [start_date, end_date].
{% for flag_source in var('flag_sources') %}
{%- set source_name, flag_key_column, source_rank =
    flag_source.name, flag_source.flag_key_column, flag_source.rank %}
{{ source_name }}_exposures as (

    select
        experiments.experiment_key,
        events.user_id as user_id,
        events.event_date as exposure_date,
        events.event_at as event_at,
        events.variation_name as variation_name,
        '{{ source_name }}' as source_name,
        {{ source_rank }} as source_rank,
        events.event_id

    from {{ source_name }}_deduplicated as events
    inner join experiments
        on events.flag_key = experiments.{{ flag_key_column }}
        and events.event_date >= experiments.start_date
        -- end_date is inclusive: half-open with the next day as the bound
        and (experiments.end_date is null or events.event_date < experiments.end_date + 1)
    where
        events.is_active
        and events.event_kind = 'feature'
        and coalesce(events.prerequisite_of, '') = ''

),
{% endfor %}

exposures as (

    {%- for flag_source in var('flag_sources') %}
    select * from {{ flag_source.name }}_exposures
    {%- if not loop.last %}
    union all
    {%- endif %}
    {%- endfor %}

),

-- Contract rule 6: the day's first exposure is the earliest event, then the source's rank
-- (LaunchDarkly before legacy), then the smaller event id (as a string): the minimum of the struct
-- (event_at, source_rank, event_id, ...), unique per event. Aggregating per variation first
-- gives the distinct variations without a second pass over the events (count(distinct)
-- would add one: twice as slow on millions of events).
variation_days as (

    select
        experiment_key,
        user_id,
        exposure_date,
        variation_name,
        min({{ struct_of([
            ('event_at', 'event_at'),
            ('source_rank', 'source_rank'),
            ('event_id', 'event_id'),
            ('source_name', 'source_name'),
        ]) }}) as first_event,
        count(*) as exposures

    from exposures
    group by experiment_key, user_id, exposure_date, variation_name

),

first_of_day as (

    select
        experiment_key,
        user_id,
        exposure_date,
        min({{ struct_of([
            ('event_at', 'first_event.event_at'),
            ('source_rank', 'first_event.source_rank'),
            ('event_id', 'first_event.event_id'),
            ('source_name', 'first_event.source_name'),
            ('variation_name', 'variation_name'),
        ]) }}) as first_event,
        -- distinct non-null variations, as count(distinct variation_name) would count them
        count(variation_name) as variations_seen,
        cast(sum(exposures) as bigint) as exposures

    from variation_days
    group by experiment_key, user_id, exposure_date

),

user_days as (

    select
        experiment_key,
        user_id,
        exposure_date,
        first_event.event_at as first_exposure_at,
        first_event.variation_name as variation_name,
        variations_seen,
        exposures,
        first_event.source_name as first_source,
        first_event.event_id as first_event_id

    from first_of_day

)

select * from user_days
