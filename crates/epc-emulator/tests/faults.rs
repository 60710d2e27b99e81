//! Injected faults and the rate limit, over real sockets.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::*;
use epc_emulator::{Config, Fault, Faults, Kind, RateLimit, Stats};
use http_client::native::{NativeTransport, block_on};
use http_client::{Client, Request, RetryPolicy};
use serde_json::Value;

/// What a client saw of one request.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Seen {
    /// No response: the connection failed before a status arrived.
    NoResponse,
    /// A status, then the body failed part-way.
    BrokenBody(u16),
    Status(u16, Option<String>, Vec<u8>),
}

fn raw_get(url: &str, query: &[(&str, &str)]) -> Seen {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(20)))
        .build()
        .into();
    let mut req = agent.get(url).header("Authorization", format!("Bearer {TOKEN}"));
    for (k, v) in query {
        req = req.query(*k, *v);
    }
    let mut resp = match req.call() {
        Ok(r) => r,
        Err(_) => return Seen::NoResponse,
    };
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    match resp.body_mut().with_config().limit(50 << 20).read_to_vec() {
        Ok(body) => Seen::Status(status, retry_after, body),
        Err(_) => Seen::BrokenBody(status),
    }
}

const CLASSES: [&str; 13] = [
    "429", "429bare", "500", "502", "503", "reset", "cut", "slow", "truncate", "badjson", "badutf8", "dup", "total",
];

fn spec(rate: f64) -> Faults {
    let spec: Vec<String> = CLASSES
        .iter()
        .map(|c| match *c {
            "slow" => format!("slow={rate}:30ms"),
            c => format!("{c}={rate}"),
        })
        .collect();
    spec.join(",").parse().unwrap()
}

/// Runs `n` searches of a four-page window (page 2) and returns what the
/// client saw and the server's stats.
fn run(seed: u64, n: usize) -> (Vec<Seen>, Stats) {
    let s = start(Config {
        seed,
        faults: spec(0.05),
        ..config()
    });
    let url = format!("{}/api/domestic/search", s.url);
    let q = [
        ("date_start", "2021-01-01"),
        ("date_end", "2021-01-31"),
        ("page_size", "50"),
        ("current_page", "2"),
    ];
    let seen = (0..n).map(|_| raw_get(&url, &q)).collect();
    // The emulator's own routes never fault.
    for _ in 0..30 {
        assert_eq!(s.get("/_emulator/stats", Auth::None, &[], None).status, 200);
    }
    (seen, s.running().stats())
}

#[test]
fn each_class_happens_at_about_its_rate_reproducibly() {
    let n = 1000;
    let (seen, stats) = run(7, n);
    let expected = n as f64 * 0.05;
    for class in CLASSES {
        let got = stats.faults_of(class) as f64;
        assert!(
            (expected * 0.45..=expected * 1.7).contains(&got),
            "{class}: {got} injected, about {expected} expected ({:?})",
            stats.faults
        );
    }
    // What the client saw agrees with what the server says it injected.
    let count = |f: &dyn Fn(&Seen) -> bool| seen.iter().filter(|s| f(s)).count() as u64;
    assert_eq!(
        count(&|s| matches!(s, Seen::Status(429, Some(_), _))),
        stats.faults_of("429")
    );
    assert_eq!(
        count(&|s| matches!(s, Seen::Status(429, None, _))),
        stats.faults_of("429bare")
    );
    for code in [500u16, 502, 503] {
        assert_eq!(
            count(&|s| matches!(s, Seen::Status(c, ..) if *c == code)),
            stats.faults_of(&code.to_string()),
            "{code}"
        );
    }
    assert_eq!(count(&|s| *s == Seen::NoResponse), stats.faults_of("reset"));
    assert_eq!(count(&|s| matches!(s, Seen::BrokenBody(200))), stats.faults_of("cut"));
    let parsed: Vec<Result<Value, String>> = seen
        .iter()
        .filter_map(|s| match s {
            Seen::Status(200, _, body) => Some(serde_json::from_slice(body).map_err(|_| {
                if std::str::from_utf8(body).is_err() {
                    "badutf8".to_owned()
                } else if body.windows(2).any(|w| w == b",,") {
                    "badjson".to_owned()
                } else {
                    "truncate".to_owned()
                }
            })),
            _ => None,
        })
        .collect();
    for class in ["badutf8", "badjson", "truncate"] {
        let got = parsed.iter().filter(|p| p.as_ref().err().map(String::as_str) == Some(class)).count() as u64;
        assert_eq!(got, stats.faults_of(class), "{class}");
    }
    let totals = parsed
        .iter()
        .filter_map(|p| p.as_ref().ok())
        .filter(|v| v["pagination"]["totalRecords"] != 152)
        .count() as u64;
    assert_eq!(totals, stats.faults_of("total"));
    assert_eq!(stats.count("GET /api/domestic/search", 0), stats.faults_of("reset"));

    // Same seed, same sequence of requests: the same faults, byte for byte.
    let (again, stats_again) = run(7, n);
    assert_eq!(stats_again.faults, stats.faults);
    assert_eq!(again, seen);
    let (other, stats_other) = run(8, n);
    assert_ne!(stats_other.faults, stats.faults);
    assert_ne!(other, seen);
}

#[test]
fn dup_shifts_rows_between_pages() {
    let s = start(Config {
        faults: "dup=1".parse().unwrap(),
        ..config()
    });
    let mut union = BTreeSet::new();
    let mut rows = 0;
    for page in 1..=4 {
        let p = page.to_string();
        let r = s.gepbd(
            "/api/domestic/search",
            &[("date_start", "2021-01-01"), ("date_end", "2021-01-31"), ("page_size", "50"), ("current_page", &p)],
        );
        let body = r.json();
        for row in body["data"].as_array().unwrap() {
            union.insert(row["certificateNumber"].as_str().unwrap().to_owned());
            rows += 1;
        }
        assert_eq!(body["pagination"]["totalRecords"], 152, "dup leaves the total alone");
    }
    assert_eq!(s.running().stats().faults_of("dup"), 4);
    assert!(union.len() < 152 || rows != 152, "rows repeated or skipped");
    // A one-page window has nothing to shift.
    let r = s.gepbd("/api/domestic/search", &[("date_start", "2021-01-01"), ("date_end", "2021-01-31")]);
    assert_eq!(r.json()["data"].as_array().unwrap().len(), 152);
    assert_eq!(s.running().stats().faults_of("dup"), 4);
}

/// A client in the spirit of the project's: `http_client::Client` (six
/// attempts, backoff, `Retry-After`) for transport faults, and its own
/// retries for bodies that do not parse; GEPBD windows paged several times
/// over until their union holds `totalRecords` (or twelve passes).
struct Retrying {
    client: Client<NativeTransport>,
    base: String,
}

impl Retrying {
    fn json(&self, path: &str, auth: &str) -> Option<Value> {
        for _ in 0..8 {
            let req = Request::get(format!("{}{path}", self.base)).header("Authorization", auth);
            let resp = block_on(self.client.send(&req)).unwrap_or_else(|e| panic!("{path}: {e}"));
            match resp.status {
                200 if resp.body.is_empty() => return None,
                200 => match serde_json::from_slice::<Value>(&resp.body) {
                    Ok(v) => return Some(v),
                    Err(_) => continue,
                },
                404 => return None,
                s => panic!("{path}: HTTP {s}"),
            }
        }
        panic!("{path}: no valid body after 8 tries");
    }

    fn gepbd(&self, path: &str) -> Option<Value> {
        self.json(path, &format!("Bearer {TOKEN}"))
    }

    fn odc(&self, path: &str) -> Option<Value> {
        use base64::Engine;
        let b = base64::engine::general_purpose::STANDARD.encode(format!("{EMAIL}:{API_KEY}"));
        self.json(path, &format!("Basic {b}"))
    }

    /// Every certificate number of a window, paged `page_size` at a time.
    fn window(&self, start: &str, end: &str, page_size: usize) -> BTreeSet<String> {
        let mut union = BTreeSet::new();
        // The largest total seen: a total that moved down during the window
        // must not end the paging early.
        let mut most = 0;
        for _pass in 0..12 {
            let mut page = 1;
            loop {
                let path = format!(
                    "/api/domestic/search?date_start={start}&date_end={end}&page_size={page_size}&current_page={page}"
                );
                let Some(body) = self.gepbd(&path) else { break };
                for row in body["data"].as_array().unwrap() {
                    union.insert(row["certificateNumber"].as_str().unwrap().to_owned());
                }
                let total = body["pagination"]["totalRecords"].as_u64().unwrap() as usize;
                most = most.max(total);
                let pages = total.div_ceil(page_size);
                if page >= pages {
                    break;
                }
                page += 1;
            }
            if union.len() >= most {
                break;
            }
        }
        union
    }
}

#[test]
fn chaos_still_lets_a_retrying_client_fetch_everything() {
    let s = start(Config {
        faults: "chaos".parse().unwrap(),
        ..config()
    });
    let client = Retrying {
        client: Client::new(NativeTransport::new(Duration::from_secs(2), Duration::from_secs(2))).with_policy(
            RetryPolicy {
                max_attempts: 6,
                base_delay: Duration::from_millis(100),
                max_delay: Duration::from_secs(2),
            },
        ),
        base: s.url.clone(),
    };
    let started = Instant::now();
    let months = [("2021-01-01", "2021-01-31", "2021-01"), ("2021-02-01", "2021-02-28", "2021-02"), ("2021-03-01", "2021-03-31", "2021-03")];
    let expected = s.running().emulator().expected();
    let mut all = BTreeSet::new();
    for (start, end, month) in months {
        let got = client.window(start, end, 100);
        assert_eq!(got.len() as u64, expected.month(Kind::Domestic, month), "{month}");
        all.extend(got);
    }
    let want: BTreeSet<String> = rows(DOMESTIC)
        .iter()
        .filter(|r| r["LODGEMENT_DATE"].as_str() < "2021-04")
        .map(|r| epc_emulator::gepbd_certificate_number(&r["LMK_KEY"]))
        .collect();
    assert_eq!(all, want);
    for number in all.iter().take(200) {
        let doc = client.gepbd(&format!("/api/certificate?certificate_number={number}")).unwrap();
        assert_eq!(doc["data"]["certificate_number"], number.as_str());
    }
    // ODC, paged with search-after (the cursor rides in a header, so read
    // pages through the raw client).
    let mut odc_rows = BTreeSet::new();
    let mut after: Option<String> = None;
    loop {
        let mut path = "/api/v1/domestic/search?from-month=1&from-year=2021&to-month=1&to-year=2021&size=50".to_owned();
        if let Some(a) = &after {
            path.push_str(&format!("&search-after={a}"));
        }
        let next = loop {
            use base64::Engine;
            let b = base64::engine::general_purpose::STANDARD.encode(format!("{EMAIL}:{API_KEY}"));
            let req = Request::get(format!("{}{path}", s.url)).header("Authorization", format!("Basic {b}"));
            let resp = block_on(client.client.send(&req)).unwrap();
            assert_eq!(resp.status, 200);
            let Ok(body) = serde_json::from_slice::<Value>(&resp.body) else { continue };
            for row in body["rows"].as_array().unwrap() {
                odc_rows.insert(row["lmk-key"].as_str().unwrap().to_owned());
            }
            break resp.header(epc_emulator::NEXT_SEARCH_AFTER).map(str::to_owned);
        };
        match next {
            Some(a) => after = Some(a),
            None => break,
        }
    }
    assert_eq!(odc_rows.len(), 152);
    assert!(client.odc("/api/v1/info").is_some());
    let stats = s.running().stats();
    let classes: BTreeMap<&String, &u64> = stats.faults.iter().collect();
    eprintln!(
        "chaos: {} requests, faults {classes:?}, client {:?} (requests, retries, bytes), {:.1} s",
        stats.total,
        client.client.counters().snapshot(),
        started.elapsed().as_secs_f64()
    );
    assert!(stats.faults.len() >= 5, "many classes injected: {classes:?}");
}

#[test]
fn rate_limit_rejects_beyond_the_limit_and_recovers() {
    let s = start(Config {
        rate_limit: Some("20/2s".parse::<RateLimit>().unwrap()),
        ..config()
    });
    let q = [("date_start", "2021-01-01"), ("date_end", "2021-01-31")];
    let started = Instant::now();
    let statuses: Vec<u16> = (0..25).map(|_| s.gepbd("/api/domestic/search", &q).status).collect();
    assert!(started.elapsed() < Duration::from_secs(2), "the test must run inside one window");
    assert_eq!(statuses.iter().filter(|&&c| c == 200).count(), 20, "{statuses:?}");
    assert!(statuses[20..].iter().all(|&c| c == 429));
    let r = s.gepbd("/api/certificate", &[("certificate_number", "0000-0000-0000-0000-0000")]);
    assert_eq!(r.status, 429);
    let wait: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=2).contains(&wait), "{wait}");
    // ODC has no documented limit; the emulator's own routes have none.
    assert_eq!(s.odc("/api/v1/domestic/search", &[("size", "1")], "application/json").status, 200);
    assert_eq!(s.get("/_emulator/stats", Auth::None, &[], None).status, 200);
    let stats = s.running().stats();
    assert_eq!(stats.rate_limited, 6);
    assert_eq!(stats.count("GET /api/domestic/search", 429), 5);
    assert!(stats.faults.is_empty());
    std::thread::sleep(Duration::from_secs(wait) + Duration::from_millis(100));
    assert_eq!(s.gepbd("/api/domestic/search", &q).status, 200, "recovers after the window");
    assert_eq!(RateLimit::gepbd(), "6000/5m".parse().unwrap());
    let _ = Fault::ALL;
}
