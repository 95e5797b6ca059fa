{#-
    The sample-ratio-mismatch test (DATA_CONTRACT.md section 5), written once for the overall
    mart (mart_experiment_health_daily) and the per-tier mart (mart_experiment_health_by_tier_daily).

    Input: int_experiment_srm_observed, the cumulative tested users per registered variation
    (users in several variations left out, a variation without users counts 0) with its
    expected share (registry weights normalised to sum 1), per experiment, date and segment.

    The thresholds are dbt vars (dbt_project.yml), read by the Python check's descriptions too
    (expplatform/quality/queries.py), so they are stated once:
      srm_min_users_per_variation  not_enough_traffic while any variation has fewer users (8)
      srm_unhealthy_p_value        unhealthy below this p-value ... (0.001)
      srm_min_share_difference     ... when a share is off its expected share by at least (0.001)
      srm_warning_p_value          warning below this p-value (0.01)
-#}

{#- Pearson's chi-square per `keys` (the columns of one test), from observed users per variation. -#}
{% macro srm_test(observed_relation, keys) -%}
    select
        {{ keys | join(', ') }},
        count(*) as variation_count,
        max(tested_users) as tested_users,
        min(observed_users) as smallest_variation_users,
        -- summed as decimals: a sum of doubles depends on the order the rows arrive in, which
        -- differs between an incremental and a clean build (the soak saw the last digit of the
        -- chi-square change); decimal addition is exact, so every build gives the same value
        -- (the term is guarded row by row: a segment without tested users would be 0 / 0)
        case
            when max(tested_users) > 0
                then cast(sum(
                    case
                        when tested_users > 0
                            then cast(
                                power(observed_users - tested_users * expected_share, 2)
                                / (tested_users * expected_share)
                                as decimal(38, 12)
                            )
                    end
                ) as double)
        end as srm_chi_square,
        case
            when max(tested_users) > 0
                then max(abs(observed_users / tested_users - expected_share))
        end as max_share_difference

    from {{ observed_relation }}
    group by {{ keys | join(', ') }}
{%- endmacro %}

{#- The p-value of a test: chi-square with (registered variations - 1) degrees of freedom. -#}
{% macro srm_p_value(chi_square, variation_count) -%}
    chi2_sf({{ chi_square }}, {{ variation_count }} - 1)
{%- endmacro %}

{#- The contract's status from a test's figures (the per-tier mart passes its corrected p). -#}
{% macro srm_status(p_value, variation_count, smallest_variation_users, max_share_difference) -%}
    case
        when {{ variation_count }} is null
            or {{ variation_count }} < 2
            or {{ smallest_variation_users }} < {{ var('srm_min_users_per_variation') }}
            then 'not_enough_traffic'
        -- the epsilon keeps an exact difference equal to the threshold from being lost to
        -- floating-point rounding
        when {{ p_value }} < {{ var('srm_unhealthy_p_value') }}
            and {{ max_share_difference }} >= {{ var('srm_min_share_difference') }} - 1e-12
            then 'unhealthy'
        when {{ p_value }} < {{ var('srm_warning_p_value') }} then 'warning'
        else 'healthy'
    end
{%- endmacro %}
