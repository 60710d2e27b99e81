//! Bulk files through both APIs: 302, short-lived URLs, ZIP contents.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::time::Duration;

use common::*;
use epc_emulator::{BulkFiles, Config, Kind, Recommendations, Synthetic, gepbd_certificate_number};
use serde_json::Value;

fn files_config(lifetime: Duration) -> Config {
    let removed = gepbd_certificate_number(&rows(DOMESTIC)[3]["LMK_KEY"]);
    Config {
        files: Some(BulkFiles {
            url_lifetime: lifetime,
            dir: None,
        }),
        recommendations: Some(Recommendations::default()),
        deltas: vec![format!("removed:{removed}@2021-09-01").parse().unwrap()],
        synthetic: Some(Synthetic {
            per_month: 300,
            months: Synthetic::months("2024-01").unwrap(),
            kinds: vec![Kind::Domestic],
        }),
        ..config()
    }
}

fn no_redirects() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into()
}

fn auth_get(s: &Server, path: &str, auth: &str) -> (u16, Option<String>, Vec<u8>) {
    let mut r = no_redirects()
        .get(format!("{}{path}", s.url))
        .header("Authorization", auth)
        .call()
        .unwrap();
    let location = r.headers().get("location").map(|v| v.to_str().unwrap().to_owned());
    let body = r.body_mut().with_config().limit(1 << 30).read_to_vec().unwrap();
    (r.status().as_u16(), location, body)
}

fn bearer() -> String {
    format!("Bearer {TOKEN}")
}

fn basic() -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{EMAIL}:{API_KEY}"))
    )
}

/// Follows a 302 at once; returns the redirect URL and the downloaded bytes.
fn download(s: &Server, path: &str, auth: &str) -> (String, Vec<u8>) {
    let (status, location, _) = auth_get(s, path, auth);
    assert_eq!(status, 302, "{path}");
    let location = location.unwrap();
    let prefix = format!("{}/_files/", s.url);
    assert!(location.starts_with(&prefix) && location.contains("X-Amz-Signature="), "{location}");
    let (status, _, body) = auth_get(s, &location[s.url.len()..], "");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    (location, body)
}

fn entries(zip: &[u8]) -> BTreeMap<String, Vec<u8>> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip)).unwrap();
    (0..archive.len())
        .map(|i| {
            let mut f = archive.by_index(i).unwrap();
            let mut out = Vec::new();
            f.read_to_end(&mut out).unwrap();
            (f.name().to_owned(), out)
        })
        .collect()
}

fn csv_rows(bytes: &[u8]) -> (Vec<String>, Vec<BTreeMap<String, String>>) {
    let mut r = csv::Reader::from_reader(bytes);
    let header: Vec<String> = r.headers().unwrap().iter().map(str::to_owned).collect();
    let rows = r
        .records()
        .map(|rec| header.iter().cloned().zip(rec.unwrap().iter().map(str::to_owned)).collect())
        .collect();
    (header, rows)
}

#[test]
fn gepbd_csv_holds_every_certificate_once_per_year() {
    let s = start(files_config(Duration::from_secs(30)));
    let (_, zip) = download(&s, "/api/files/domestic/csv", &bearer());
    let files = entries(&zip);
    assert_eq!(files.keys().collect::<Vec<_>>(), ["domestic-2021.csv", "domestic-2024.csv"]);
    let mut seen = BTreeMap::new();
    for (name, bytes) in &files {
        let (header, rows) = csv_rows(bytes);
        assert_eq!(header[0], "certificate_number");
        assert_eq!(&header[header.len() - 4..], ["region", "country", "uprn", "uprn_source"]);
        for col in ["address1", "postcode", "lodgement_date", "lodgement_datetime", "current_energy_rating"] {
            assert!(header.iter().any(|h| h == col), "{col} in {header:?}");
        }
        assert!(header.iter().all(|h| h == &h.to_lowercase() && !h.contains('-')));
        assert!(!header.iter().any(|h| h == "lmk_key"));
        let year = &name["domestic-".len()..name.len() - 4];
        for row in rows {
            assert!(row["lodgement_date"].starts_with(year), "{name}: {}", row["lodgement_date"]);
            assert_eq!(row["country"], "England", "Hartlepool is in England");
            *seen.entry(row["certificate_number"].clone()).or_insert(0) += 1;
        }
    }
    assert!(seen.values().all(|&n| n == 1), "each certificate exactly once");
    let e = s.running().emulator().expected();
    assert_eq!(seen.len() as u64, e.total(Kind::Domestic));
    assert_eq!(seen.len(), 1624 - 1 + 300, "the removed certificate is left out");
    let removed = gepbd_certificate_number(&rows(DOMESTIC)[3]["LMK_KEY"]);
    assert!(!seen.contains_key(&removed));
    let kept = gepbd_certificate_number(&rows(DOMESTIC)[0]["LMK_KEY"]);
    assert!(seen.contains_key(&kept));

    // /info describes the same file.
    let (status, _, info) = auth_get(&s, "/api/files/domestic/csv/info", &bearer());
    assert_eq!(status, 200);
    let info: Value = serde_json::from_slice(&info).unwrap();
    assert_eq!(info["data"]["fileSize"], zip.len());
    let updated = info["data"]["lastUpdated"].as_str().unwrap();
    assert!(updated.ends_with("+00:00") && updated.len() == 29, "{updated}");

    // A second download is the same file (built once).
    let (_, again) = download(&s, "/api/files/domestic/csv", &bearer());
    assert_eq!(again, zip);
    assert_eq!(auth_get(&s, "/api/files/domestic/csv", "").0, 403);
    assert_eq!(auth_get(&s, "/api/files/domestic/xml", &bearer()).0, 404);
    assert_eq!(auth_get(&s, "/api/files/domestic-recommendations/json", &bearer()).0, 404);
    let stats = s.running().stats();
    assert_eq!(stats.count("GET /api/files/domestic/csv", 302), 2);
    assert_eq!(stats.count("GET /_files/{name}", 200), 2);
}

#[test]
fn expired_and_forged_urls_are_refused() {
    let s = start(files_config(Duration::from_secs(1)));
    let (status, location, _) = auth_get(&s, "/api/files/display/csv", &bearer());
    assert_eq!(status, 302);
    let location = location.unwrap()[s.url.len()..].to_owned();
    std::thread::sleep(Duration::from_millis(1300));
    let (status, _, body) = auth_get(&s, &location, "");
    assert_eq!(status, 403);
    let body = String::from_utf8(body).unwrap();
    assert!(body.starts_with("<?xml") && body.contains("<Code>AccessDenied</Code>") && body.contains("Request has expired"), "{body}");
    let forged = location.replace("X-Amz-Signature=", "X-Amz-Signature=0");
    let (status, _, body) = auth_get(&s, &forged, "");
    assert_eq!(status, 403);
    assert!(String::from_utf8(body).unwrap().contains("SignatureDoesNotMatch"));
    // A fresh redirect works again.
    let (_, zip) = download(&s, "/api/files/display/csv", &bearer());
    let rows: usize = entries(&zip).values().map(|b| csv_rows(b).1.len()).sum();
    assert_eq!(rows, 55);
}

#[test]
fn json_files_hold_the_documents_and_reports() {
    let s = start(files_config(Duration::from_secs(30)));
    let (_, zip) = download(&s, "/api/files/non-domestic/json", &bearer());
    let files = entries(&zip);
    assert_eq!(files.keys().collect::<Vec<_>>(), ["non-domestic-2021.json"]);
    let docs: Vec<Value> = serde_json::from_slice(&files["non-domestic-2021.json"]).unwrap();
    assert_eq!(docs.len(), 60);
    let doc = &docs[0];
    assert_eq!(doc["schema_type"], "CEPC-8.0.0");
    let r = s.gepbd("/api/certificate", &[("certificate_number", doc["certificate_number"].as_str().unwrap())]);
    assert_eq!(r.json()["data"], *doc, "the same document as /api/certificate");

    let (_, zip) = download(&s, "/api/files/non-domestic-recommendations/json", &bearer());
    let files = entries(&zip);
    let reports: Vec<Value> = serde_json::from_slice(&files["non-domestic-recommendations-2021.json"]).unwrap();
    let e = s.running().emulator().expected_recommendations();
    let missing: u64 = e.kinds[&Kind::NonDomestic].values().map(|c| c.missing_reports).sum();
    assert_eq!(reports.len() as u64, 60 - missing);
    assert!(reports.iter().all(|r| r["assessment_type"] == "CEPC-RR"));

    let (_, zip) = download(&s, "/api/files/domestic/json", &bearer());
    let n: usize = entries(&zip)
        .values()
        .map(|b| serde_json::from_slice::<Vec<Value>>(b).unwrap().len())
        .sum();
    assert_eq!(n, 1624 - 1 + 300);
}

#[test]
fn odc_monthly_zips() {
    let s = start(files_config(Duration::from_secs(30)));
    let (status, _, body) = auth_get(&s, "/api/v1/files", &basic());
    assert_eq!(status, 200);
    let list: Value = serde_json::from_slice(&body).unwrap();
    let names: BTreeSet<&str> = list["files"].as_object().unwrap().keys().map(String::as_str).collect();
    assert!(names.contains("domestic-2021-01.zip") && names.contains("domestic-2024-01.zip"));
    assert!(names.contains("display-2021-06.zip") && !names.contains("display-2021-04.zip"), "{names:?}");
    assert_eq!(names.len(), 8 + 1 + 5 + 5);

    let (_, zip) = download(&s, "/api/v1/files/domestic-2021-01.zip", &basic());
    assert_eq!(list["files"]["domestic-2021-01.zip"]["size"], zip.len());
    let files = entries(&zip);
    assert_eq!(files.keys().collect::<Vec<_>>(), ["certificates.csv", "recommendations.csv"]);
    let (header, certs) = csv_rows(&files["certificates.csv"]);
    let fixture_header: Vec<String> = csv::Reader::from_path(fixture(DOMESTIC)).unwrap().headers().unwrap().iter().map(str::to_owned).collect();
    assert_eq!(header, fixture_header, "the original UPPER_SNAKE columns");
    let removed_in_jan = rows(DOMESTIC)[3]["LODGEMENT_DATE"].starts_with("2021-01") as usize;
    assert_eq!(certs.len(), 152 - removed_in_jan);
    let (rec_header, recs) = csv_rows(&files["recommendations.csv"]);
    assert_eq!(rec_header, ["LMK_KEY", "IMPROVEMENT_ITEM", "IMPROVEMENT_SUMMARY_TEXT", "IMPROVEMENT_DESCR_TEXT", "IMPROVEMENT_ID", "IMPROVEMENT_ID_TEXT", "INDICATIVE_COST"]);
    let e = s.running().emulator().expected_recommendations().month(Kind::Domestic, "2021-01");
    assert_eq!(recs.len() as u64, e.recommendations);
    let keys: BTreeSet<&str> = certs.iter().map(|r| r["LMK_KEY"].as_str()).collect();
    assert!(recs.iter().all(|r| keys.contains(r["LMK_KEY"].as_str())));

    let (_, zip) = download(&s, "/api/v1/files/non-domestic-2021-02.zip", &basic());
    let files = entries(&zip);
    let (_, recs) = csv_rows(&files["recommendations.csv"]);
    assert!(recs.iter().all(|r| ["SHORT", "MEDIUM", "LONG", "OTHER"].contains(&r["PAYBACK_TYPE"].as_str())));
    assert_eq!(auth_get(&s, "/api/v1/files/domestic-2021-04.zip", "").0, 401);
    assert_eq!(auth_get(&s, "/api/v1/files/display-2021-04.zip", &basic()).0, 404);
    assert_eq!(auth_get(&s, "/api/v1/files/nonsense", &basic()).0, 404);
}

#[test]
fn no_file_routes_by_default() {
    let s = start(config());
    assert_eq!(auth_get(&s, "/api/files/domestic/csv", &bearer()).0, 404);
    assert_eq!(auth_get(&s, "/api/v1/files", &basic()).0, 404);
    assert_eq!(auth_get(&s, "/_files/domestic-csv.zip", "").0, 404);
}
