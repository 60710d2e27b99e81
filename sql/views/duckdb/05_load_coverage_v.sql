-- load_coverage_v: per dataset and month, what was loaded, when, what the API
-- reported, and what the raw tables hold, on a spine of every month from each
-- dataset's first to its last, so a month never loaded shows as 'missing'.
-- Rules: docs/views.md.
-- BigQuery twin: sql/views/05_load_coverage_v.sql (keep them equal).
CREATE OR REPLACE VIEW "{{DATASET}}"."load_coverage_v" AS
WITH logged AS (
  SELECT
    dataset, month, source, rows_loaded, rows_reported, load_id, loaded_at,
    COUNT(*) OVER (PARTITION BY dataset, month) AS loads
  FROM "{{DATASET}}"."load_log"
  WHERE TRUE
  QUALIFY ROW_NUMBER() OVER (PARTITION BY dataset, month ORDER BY loaded_at DESC, load_id DESC) = 1
),
raw AS (
  SELECT 'domestic' AS dataset, CAST(date_trunc('month', lodgement_date) AS DATE) AS month,
    COUNT(*) AS rows_in_raw, COUNT(DISTINCT CONCAT(source, ':', COALESCE(certificate_number, lmk_key))) AS certificates_in_raw
  FROM "{{DATASET}}"."domestic_raw_json"
  GROUP BY 1, 2
  UNION ALL
  SELECT 'non-domestic' AS dataset, CAST(date_trunc('month', lodgement_date) AS DATE) AS month,
    COUNT(*) AS rows_in_raw, COUNT(DISTINCT CONCAT(source, ':', COALESCE(certificate_number, lmk_key))) AS certificates_in_raw
  FROM "{{DATASET}}"."non_domestic_raw_json"
  GROUP BY 1, 2
  UNION ALL
  SELECT 'display' AS dataset, CAST(date_trunc('month', lodgement_date) AS DATE) AS month,
    COUNT(*) AS rows_in_raw, COUNT(DISTINCT CONCAT(source, ':', COALESCE(certificate_number, lmk_key))) AS certificates_in_raw
  FROM "{{DATASET}}"."display_raw_json"
  GROUP BY 1, 2
),
bounds AS (
  SELECT dataset, MIN(month) AS first_month, MAX(month) AS last_month
  FROM (
    SELECT dataset, month FROM logged
    UNION ALL
    SELECT dataset, month FROM raw
  ) AS seen
  GROUP BY dataset
),
spine AS (
  SELECT dataset, CAST(unnest(generate_series(first_month, last_month, INTERVAL 1 MONTH)) AS DATE) AS month
  FROM bounds
)
SELECT
  spine.dataset,
  spine.month,
  logged.source,
  logged.rows_loaded,
  logged.rows_reported,
  logged.loaded_at,
  logged.load_id,
  COALESCE(logged.loads, 0) AS loads,
  CASE WHEN spine.dataset IN ('domestic', 'non-domestic', 'display') THEN COALESCE(raw.rows_in_raw, 0) END AS rows_in_raw,
  CASE WHEN spine.dataset IN ('domestic', 'non-domestic', 'display') THEN COALESCE(raw.certificates_in_raw, 0) END AS certificates_in_raw,
  CASE
    WHEN logged.load_id IS NULL AND raw.rows_in_raw IS NULL THEN 'missing'
    WHEN logged.load_id IS NULL THEN 'not_logged'
    WHEN logged.rows_reported > 0 AND logged.rows_loaded < logged.rows_reported THEN 'short'
    WHEN spine.dataset IN ('domestic', 'non-domestic', 'display') AND COALESCE(raw.rows_in_raw, 0) <> logged.rows_loaded THEN 'raw_differs'
    WHEN logged.rows_loaded = 0 THEN 'empty'
    ELSE 'ok'
  END AS status
FROM spine
LEFT JOIN logged ON logged.dataset = spine.dataset AND logged.month = spine.month
LEFT JOIN raw ON raw.dataset = spine.dataset AND raw.month = spine.month
