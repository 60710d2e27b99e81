//! ODC pages of up to 5,000 rows are fetched once and handed out a part
//! (250 rows) at a time: every row once, in order, one request per page,
//! and a run resumed from a cursor inside a page (a new process, nothing
//! kept) asks for that page again and carries on after the rows it had.

use epc_model::{Kind, Month, Source};
use epc_source::{Api, Credentials, PageRequest, WindowCache, fetch_page_with};
use http_client::native::block_on;
use http_client::{Client, Request, Response, Transport, TransportError};
use std::cell::Cell;
use std::time::Duration;

/// A month of `rows` ODC rows, served by `search-after` like the API.
struct OdcMonth {
    rows: usize,
    requests: Cell<u32>,
}

fn query<'a>(url: &'a str, key: &str) -> Option<&'a str> {
    url.split_once('?')?.1.split('&').find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
}

impl Transport for OdcMonth {
    async fn send(&self, request: &Request, _max_body: usize) -> Result<Response, TransportError> {
        self.requests.set(self.requests.get() + 1);
        let size: usize = query(&request.url, "size").unwrap().parse().unwrap();
        let from: usize = query(&request.url, "search-after").map_or(0, |a| a.trim_start_matches("at").parse().unwrap());
        let to = (from + size).min(self.rows);
        let rows: Vec<String> = (from..to)
            .map(|i| format!(r#"{{"lmk-key":"k{i:04}","lodgement-date":"2021-03-{:02}","postcode":"TS1 1AA"}}"#, i % 28 + 1))
            .collect();
        let body = format!(r#"{{"column-names":["lmk-key"],"rows":[{}]}}"#, rows.join(","));
        let headers = if to < self.rows { vec![("x-next-search-after".to_string(), format!("at{to}"))] } else { vec![] };
        Ok(Response { status: 200, headers, body: body.into_bytes() })
    }
    async fn sleep(&self, _: Duration) {}
    fn random(&self) -> u64 {
        0
    }
    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

fn request(cursor: Option<String>, page_size: u32) -> PageRequest {
    PageRequest {
        api: Api::new(Source::Odc, "http://127.0.0.1:1").unwrap(),
        kind: Kind::Domestic,
        month: Month::new(2021, 3).unwrap(),
        cursor,
        page_size,
        last_day: "2026-11-26".parse().unwrap(),
    }
}

/// Reads parts from `cursor` to the month's end, with a new cache (a new
/// process) at every part listed in `restart_at`.
fn read(client: &Client<OdcMonth>, page_size: u32, restart_at: &[usize]) -> (Vec<usize>, Vec<String>, Vec<Option<String>>) {
    let credentials = Credentials::for_source(Source::Odc, None, Some("e".into()), Some("k".into())).unwrap();
    let mut cache = WindowCache::new();
    let (mut sizes, mut ids, mut cursors) = (vec![], vec![], vec![]);
    let mut cursor = None;
    loop {
        if restart_at.contains(&sizes.len()) {
            cache = WindowCache::new();
        }
        let page = block_on(fetch_page_with(client, &credentials, &request(cursor, page_size), &cache)).unwrap();
        assert!(page.certificates.len() <= 250, "a part of {}", page.certificates.len());
        sizes.push(page.certificates.len());
        ids.extend(page.certificates.into_iter().map(|c| c.id));
        cursors.push(page.next_cursor.clone());
        cursor = page.next_cursor;
        if cursor.is_none() {
            return (sizes, ids, cursors);
        }
    }
}

fn all(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("k{i:04}")).collect()
}

#[test]
fn a_page_is_fetched_once_and_landed_in_parts() {
    let client = Client::new(OdcMonth { rows: 600, requests: Cell::new(0) });
    let (sizes, ids, _) = read(&client, 5000, &[]);
    assert_eq!(sizes, [250, 250, 100]);
    assert_eq!(ids, all(600));
    assert_eq!(client.transport().requests.get(), 1);
}

#[test]
fn page_boundaries_keep_the_apis_own_token() {
    let client = Client::new(OdcMonth { rows: 600, requests: Cell::new(0) });
    let (sizes, ids, cursors) = read(&client, 400, &[]);
    assert_eq!(sizes, [250, 150, 200]);
    assert_eq!(ids, all(600));
    assert_eq!(client.transport().requests.get(), 2);
    // Inside a page: our own form. At the boundary: the header's token, as
    // checkpoints written before parts were cut hold.
    assert_eq!(cursors[0].as_deref(), Some(r#"{"v":1,"skip":250}"#));
    assert_eq!(cursors[1].as_deref(), Some("at400"));
    assert_eq!(cursors[2], None);
}

#[test]
fn a_resumed_run_asks_for_the_page_again_and_skips_what_it_had() {
    let client = Client::new(OdcMonth { rows: 600, requests: Cell::new(0) });
    // New processes after the first and the second part.
    let (sizes, ids, _) = read(&client, 5000, &[1, 2]);
    assert_eq!(sizes, [250, 250, 100]);
    assert_eq!(ids, all(600));
    assert_eq!(client.transport().requests.get(), 3);
}
