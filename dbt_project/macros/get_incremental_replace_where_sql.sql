{#-
    Incremental strategy `replace_where` (docs/ARCHITECTURE.md): delete every target row of the
    slice described by `incremental_predicates`, then insert the freshly built rows of that slice.

    Unlike dbt's `delete+insert`, which deletes only the keys present in the new rows, a slice
    that became empty (every event of a day retracted) is emptied too. dbt-duckdb's incremental
    materialization runs the returned SQL as its "main" statement, inside the model's
    transaction, after building `temp_relation` from the model's SQL.

    The predicates are Jinja strings (e.g. "{{ in_recompute_window('exposure_date') }}")
    rendered here, at run time: a config value is rendered at parse time, when source() and
    ref() return placeholders instead of the real relations. The model's SQL calls the same
    macros to select its new rows, so the delete and the insert cover the same slice; the
    insert applies the predicates again as a guard.
-#}
{% macro get_incremental_replace_where_sql(arg_dict) %}
    {%- set target_relation = arg_dict['target_relation'] -%}
    {%- set temp_relation = arg_dict['temp_relation'] -%}
    {%- set raw_predicates = arg_dict['incremental_predicates'] -%}
    {%- if raw_predicates is string -%}
        {%- set raw_predicates = [raw_predicates] -%}
    {%- endif -%}
    {%- if not raw_predicates -%}
        {{ exceptions.raise_compiler_error(
            "incremental_strategy 'replace_where' needs incremental_predicates (model "
            ~ model.unique_id ~ "): without them it would replace the whole table"
        ) }}
    {%- endif -%}
    {%- set predicates = [] -%}
    {%- for predicate in raw_predicates -%}
        {%- do predicates.append('(' ~ render(predicate) ~ ')') -%}
    {%- endfor -%}
    {%- set dest_cols_csv = get_quoted_csv(arg_dict['dest_columns'] | map(attribute='name')) -%}

    delete from {{ target_relation }}
    where {{ predicates | join(' and ') }};

    insert into {{ target_relation }} ({{ dest_cols_csv }})
    select {{ dest_cols_csv }}
    from {{ temp_relation }}
    where {{ predicates | join(' and ') }}
{% endmacro %}
