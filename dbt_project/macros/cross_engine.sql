{#-
    The few places where DuckDB and Spark SQL differ, written once per engine (docs/DEPLOYMENT.md).
    Everything else in the models is SQL both engines read the same way; dbt's own cross-database
    macros cover the types (dbt.type_string() and friends). Each macro dispatches on the adapter:
    `duckdb__<name>` for DuckDB, `spark__<name>` for Spark (and Databricks, whose adapter falls
    back to the spark__ implementations).
-#}

{#-
    A struct value from (field name, expression) pairs. Structs compare field by field, so
    min()/min_by() over one picks a row by several keys at once in a single pass.
-#}
{% macro struct_of(fields) -%}
    {{ return(adapter.dispatch('struct_of', 'expplatform')(fields)) }}
{%- endmacro %}

{% macro duckdb__struct_of(fields) -%}
    { {%- for name, expression in fields %}'{{ name }}': {{ expression }}{% if not loop.last %}, {% endif %}{% endfor -%} }
{%- endmacro %}

{% macro spark__struct_of(fields) -%}
    named_struct({%- for name, expression in fields %}'{{ name }}', {{ expression }}{% if not loop.last %}, {% endif %}{% endfor -%})
{%- endmacro %}

{#-
    The value of `value_expression` on the row with the largest `order_fields` (a list of
    columns compared left to right), null values included: a newer null wins over an older value.
    DuckDB: arg_max_null (arg_max would skip the null); Spark: max_by keeps nulls.
-#}
{% macro last_value_by(value_expression, order_fields) -%}
    {{ return(adapter.dispatch('last_value_by', 'expplatform')(value_expression, order_fields)) }}
{%- endmacro %}

{% macro duckdb__last_value_by(value_expression, order_fields) -%}
    arg_max_null({{ value_expression }}, ({{ order_fields | join(', ') }}))
{%- endmacro %}

{% macro spark__last_value_by(value_expression, order_fields) -%}
    {%- set fields = [] -%}
    {%- for column in order_fields -%}
        {%- do fields.append(('k' ~ loop.index, column)) -%}
    {%- endfor -%}
    max_by({{ value_expression }}, {{ spark__struct_of(fields) }})
{%- endmacro %}

{#-
    One row per day from `start_date` to `end_date` (both included), as a select-list
    expression: it multiplies the row it is selected in (DuckDB unnest, Spark explode).
-#}
{% macro each_day_between(start_date, end_date) -%}
    {{ return(adapter.dispatch('each_day_between', 'expplatform')(start_date, end_date)) }}
{%- endmacro %}

{% macro duckdb__each_day_between(start_date, end_date) -%}
    cast(unnest(generate_series({{ start_date }}, {{ end_date }}, interval 1 day)) as date)
{%- endmacro %}

{% macro spark__each_day_between(start_date, end_date) -%}
    explode(sequence({{ start_date }}, {{ end_date }}, interval 1 day))
{%- endmacro %}

{#- A deterministic bucket 0..9999 of a user id, for the dev target's sample (macros/dev_sample.sql). -#}
{% macro user_bucket(user_column) -%}
    {{ return(adapter.dispatch('user_bucket', 'expplatform')(user_column)) }}
{%- endmacro %}

{% macro duckdb__user_bucket(user_column) -%}
    (hash({{ user_column }}) % 10000)
{%- endmacro %}

{% macro spark__user_bucket(user_column) -%}
    pmod(xxhash64({{ user_column }}), 10000)
{%- endmacro %}

{#-
    How an incremental model replaces its slice on this engine (docs/DEPLOYMENT.md).
    DuckDB: `replace_where` (macros/get_incremental_replace_where_sql.sql), which deletes
    exactly the slice the predicates describe. Spark has no DELETE on plain Parquet tables:
    a model whose slice is whole dates (`date_partition` given) overwrites those date partitions
    (`insert_overwrite`); a model sliced by users is rebuilt whole (`table`): it reads the
    aggregated daily rows, never the raw events, so a full rebuild is cheap on a cluster.
-#}
{% macro incremental_config(predicates, date_partition=none) -%}
    {%- if target.type == 'spark' and date_partition -%}
        {{ return({
            'materialized': 'incremental',
            'incremental_strategy': 'insert_overwrite',
            'partition_by': [date_partition],
            'file_format': 'parquet',
            'pre_hook': "{{ spark_drop_recomputed_partitions('" ~ date_partition ~ "') }}",
        }) }}
    {%- elif target.type == 'spark' -%}
        {{ return({'materialized': 'table', 'file_format': 'parquet'}) }}
    {%- else -%}
        {{ return({
            'materialized': 'incremental',
            'incremental_strategy': 'replace_where',
            'incremental_predicates': predicates,
        }) }}
    {%- endif -%}
{%- endmacro %}

{#-
    Spark: before an incremental run of a date-partitioned model, drop the partitions of the
    dates it recomputes (ops.recompute_dates). `insert_overwrite` replaces only the partitions
    its query returns rows for, so a date whose every event was retracted (or whose files were
    re-delivered empty) would keep its old rows, where DuckDB's `replace_where` deletes them.
    Dropped and rewritten, each recomputed date holds exactly what the query returns: rows, or
    none. Renders nothing on a first build or an empty window (dbt skips an empty hook).
-#}
{% macro spark_drop_recomputed_partitions(date_partition) -%}
    {%- if execute and is_incremental() -%}
        {%- set dates = run_query(
            "select distinct cast(recompute_date as string) from "
            ~ source('ops', 'recompute_dates') ~ " order by 1"
        ).columns[0].values() -%}
        {%- if dates | length > 0 -%}
            alter table {{ this }} drop if exists
            {% for day in dates -%}
                partition ({{ date_partition }} = '{{ day }}'){% if not loop.last %}, {% endif %}
            {%- endfor %}
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}
