-- enr_non_domestic_recommendations_v: one row per recommendation of a non-domestic certificate.
-- Written by hand; its twin in the other dialect is sql/views/duckdb/07_enr_non_domestic_recommendations_v.sql.
-- Rules and columns: docs/views.md.
CREATE OR REPLACE VIEW `{{PROJECT}}.{{DATASET}}.enr_non_domestic_recommendations_v` AS
WITH removed AS (
  SELECT DISTINCT certificate_number FROM `{{PROJECT}}.{{DATASET}}.certificate_events` WHERE event_type = 'removed'
),
latest AS (
  SELECT r.source, r.certificate_number, r.lmk_key, r.lodgement_date, r.record, r.load_id, r.ingested_at
  FROM `{{PROJECT}}.{{DATASET}}.non_domestic_recommendations_raw_json` AS r
  WHERE r.certificate_number IS NULL OR r.certificate_number NOT IN (SELECT certificate_number FROM removed)
  QUALIFY ROW_NUMBER() OVER (
    PARTITION BY r.source, COALESCE(r.certificate_number, r.lmk_key)
    ORDER BY r.ingested_at DESC, r.landed_at DESC, r.landed_object DESC, r.load_id DESC
  ) = 1
),
items AS (
  SELECT
    l.source, l.certificate_number, l.lmk_key, l.lodgement_date, l.load_id, l.ingested_at,
    NULLIF(TRIM(JSON_VALUE(l.record, '$.report_number')), '') AS report_number,
    NULLIF(TRIM(JSON_VALUE(item, '$.item')), '') AS item_txt,
    UPPER(NULLIF(TRIM(JSON_VALUE(item, '$.payback_type')), '')) AS payback_type,
    NULLIF(TRIM(JSON_VALUE(item, '$.code')), '') AS code,
    NULLIF(TRIM(JSON_VALUE(item, '$.text')), '') AS recommendation,
    UPPER(NULLIF(TRIM(JSON_VALUE(item, '$.co2_impact')), '')) AS co2_impact
  FROM latest AS l, UNNEST(JSON_QUERY_ARRAY(l.record, '$.recommendations')) AS item
)
SELECT
  certificate_number,
  lmk_key,
  source,
  lodgement_date,
  report_number,
  SAFE_CAST(item_txt AS INT64) AS recommendation_item,
  payback_type,
  code AS recommendation_code,
  recommendation,
  co2_impact,
  load_id,
  ingested_at AS loaded_at
FROM items
