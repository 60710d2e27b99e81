//! `GcsStore` against fake-gcs-server over real sockets. The emulator must
//! be installed (`scripts/services install`): these tests fail, never skip,
//! without it.

use google_auth::Auth;
use http_client::Client;
use http_client::native::{NativeTransport, block_on};
use landing::{GcsStore, ObjectStore, StoreError};
use test_services::{Services, Which};

fn store(s: &Services, url: &str) -> GcsStore<NativeTransport> {
    // A real-looking token: with an emulator configured it must not be sent.
    let auth = Auth::from_settings(Some("ya29.must-not-be-sent".into()), None).unwrap();
    // `host:port`, as STORAGE_EMULATOR_HOST is often written.
    let host = s.gcs_url.trim_start_matches("http://");
    GcsStore::new(url, Client::new(NativeTransport::default()), auth, Some(host)).unwrap()
}

#[test]
fn create_if_absent_read_list_delete() {
    let s = Services::start(Which::Gcs).expect("fake-gcs-server starts (scripts/services install)");
    s.create_bucket("dame-landing").unwrap();
    let st = store(&s, "gs://dame-landing/epc").with_page_size(2);

    assert_eq!(block_on(st.put_new("raw/d/202101/part-00001.ndjson.gz", b"one", "application/gzip")), Ok(true));
    assert_eq!(block_on(st.put_new("raw/d/202101/part-00001.ndjson.gz", b"two", "application/gzip")), Ok(false));
    assert_eq!(block_on(st.get("raw/d/202101/part-00001.ndjson.gz")).unwrap().as_deref(), Some(&b"one"[..]));
    // The prefix is where the objects are, and out of the keys.
    assert!(s.gcs_root.join("dame-landing/epc/raw/d/202101/part-00001.ndjson.gz").exists());

    block_on(st.put("state/d/202101/done.json", b"{}", "application/json")).unwrap();
    block_on(st.put("state/d/202101/done.json", b"{\"v\":2}", "application/json")).unwrap();
    assert_eq!(block_on(st.get("state/d/202101/done.json")).unwrap().unwrap(), b"{\"v\":2}");
    assert_eq!(block_on(st.get("state/d/202101/missing.json")), Ok(None));

    for n in 2..=5 {
        block_on(st.put_new(&format!("raw/d/202101/part-0000{n}.ndjson.gz"), b"x", "application/gzip")).unwrap();
    }
    block_on(st.put_new("raw/d/202102/part-00001.ndjson.gz", b"x", "application/gzip")).unwrap();
    // Outside the store's prefix: never listed.
    s.create_bucket("other-bucket").unwrap();
    block_on(store(&s, "gs://dame-landing").put("raw/d/202101/outside.gz", b"x", "application/gzip")).unwrap();

    let listed = block_on(st.list("raw/d/202101/")).unwrap();
    assert_eq!(listed, (1..=5).map(|n| format!("raw/d/202101/part-0000{n}.ndjson.gz")).collect::<Vec<_>>());
    let before = st.client().counters().snapshot().0;
    assert_eq!(block_on(st.list("raw/")).unwrap().len(), 6);
    assert!(st.client().counters().snapshot().0 - before >= 3, "paged through 2 names at a time");
    assert_eq!(block_on(st.list("state/")).unwrap(), ["state/d/202101/done.json"]);

    assert_eq!(block_on(st.delete("raw/d/202101/part-00005.ndjson.gz")), Ok(true));
    assert_eq!(block_on(st.delete("raw/d/202101/part-00005.ndjson.gz")), Ok(false));
    assert_eq!(block_on(st.list("raw/d/202101/")).unwrap().len(), 4);
    assert!(matches!(block_on(st.get("../etc/passwd")), Err(StoreError::BadKey(_))));
    assert_eq!(st.describe(), "gs://dame-landing/epc");
}

#[test]
fn a_missing_bucket_is_named() {
    let s = Services::start(Which::Gcs).expect("fake-gcs-server starts (scripts/services install)");
    let st = store(&s, "gs://no-such-bucket");
    for err in [
        block_on(st.put_new("raw/a.gz", b"x", "application/gzip")).unwrap_err(),
        block_on(st.get("raw/a.gz")).unwrap_err(),
        block_on(st.list("raw/")).unwrap_err(),
        block_on(st.delete("raw/a.gz")).unwrap_err(),
    ] {
        assert!(
            matches!(&err, StoreError::Denied(m) if m.starts_with("bucket gs://no-such-bucket does not exist")),
            "{err}"
        );
    }
}

#[test]
fn bad_bucket_names_are_refused_before_any_request() {
    let c = || Client::new(NativeTransport::default());
    for bad in ["gs://Upper", "gs://ab", "gs://goog-x", "/tmp/x"] {
        let err = GcsStore::new(bad, c(), Auth::none(), Some("127.0.0.1:9")).err().expect(bad);
        assert!(matches!(err, StoreError::Denied(_)), "{bad}: {err}");
    }
}
