//! The Spin app: the manifest checked as Spin loads it, the schedule across
//! clock changes, `dame serve` firing the real component from a manifest,
//! one run at a time, and a run cut by its time budget finishing later.

mod support;

use epc_emulator::Config;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::*;

fn manifest_text() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../spin.toml")).unwrap()
}

/// The project's manifest with another cron expression, in `dir`.
fn fast_manifest(dir: &Path, cron: &str) -> PathBuf {
    let text = manifest_text()
        .lines()
        .map(|l| if l.starts_with("cron_expression") { format!("cron_expression = \"{cron}\"") } else { l.to_string() })
        .collect::<Vec<_>>()
        .join("\n");
    let path = dir.join("spin.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn serve(emu: &Emu, manifest: &Path, landing: &Path, kinds: &str, extra: &[(&str, &str)]) -> Command {
    let mut c = dame();
    c.args(["serve", "--manifest"]).arg(manifest);
    c.env("SPIN_VARIABLE_FORCE", "true")
        .env("SPIN_VARIABLE_API_URL", emu.url())
        .env("SPIN_VARIABLE_KINDS", kinds)
        .env("SPIN_VARIABLE_START_MONTH", "2021-01")
        .env("SPIN_VARIABLE_END_MONTH", "2021-03")
        .env("SPIN_VARIABLE_LANDING", landing)
        .env("SPIN_VARIABLE_WAREHOUSE", "")
        .env("SPIN_VARIABLE_REQUEST_BUDGET", UNLIMITED)
        .env("EPC_TOKEN", TOKEN);
    for (k, v) in extra {
        c.env(k, v);
    }
    c
}

#[test]
fn the_manifest_is_what_spin_loads() {
    let out = run(dame().arg("check"));
    assert!(out.status.success(), "{}", text(&out));
    let dir = tempfile::tempdir().unwrap();
    // A dependency whose component needs what Spin does not provide.
    let broken = manifest_text().replace("load_month_bigquery.wasm", "load_month.wasm");
    std::fs::write(dir.path().join("spin.toml"), broken).unwrap();
    let out = run(dame().args(["check", "--manifest"]).arg(dir.path().join("spin.toml")));
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("component.pipeline.dependencies.\"dame:epc/load\"") && text(&out).contains("dame:epc/warehouse"), "{}", text(&out));
    // A bad cron expression and an unknown variable, named by file and key.
    let bad = manifest_text().replace("cron_expression = \"0 0 7,8 * * *\"", "cron_expression = \"0 7 * * *\"");
    std::fs::write(dir.path().join("spin.toml"), bad).unwrap();
    let out = run(dame().args(["check", "--manifest"]).arg(dir.path().join("spin.toml")));
    assert!(text(&out).contains("trigger.cron[0].cron_expression"), "{}", text(&out));
    let bad = manifest_text().replace("kinds = \"{{ kinds }}\"", "kinds = \"{{ kindz }}\"");
    std::fs::write(dir.path().join("spin.toml"), bad).unwrap();
    let out = run(dame().args(["check", "--manifest"]).arg(dir.path().join("spin.toml")));
    assert!(text(&out).contains("component.pipeline.variables.kinds") && text(&out).contains("kindz"), "{}", text(&out));
    // A credential Spin would show, and dependencies without the parent's
    // configuration (no credentials, no landing).
    let bad = manifest_text()
        .replace("epc_token = { default = \"\", secret = true }", "epc_token = { default = \"\" }")
        .replace("dependencies_inherit_configuration = true", "dependencies_inherit_configuration = false");
    std::fs::write(dir.path().join("spin.toml"), bad).unwrap();
    let out = run(dame().args(["check", "--manifest"]).arg(dir.path().join("spin.toml")));
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("variables.epc_token: a credential must be `secret = true`"), "{}", text(&out));
    assert!(text(&out).contains("component.pipeline.dependencies_inherit_configuration"), "{}", text(&out));
}

#[test]
fn the_schedule_is_eight_in_london_on_both_sides_of_the_clock_change() {
    let out = run(dame().args(["schedule", "--next", "3", "--after", "2026-03-28T00:00:00Z"]));
    assert!(out.status.success());
    let lines: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().skip(1).map(str::to_string).collect();
    assert_eq!(lines.len(), 3);
    assert!(lines[0].starts_with("2026-03-28 08:00 UTC") && lines[0].contains("08:00 GMT"), "{lines:?}");
    assert!(lines[1].starts_with("2026-03-29 07:00 UTC") && lines[1].contains("08:00 BST"), "{lines:?}");
    assert!(lines[2].starts_with("2026-03-30 07:00 UTC"), "{lines:?}");
}

#[test]
fn serve_fires_the_component_from_the_manifest() {
    let emu = Emu::samples();
    let dir = tempfile::tempdir().unwrap();
    let manifest = fast_manifest(dir.path(), "*/1 * * * * *");
    let landing = dir.path().join("data");
    let out = run(serve(&emu, &manifest, &landing, "display", &[]).args(["--ticks", "1"]));
    assert!(out.status.success(), "{}", text(&out));
    let st = status(&landing);
    assert_eq!(st["display"]["2021-02"], ("landed".to_string(), 16, 1));
    assert!(dir.path().join("data/state/_runs").exists(), "the day's run is recorded");
}

#[test]
fn a_second_run_finds_the_lease_held_and_stops_at_once() {
    let emu = Emu::start(Config {
        data: sample_data(),
        token: Some(TOKEN.into()),
        latency: Some(Duration::from_millis(30)),
        ..Config::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let mut first = dame_run(&emu, "gepbd", "domestic", "2021-01", "2021-03", dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !dir.path().join("state/_lease").exists() {
        assert!(start.elapsed() < Duration::from_secs(60), "the first run never took the lease");
        std::thread::sleep(Duration::from_millis(10));
    }
    let started = Instant::now();
    let out = run(&mut dame_run(&emu, "gepbd", "domestic", "2021-01", "2021-03", dir.path()));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("another run holds the lease: dame run on") && text(&out).contains("until"), "{}", text(&out));
    assert!(started.elapsed() < Duration::from_secs(10), "the second run did not stop at once");
    assert!(first.wait().unwrap().success());
    // With the first run done (and its lease released), a third runs at once.
    let out = run(&mut dame_run(&emu, "gepbd", "domestic", "2021-01", "2021-03", dir.path()));
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn an_expired_lease_is_taken_over_and_logged() {
    let emu = Emu::samples();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("state/_lease")).unwrap();
    std::fs::write(
        dir.path().join("state/_lease/lease-00000007.json"),
        r#"{"number":7,"holder":"a run that crashed","expires_at":"2026-01-01T00:00:00Z"}"#,
    )
    .unwrap();
    let out = run(&mut dame_run(&emu, "gepbd", "display", "2021-01", "2021-01", dir.path()));
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("took over an expired lease held by a run that crashed"), "{}", text(&out));
    assert!(dir.path().join("state/_lease/lease-00000008.json").exists());
}

#[test]
fn a_run_cut_by_its_budget_finishes_at_the_next_tick_with_every_row_once() {
    let emu = Emu::start(Config {
        data: sample_data(),
        token: Some(TOKEN.into()),
        latency: Some(Duration::from_millis(25)),
        ..Config::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let manifest = fast_manifest(dir.path(), "*/1 * * * * *");
    let landing = dir.path().join("data");
    // A one-second budget: each tick lands a little, defers the rest, and
    // records the day unfinished; later ticks continue.
    let out = run(serve(&emu, &manifest, &landing, "domestic", &[("SPIN_VARIABLE_BUDGET_SECONDS", "1")]).args(["--ticks", "1"]));
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("deferred"), "the first tick should run out of budget: {}", text(&out));
    let first = status(&landing);
    assert!(first.get("domestic").is_none_or(|m| m.values().any(|(s, _, _)| s != "landed") || m.len() < 3), "{first:?}");
    let out = run(serve(&emu, &manifest, &landing, "domestic", &[("SPIN_VARIABLE_BUDGET_SECONDS", "1")]).args(["--ticks", "30"]));
    let st = status(&landing);
    let done = |m: &str| st.get("domestic").and_then(|d| d.get(m)).is_some_and(|(s, _, _)| s == "landed");
    assert!(done("2021-01") && done("2021-02") && done("2021-03"), "{st:?}\n{}", text(&out));
    let mut seen = std::collections::BTreeSet::new();
    for line in landed(&landing, "domestic") {
        assert!(seen.insert(line["certificate_number"].as_str().unwrap().to_string()), "landed twice");
    }
    assert_eq!(seen.len(), 152 + 161 + 259);
}
