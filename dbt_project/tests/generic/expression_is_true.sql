{#- Every row satisfies `expression` (a SQL boolean over the model's columns); a row where it is
    null (e.g. an open end date) is not a failure. The failing rows are the ones returned. -#}
{% test expression_is_true(model, expression, column_name=none) %}
    select *
    from {{ model }}
    where not ({{ expression }})
{% endtest %}
