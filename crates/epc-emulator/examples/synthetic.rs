//! Measures synthetic generation: load time and memory for N domestic
//! certificates a month.
//!
//! ```text
//! cargo run --release -p epc-emulator --example synthetic -- 150000 2024-01..2024-01
//! ```

use std::time::Instant;

use epc_emulator::{BulkFiles, Config, DataFile, Emulator, Kind, Recommendations, Synthetic};

fn rss() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .filter(|l| l.starts_with("VmRSS") || l.starts_with("VmHWM"))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join(", ")
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let per_month: u32 = args.next().unwrap_or_else(|| "150000".into()).parse()?;
    let months = Synthetic::months(&args.next().unwrap_or_else(|| "2024-01".into()))?;
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/odc/");
    let data = ["domestic-E06000001-2021-01-to-08.csv", "non-domestic-synthetic.csv", "display-synthetic.csv"]
        .map(|f| DataFile::Path(format!("{fixtures}{f}").into()))
        .to_vec();
    eprintln!("before: {}", rss());
    let started = Instant::now();
    let emulator = Emulator::load(Config {
        data,
        seed: 1,
        synthetic: Some(Synthetic { per_month, months: months.clone(), kinds: vec![Kind::Domestic] }),
        recommendations: Some(Recommendations::default()),
        files: Some(BulkFiles::default()),
        ..Config::default()
    })?;
    let took = started.elapsed();
    let total = emulator.expected().total(Kind::Domestic);
    println!(
        "{} synthetic domestic rows ({per_month} x {} months; {total} domestic in all) loaded in {:.2} s; {}",
        per_month as usize * months.len(),
        months.len(),
        took.as_secs_f64(),
        rss()
    );

    // Requests against the loaded data, over a socket.
    let runtime = tokio::runtime::Runtime::new()?;
    let running = runtime.block_on(emulator.start("127.0.0.1:0".parse()?))?;
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let get = |path: &str| -> anyhow::Result<(f64, String)> {
        let t = Instant::now();
        let mut r = agent.get(format!("{}{path}", running.url())).header("Authorization", "Bearer x").call()?;
        let body = r.body_mut().with_config().limit(1 << 30).read_to_string()?;
        Ok((t.elapsed().as_secs_f64() * 1000.0, body))
    };
    let first = months[0];
    let last = first.last_of_month();
    let (ms, body) = get(&format!("/api/domestic/search?date_start={first}&date_end={last}&page_size=5000"))?;
    let v: serde_json::Value = serde_json::from_str(&body)?;
    println!("month window, first page of 5000 (totalRecords {}): {ms:.0} ms", v["pagination"]["totalRecords"]);
    let day = first.checked_add(jiff::Span::new().days(2))?;
    let (ms, body) = get(&format!("/api/domestic/search?date_start={day}&date_end={day}&page_size=5000"))?;
    let v: serde_json::Value = serde_json::from_str(&body)?;
    println!("one day ({} rows): {ms:.0} ms", v["pagination"]["totalRecords"]);
    let numbers: Vec<String> = v["data"].as_array().unwrap().iter().take(200).map(|r| r["certificateNumber"].as_str().unwrap().to_owned()).collect();
    let t = Instant::now();
    for n in &numbers {
        get(&format!("/api/certificate?certificate_number={n}"))?;
    }
    println!("certificate lookups: {:.2} ms each", t.elapsed().as_secs_f64() * 1000.0 / numbers.len() as f64);
    println!("after requests: {}", rss());
    for file in ["/api/files/domestic/csv", "/api/files/domestic/json"] {
        let t = Instant::now();
        let no_redirects: ureq::Agent =
            ureq::Agent::config_builder().http_status_as_error(false).max_redirects(0).build().into();
        let r = no_redirects.get(format!("{}{file}", running.url())).header("Authorization", "Bearer x").call()?;
        let location = r.headers()["location"].to_str()?.to_owned();
        let mut r = agent.get(location).call()?;
        let mut n = 0u64;
        let mut reader = r.body_mut().with_config().limit(u64::MAX).reader();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let k = std::io::Read::read(&mut reader, &mut buf)?;
            if k == 0 {
                break;
            }
            n += k as u64;
        }
        println!("{file}: built and downloaded {:.1} MB in {:.2} s; {}", n as f64 / 1e6, t.elapsed().as_secs_f64(), rss());
    }
    runtime.block_on(running.shutdown())?;
    Ok(())
}
