{#-
    Fast local development and QA (seed case, part 4): on the `dev` target the staging models
    keep a deterministic sample of users and only the most recent days, so the whole graph
    builds in seconds on a laptop while every table stays consistent (the same users are kept
    everywhere, because the sample is a hash of the user id, not a random draw).

    EXPPLATFORM_DEV_SAMPLE_PCT   percent of users kept (default 10; 100 keeps everyone)
    EXPPLATFORM_DEV_DAYS         days of history kept, counted back from EXPPLATFORM_DEV_AS_OF
    EXPPLATFORM_DEV_AS_OF        the reference date; unset, the dbt step passes the newest arrival
                                 date loaded (expplatform/transform/window.py, dev_window_env),
                                 and a bare `dbt` invocation uses today (UTC)

    On any other target these macros render `true`: production reads everything.
-#}
{% macro dev_user_sample(user_column) -%}
    {%- if target.name == 'dev' -%}
        {{ user_bucket(user_column) }} < {{ (env_var('EXPPLATFORM_DEV_SAMPLE_PCT', '10') | float * 100) | int }}
    {%- else -%}
        true
    {%- endif -%}
{%- endmacro %}

{% macro dev_recent_days(date_column) -%}
    {%- if target.name == 'dev' and env_var('EXPPLATFORM_DEV_DAYS', '') != '' -%}
        {%- set as_of = env_var('EXPPLATFORM_DEV_AS_OF', '') -%}
        {{ date_column }} > {% if as_of %}date '{{ as_of }}'{% else %}current_date{% endif %}
            - interval {{ env_var('EXPPLATFORM_DEV_DAYS') | int }} day
    {%- else -%}
        true
    {%- endif -%}
{%- endmacro %}
