{#-
    The dates on which a group of an experiment's assignments is shown, written once for every
    mart: from the group's first assignment date to the experiment's last exposure date (a
    group, once present, stays present until the experiment's last exposure). `assignments` is
    a relation or CTE with experiment_key, assignment_date, last_exposure_date and the `groups`
    columns; with no `groups` the group is the whole experiment.

    Used by mart_experiment_allocation_daily (variation x tier), mart_experiment_health_daily
    (the experiment), mart_experiment_health_by_tier_daily (tier) and
    int_experiment_srm_observed (the experiment and each tier).
-#}
{% macro assignment_group_dates(assignments, groups=[]) -%}
    select
        group_spans.experiment_key,
        {%- for column in groups %}
        group_spans.{{ column }},
        {%- endfor %}
        {{ each_day_between('group_spans.first_date', 'experiment_spans.last_date') }} as date

    from (
        select
            experiment_key,
            {%- for column in groups %}
            {{ column }},
            {%- endfor %}
            min(assignment_date) as first_date
        from {{ assignments }}
        group by experiment_key{% for column in groups %}, {{ column }}{% endfor %}
    ) as group_spans
    inner join (
        select
            experiment_key,
            max(last_exposure_date) as last_date
        from {{ assignments }}
        group by experiment_key
    ) as experiment_spans
        on group_spans.experiment_key = experiment_spans.experiment_key
{%- endmacro %}
