//! `dame bench --quick --json`: the benchmark runs end to end (emulator and
//! measurements in child processes) and reports every figure issue 8 asks
//! for, with sane values. No timing is asserted: this machine's speed is not
//! the code's correctness.

mod support;

use serde_json::Value;
use support::*;

fn number(v: &Value, path: &str) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("{path} is not a number: {v}"))
}

#[test]
fn quick_bench_reports_every_figure() {
    let out = run(dame().args(["bench", "--quick", "--json"]));
    assert!(out.status.success(), "{}", text(&out));
    let r: Value = serde_json::from_slice(&out.stdout).expect("--json prints one JSON object");
    let sizes: Vec<String> = r["sizes"].as_array().expect("sizes").iter().map(|n| n.to_string()).collect();
    assert!(!sizes.is_empty());
    // The key is always there; it holds seconds only when the
    // 150k month was measured, which --quick does not do.
    assert!(r.get("duckdb_load_s_150000").is_some_and(Value::is_null), "duckdb_load_s_150000 without a 150k month: {}", r["duckdb_load_s_150000"]);
    let largest = r["sizes"].as_array().unwrap().iter().filter_map(Value::as_u64).max().unwrap();
    let duck = number(&r[format!("duckdb_load_s_{largest}")], "duckdb_load_s_<largest>");
    assert!(duck > 0.0, "DuckDB load of the {largest} month took {duck} s");
    let d = &r["duckdb"];
    assert_eq!(d["size"].as_u64(), Some(largest), "{d}");
    for key in ["load_s", "views_s", "peak_rss_mib"] {
        assert!(number(&d[key], key) > 0.0, "duckdb.{key} = {}", d[key]);
    }
    assert!(number(&d["load_s"], "load_s") + number(&d["views_s"], "views_s") <= number(&d["seconds"], "seconds") + 1e-3, "{d}");
    for source in ["gepbd", "odc"] {
        let s = &r[source];
        for key in ["records_per_s", "peak_rss_mib", "json_mb_per_s", "native_records_per_s"] {
            for n in &sizes {
                let v = number(&s[key][n], &format!("{source}.{key}.{n}"));
                assert!(v.is_finite() && v > 0.0, "{source}.{key}.{n} = {v}");
            }
        }
        for n in &sizes {
            let rss = number(&s["peak_rss_mib"][n], "peak_rss_mib");
            assert!(rss > 1.0 && rss < 4096.0, "{source} peak RSS {rss} MiB");
        }
        let ratio = number(&s["wasm_native_ratio"], "wasm_native_ratio");
        assert!(ratio > 0.05 && ratio < 50.0, "{source} WASM/native {ratio}");
        let warm = number(&s["instantiate_ms_warm"], "instantiate_ms_warm");
        let cold = number(&s["instantiate_ms_cold"], "instantiate_ms_cold");
        assert!(warm > 0.0 && cold > 0.0, "{source} instantiation {warm} / {cold}");
        let used = number(&s["rate_limit_utilisation"], "rate_limit_utilisation");
        assert!(used > 0.0 && used <= 1.05, "{source} used {used} of the rate limit");
        let rejected = s["rejected_requests"].as_u64().unwrap_or_else(|| panic!("{source}.rejected_requests: {}", s["rejected_requests"]));
        assert!(rejected < 1000, "{source} rejected {rejected}");
        let landing = &s["landing"];
        for key in ["wasm_s", "native_s", "floor_s"] {
            assert!(number(&landing[key], key) > 0.0, "{source}.landing.{key}");
        }
    }
}
