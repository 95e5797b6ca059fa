-- The seed's original ad-hoc dashboard query (case 000, part 2), made runnable against the
-- raw tables of the warehouse, for section D of `expplatform bench`.
--
-- Run with the raw schema first on the search path (the benchmark does
-- `set search_path = 'raw,main'`). Fixes, each the least that makes it run, nothing else:
-- 1. the union read CTEs that do not exist (`directpush_launchdarkly_events`,
--    `legacy_feature_flag_events` from inside its own CTE): now the two CTEs defined above it;
-- 2. `created_on` did not exist: the event timestamp as a date (the dashboard shows days), in
--    both branches;
-- 3. the final GROUP BY 1,2,3 grouped by the CASE columns, which reference ungrouped columns:
--    now GROUP BY ALL (the same grouping the author meant).
-- Its bugs are kept on purpose: no deduplication of retried events, no first exposure (a user
-- is counted on every day and in both variations), `LOWER(event_value) = 't'` never matches
-- the LaunchDarkly JSON values `true`/`false` (those rows count as neither), no tier, no
-- test-account exclusion, debug and prerequisite evaluations counted.

WITH directpushlaunchdarklyevents AS(
   SELECT event_id,
		event_contextkeys_user,
    event_creationdate,
 CAST(event_creationdate AS DATE) AS created_on,
 event_key AS experiment_name,
       event_variationname AS experiment_variation_name,
event_value AS experiment_variation_description,
 CASE 
  WHEN LOWER(event_value)='t' THEN TRUE
 WHEN LOWER(event_value)='f' THEN FALSE 
 END AS is_experiment_variation
FROM partner_directpush_launchdarkly_events  
  WHERE is_active='Y'
),

legacyfeatureflagevents AS (  
SELECT id AS event_id,
  user AS event_contextkeysuser,
"timestamp" as event_creationdate,
 CAST("timestamp" AS DATE) AS created_on,
 key AS experiment_name,
variation_name AS experiment_variation_name,
   NULL AS experiment_variation_description,
 value::BOOLEAN AS is_experiment_variation
FROM legacy_feature_flag_events
),

union_all_rows AS (
SELECT * FROM directpushlaunchdarklyevents
   UNION ALL
SELECT * FROM legacyfeatureflagevents
),

final AS (
  SELECT experiment_name,
is_experiment_variation,
 created_on,
COUNT(DISTINCT union_all_rows.event_contextkeys_user) AS num_users
 FROM union_all_rows
GROUP BY 1, 2,3
)

SELECT experiment_name,
 created_on,
 CASE WHEN is_experiment_variation=TRUE THEN num_users END AS num_user_true,
CASE WHEN is_experiment_variation=FALSE THEN num_users END AS num_user_false
 FROM final
WHERE experiment_name='vault-launch'
 GROUP BY ALL
ORDER BY num_user_true DESC, num_user_false DESC;
