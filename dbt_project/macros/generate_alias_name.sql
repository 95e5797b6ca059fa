{#-
    Relation names of versioned models (docs/CHANGING_MARTS.md): the latest version is
    materialized under the model's own name, so `marts.mart_experiment_allocation_daily` is always
    the current contract table; any other version gets dbt's default suffix, `<name>_v<N>` (an old
    version kept for its consumers until its deprecation_date, or a pre-release newer than
    latest_version). Unversioned models and explicit `alias` configs are as dbt does them.
    The Dagster asset keys follow the relation name (expplatform/transform/assets.py).
-#}
{% macro generate_alias_name(custom_alias_name=none, node=none) -%}
    {%- if custom_alias_name -%}
        {{ custom_alias_name | trim }}
    {%- elif node.version and node.version == node.latest_version -%}
        {{ node.name }}
    {%- elif node.version -%}
        {{ node.name ~ "_v" ~ (node.version | replace(".", "_")) }}
    {%- else -%}
        {{ node.name }}
    {%- endif -%}
{%- endmacro %}
