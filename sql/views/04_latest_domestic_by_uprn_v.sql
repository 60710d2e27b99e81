-- latest_domestic_by_uprn_v: the current domestic certificate of each property.
-- A property is its UPRN; a certificate without one is placed by its normalised
-- address (lines 1-3) and postcode; one with neither is left out. The latest
-- certificate wins: by lodgement date, then lodgement datetime, then inspection
-- date, then the greater identifier. Rules: docs/views.md.
-- DuckDB twin: sql/views/duckdb/04_latest_domestic_by_uprn_v.sql (keep them equal).
CREATE OR REPLACE VIEW `{{PROJECT}}.{{DATASET}}.latest_domestic_by_uprn_v` AS
WITH keyed AS (
  SELECT
    certificate_number, lmk_key, source, uprn, postcode, address1, address2, address3, posttown,
    lodgement_date, lodgement_datetime, inspection_date,
    current_energy_rating, current_energy_efficiency, potential_energy_rating, potential_energy_efficiency,
    property_type, built_form, total_floor_area, main_fuel, construction_age_band, tenure, quality_flags,
    COALESCE(certificate_number, lmk_key) AS identifier,
    NULLIF(REGEXP_REPLACE(UPPER(COALESCE(postcode, '')), r'[^A-Z0-9]', ''), '') AS postcode_key,
    NULLIF(REGEXP_REPLACE(REGEXP_REPLACE(LOWER(CONCAT(COALESCE(address1, ''), ' ', COALESCE(address2, ''), ' ', COALESCE(address3, ''))), r'[^a-z0-9]+', ' '), r'^ | $', ''), '') AS address_key
  FROM `{{PROJECT}}.{{DATASET}}.enr_domestic_certificates_v`
),
identified AS (
  SELECT
    certificate_number, lmk_key, source, uprn, postcode, address1, address2, address3, posttown,
    lodgement_date, lodgement_datetime, inspection_date,
    current_energy_rating, current_energy_efficiency, potential_energy_rating, potential_energy_efficiency,
    property_type, built_form, total_floor_area, main_fuel, construction_age_band, tenure, quality_flags,
    identifier, postcode_key, address_key,
    CASE
      WHEN uprn IS NOT NULL THEN 'uprn'
      WHEN postcode_key IS NOT NULL AND address_key IS NOT NULL THEN 'address_postcode'
    END AS identity_method,
    CASE
      WHEN uprn IS NOT NULL THEN CONCAT('uprn:', uprn)
      WHEN postcode_key IS NOT NULL AND address_key IS NOT NULL THEN CONCAT('address:', postcode_key, ':', address_key)
    END AS property_key
  FROM keyed
),
ranked AS (
  SELECT
    certificate_number, lmk_key, source, uprn, postcode, address1, address2, address3, posttown,
    lodgement_date, lodgement_datetime, inspection_date,
    current_energy_rating, current_energy_efficiency, potential_energy_rating, potential_energy_efficiency,
    property_type, built_form, total_floor_area, main_fuel, construction_age_band, tenure, quality_flags,
    address_key, identity_method, property_key,
    COUNT(*) OVER (PARTITION BY property_key) AS certificates_for_property,
    ROW_NUMBER() OVER (
      PARTITION BY property_key
      ORDER BY lodgement_date DESC NULLS LAST, lodgement_datetime DESC NULLS LAST,
        inspection_date DESC NULLS LAST, identifier DESC
    ) AS rank_in_property
  FROM identified
  WHERE property_key IS NOT NULL
)
SELECT
  property_key, identity_method, uprn, postcode, address_key,
  certificate_number, lmk_key, source,
  address1, address2, address3, posttown,
  lodgement_date, lodgement_datetime, inspection_date,
  current_energy_rating, current_energy_efficiency, potential_energy_rating, potential_energy_efficiency,
  property_type, built_form, total_floor_area, main_fuel, construction_age_band, tenure,
  certificates_for_property, quality_flags
FROM ranked
WHERE rank_in_property = 1
