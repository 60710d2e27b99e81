//! Shared by the socket tests: start an emulator on 127.0.0.1:0 in its own
//! runtime and talk to it with a blocking HTTP client over a real socket.
#![allow(dead_code)]

use std::path::PathBuf;

use epc_emulator::{Config, DataFile, Emulator, Running};
use jiff::civil::Date;
use serde_json::Value;

pub const TOKEN: &str = "test-token";
pub const EMAIL: &str = "someone@example.com";
pub const API_KEY: &str = "0123456789abcdef";
pub const DOMESTIC: &str = "domestic-E06000001-2021-01-to-08.csv";
pub const NON_DOMESTIC: &str = "non-domestic-synthetic.csv";
pub const DISPLAY: &str = "display-synthetic.csv";

pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/odc")
        .join(name)
}

pub fn all_fixtures() -> Vec<DataFile> {
    [DOMESTIC, NON_DOMESTIC, DISPLAY]
        .map(|f| DataFile::Path(fixture(f)))
        .to_vec()
}

/// Rows of a fixture as (column → value) maps, read independently of the emulator.
pub fn rows(name: &str) -> Vec<std::collections::HashMap<String, String>> {
    let mut r = csv::Reader::from_path(fixture(name)).unwrap();
    let header: Vec<String> = r.headers().unwrap().iter().map(str::to_owned).collect();
    r.records()
        .map(|rec| {
            header
                .iter()
                .cloned()
                .zip(rec.unwrap().iter().map(str::to_owned))
                .collect()
        })
        .collect()
}

pub fn config() -> Config {
    Config {
        data: all_fixtures(),
        token: Some(TOKEN.into()),
        odc_email: Some(EMAIL.into()),
        odc_api_key: Some(API_KEY.into()),
        today: Some(Date::new(2026, 1, 1).unwrap()),
        seed: 42,
        ..Config::default()
    }
}

pub struct Server {
    runtime: tokio::runtime::Runtime,
    running: Option<Running>,
    pub url: String,
    agent: ureq::Agent,
}

pub fn start(config: Config) -> Server {
    let emulator = Emulator::load(config).expect("load");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let running = runtime
        .block_on(emulator.start("127.0.0.1:0".parse().unwrap()))
        .expect("start");
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    Server {
        url: running.url(),
        runtime,
        running: Some(running),
        agent,
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            let _ = self.runtime.block_on(running.shutdown());
        }
    }
}

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

pub enum Auth<'a> {
    None,
    Bearer(&'a str),
    Basic(&'a str, &'a str),
}

impl Server {
    pub fn running(&self) -> &Running {
        self.running.as_ref().unwrap()
    }

    pub fn get(
        &self,
        path: &str,
        auth: Auth,
        query: &[(&str, &str)],
        accept: Option<&str>,
    ) -> Resp {
        let mut req = self.agent.get(format!("{}{path}", self.url));
        for (k, v) in query {
            req = req.query(*k, *v);
        }
        match auth {
            Auth::None => {}
            Auth::Bearer(t) => req = req.header("Authorization", format!("Bearer {t}")),
            Auth::Basic(e, k) => {
                use base64::Engine;
                let b = base64::engine::general_purpose::STANDARD.encode(format!("{e}:{k}"));
                req = req.header("Authorization", format!("Basic {b}"));
            }
        }
        if let Some(a) = accept {
            req = req.header("Accept", a);
        }
        let mut resp = req.call().unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let headers = resp
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
            .collect();
        let status = resp.status().as_u16();
        let body = resp
            .body_mut()
            .with_config()
            .limit(200 << 20)
            .read_to_string()
            .unwrap();
        Resp {
            status,
            headers,
            body,
        }
    }

    /// A GEPBD request with the right token.
    pub fn gepbd(&self, path: &str, query: &[(&str, &str)]) -> Resp {
        self.get(path, Auth::Bearer(TOKEN), query, Some("application/json"))
    }

    /// An ODC request with the right credentials.
    pub fn odc(&self, path: &str, query: &[(&str, &str)], accept: &str) -> Resp {
        self.get(path, Auth::Basic(EMAIL, API_KEY), query, Some(accept))
    }
}
