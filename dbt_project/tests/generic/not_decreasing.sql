{#- `column_name` never decreases along `order_by` within each group of `group_by` (e.g. a
    cumulative count over dates). Returns each row that is smaller than the row before it. -#}
{% test not_decreasing(model, column_name, group_by, order_by) %}
    {%- set groups = group_by | join(', ') %}
    with ordered as (
        select
            {{ groups }},
            {{ order_by }},
            {{ column_name }} as current_value,
            lag({{ column_name }}) over (
                partition by {{ groups }} order by {{ order_by }}
            ) as previous_value
        from {{ model }}
    )
    select *
    from ordered
    where current_value < previous_value
{% endtest %}
