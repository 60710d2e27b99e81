//! The page parsers against hostile and broken answers: whatever an API (or
//! something pretending to be one) returns, reading a page ends in a page
//! or an error, never a panic, and never lands a certificate outside the
//! month asked for. Property tests with a bounded number of cases, so they
//! run with every `cargo test`.

use epc_model::{Kind, Month, Source};
use epc_source::{Api, Credentials, PageRequest, fetch_page};
use http_client::native::block_on;
use http_client::{Client, Request, Response, RetryPolicy, Transport, TransportError};
use proptest::prelude::*;
use std::cell::RefCell;
use std::time::Duration;

/// Answers every request with the next scripted response, then 404s.
struct Scripted {
    responses: RefCell<Vec<Response>>,
}

impl Transport for Scripted {
    async fn send(&self, _: &Request, max_body: usize) -> Result<Response, TransportError> {
        let next = self.responses.borrow_mut().pop();
        match next {
            Some(r) if r.body.len() > max_body => Err(TransportError::TooLarge { limit: max_body }),
            Some(r) => Ok(r),
            None => Ok(Response { status: 404, headers: vec![], body: b"{}".to_vec() }),
        }
    }
    async fn sleep(&self, _: Duration) {}
    fn random(&self) -> u64 {
        0
    }
    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

fn request(source: Source, cursor: Option<String>) -> PageRequest {
    PageRequest {
        api: Api::new(source, "http://127.0.0.1:1").unwrap(),
        kind: Kind::Domestic,
        month: Month::new(2021, 3).unwrap(),
        cursor,
        page_size: 5,
        last_day: "2026-11-26".parse().unwrap(),
    }
}

fn credentials(source: Source) -> Credentials {
    Credentials::for_source(source, Some("t".into()), Some("e".into()), Some("k".into())).unwrap()
}

fn run(source: Source, cursor: Option<String>, responses: Vec<Response>) {
    let client = Client::new(Scripted { responses: RefCell::new(responses) })
        .with_policy(RetryPolicy { max_attempts: 2, base_delay: Duration::ZERO, max_delay: Duration::ZERO });
    let month = Month::new(2021, 3).unwrap();
    if let Ok(page) = block_on(fetch_page(&client, &credentials(source), &request(source, cursor))) {
        for c in &page.certificates {
            let day: jiff::civil::Date = c.lodgement_date.parse().expect("landed dates are dates");
            assert!(month.contains(day), "{} landed in {month}", c.lodgement_date);
            assert!(!c.document.contains('\n'), "a document spans lines");
        }
    }
}

/// Dates that are the day asked for, near it, or not dates at all.
fn date() -> impl Strategy<Value = String> {
    prop_oneof![Just("2021-03-01".to_string()), "2021-0[2-4]-[0-3][0-9]", "[0-9T:-]{0,25}"]
}

/// Bodies that look almost right: JSON of the right outline with wrong
/// types, wrong dates, missing fields, huge numbers, invalid UTF-8.
fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..200),
        "[ -~]{0,200}".prop_map(|s| s.into_bytes()),
        (0u64..10, date(), "[A-Za-z0-9-]{0,30}", prop_oneof![Just("null".to_string()), "[0-9]{1,25}".prop_map(|s| s)])
            .prop_map(|(total, date, id, uprn)| {
                format!(
                    r#"{{"data":[{{"certificateNumber":"{id}","registrationDate":"{date}","uprn":{uprn},"currentEnergyEfficiencyBand":"C"}}],"pagination":{{"totalRecords":{total},"totalPages":1}}}}"#
                )
                .into_bytes()
            }),
        ("[A-Za-z0-9-]{0,20}", date()).prop_map(|(id, date)| {
            format!(r#"{{"column-names":["lmk-key"],"rows":[{{"lmk-key":"{id}","lodgement-date":"{date}","uprn":"1"}}]}}"#).into_bytes()
        }),
        Just(br#"{"data":{"a":1}}"#.to_vec()),
        Just(b"{\"data\":\xff\xfe}".to_vec()),
    ]
}

fn response() -> impl Strategy<Value = Response> {
    (prop_oneof![Just(200u16), Just(200), Just(200), Just(404), Just(400), Just(403), Just(500), Just(302)], body(), proptest::option::of("[ -~]{0,40}"))
        .prop_map(|(status, body, next)| Response {
            status,
            headers: next.map(|n| vec![("X-Next-Search-After".to_string(), n)]).unwrap_or_default(),
            body,
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn gepbd_pages_never_panic(responses in proptest::collection::vec(response(), 0..12)) {
        run(Source::Gepbd, None, responses);
    }

    #[test]
    fn odc_pages_never_panic(responses in proptest::collection::vec(response(), 0..4)) {
        run(Source::Odc, None, responses);
    }

    #[test]
    fn any_cursor_is_read_or_refused(cursor in "[ -~]{0,80}", responses in proptest::collection::vec(response(), 0..6)) {
        run(Source::Gepbd, Some(cursor.clone()), responses.clone());
        run(Source::Odc, Some(cursor), responses);
    }
}
