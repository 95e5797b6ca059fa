{#- `column_name` equals, per `keys`, the sum of `sum_column` over the rows of `to` with the same
    keys (e.g. an experiment's assigned users are its variations' cumulative users). A key
    present on one side only is a failure too. -#}
{% test equals_sum_of(model, column_name, to, sum_column, keys) %}
    {%- set key_list = keys | join(', ') %}
    with totals as (
        select
            {{ key_list }},
            sum({{ sum_column }}) as expected_value
        from {{ to }}
        group by {{ key_list }}
    )
    select
        {{ key_list }},
        model_rows.{{ column_name }} as actual_value,
        totals.expected_value
    from {{ model }} as model_rows
    full outer join totals using ({{ key_list }})
    where model_rows.{{ column_name }} is distinct from totals.expected_value
{% endtest %}
