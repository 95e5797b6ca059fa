{#- Each value of `column_name` has at least `min_rows` rows in `to` whose `field` equals it
    (e.g. every registered experiment has at least two registered variations). -#}
{% test min_related_rows(model, column_name, to, field, min_rows) %}
    select
        parent.{{ column_name }},
        count(child.{{ field }}) as related_rows
    from {{ model }} as parent
    left join {{ to }} as child
        on child.{{ field }} = parent.{{ column_name }}
    group by parent.{{ column_name }}
    having count(child.{{ field }}) < {{ min_rows }}
{% endtest %}
