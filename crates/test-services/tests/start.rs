//! The harness itself: both stand-ins start, answer, and take a bucket.

use test_services::{Services, Which};

#[test]
fn both_stand_ins_start_and_answer() {
    let s = Services::start(Which::GcsAndBigQuery).expect("emulators start");
    s.create_bucket("harness-check").unwrap();
    let buckets = ureq::get(&format!("{}/storage/v1/b", s.gcs_url)).call().unwrap().into_body().read_to_string().unwrap();
    assert!(buckets.contains("harness-check"), "{buckets}");
    let health = ureq::get(&format!("{}/healthz", s.bq_url)).call().unwrap();
    assert_eq!(health.status(), 200);
}
