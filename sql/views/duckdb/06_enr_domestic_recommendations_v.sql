-- enr_domestic_recommendations_v: one row per recommendation of a domestic certificate, its indicative cost parsed.
-- Written by hand; its twin in the other dialect is sql/views/06_enr_domestic_recommendations_v.sql.
-- Rules and columns: docs/views.md.
CREATE OR REPLACE VIEW "{{DATASET}}"."enr_domestic_recommendations_v" AS
WITH removed AS (
  SELECT DISTINCT certificate_number FROM "{{DATASET}}"."certificate_events" WHERE event_type = 'removed'
),
latest AS (
  SELECT r.source, r.certificate_number, r.lmk_key, r.lodgement_date, r.record, r.load_id, r.ingested_at
  FROM "{{DATASET}}"."domestic_recommendations_raw_json" AS r
  WHERE r.certificate_number IS NULL OR r.certificate_number NOT IN (SELECT certificate_number FROM removed)
  QUALIFY ROW_NUMBER() OVER (
    PARTITION BY r.source, COALESCE(r.certificate_number, r.lmk_key)
    ORDER BY r.ingested_at DESC, r.landed_at DESC, r.landed_object DESC, r.load_id DESC
  ) = 1
),
items AS (
  SELECT
    l.source, l.certificate_number, l.lmk_key, l.lodgement_date, l.load_id, l.ingested_at,
    NULLIF(TRIM(json_extract_string(item, '$.item')), '') AS item_txt,
    NULLIF(TRIM(json_extract_string(item, '$.improvement_id')), '') AS improvement_id,
    NULLIF(TRIM(json_extract_string(item, '$.improvement_type')), '') AS improvement_type,
    NULLIF(TRIM(json_extract_string(item, '$.summary_text')), '') AS summary_text,
    NULLIF(TRIM(json_extract_string(item, '$.description_text')), '') AS description_text,
    NULLIF(TRIM(json_extract_string(item, '$.id_text')), '') AS id_text,
    NULLIF(TRIM(json_extract_string(item, '$.indicative_cost')), '') AS indicative_cost_txt
  FROM latest AS l, UNNEST(json_extract(l.record, '$.recommendations[*]')) AS i(item)
),
costs AS (
  SELECT
    source, certificate_number, lmk_key, lodgement_date, load_id, ingested_at, item_txt, improvement_id,
    improvement_type, summary_text, description_text, id_text, indicative_cost_txt,
    CASE WHEN regexp_matches(indicative_cost_txt, '^£?[0-9][0-9,]*( *- *£?[0-9][0-9,]*)?$')
      THEN TRY_CAST(REPLACE(NULLIF(regexp_extract(indicative_cost_txt, '^£?([0-9][0-9,]*)', 1), ''), ',', '') AS BIGINT) END AS cost_low,
    CASE WHEN regexp_matches(indicative_cost_txt, '^£?[0-9][0-9,]*( *- *£?[0-9][0-9,]*)?$')
      THEN TRY_CAST(REPLACE(COALESCE(NULLIF(regexp_extract(indicative_cost_txt, '- *£?([0-9][0-9,]*)$', 1), ''), NULLIF(regexp_extract(indicative_cost_txt, '^£?([0-9][0-9,]*)', 1), '')), ',', '') AS BIGINT) END AS cost_high
  FROM items
)
SELECT
  certificate_number,
  lmk_key,
  source,
  lodgement_date,
  TRY_CAST(item_txt AS BIGINT) AS improvement_item,
  improvement_id,
  improvement_type,
  summary_text AS improvement_summary_text,
  description_text AS improvement_descr_text,
  id_text AS improvement_id_text,
  indicative_cost_txt AS indicative_cost,
  CASE WHEN cost_low <= cost_high THEN cost_low END AS indicative_cost_low,
  CASE WHEN cost_low <= cost_high THEN cost_high END AS indicative_cost_high,
  load_id,
  ingested_at AS loaded_at
FROM costs
