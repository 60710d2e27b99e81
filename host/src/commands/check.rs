use crate::app::App;
use crate::outbound::AllowList;
use crate::runtime::{component_bytes, matches_interface};
use anyhow::Result;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use wasmtime::component::types::ComponentItem;

#[derive(clap::Args)]
pub struct Args {
    /// The Spin manifest to check (default: the one built in).
    #[arg(long)]
    pub manifest: Option<PathBuf>,
}

/// What a component may import and still load in Spin 4: WASI 0.2
/// (Spin provides 0.2.0 to 0.2.6, and hosts match any 0.2.x by semver),
/// `wasi:config/store` at Spin's draft version, and type-only interfaces.
fn spin_provides(import: &str) -> bool {
    let spin_wasi = ["wasi:cli/", "wasi:io/", "wasi:clocks/", "wasi:random/", "wasi:filesystem/", "wasi:http/", "wasi:sockets/"];
    (spin_wasi.iter().any(|p| import.starts_with(p)) && import.contains("@0.2."))
        || import == "wasi:config/store@0.2.0-draft-2024-09-27"
}

/// Checks the manifest as Spin would load it: every component's source and
/// dependencies are there, each dependency exports what it is named for
/// and the component imports it, every import left over is one Spin
/// provides, triggers name components that export the cron handler, and
/// allowed hosts parse. Problems are listed with the file and key.
pub async fn main(a: Args) -> Result<ExitCode> {
    let app = App::new(a.manifest.as_deref())?;
    let m = &app.manifest;
    let engine = app.runtime.engine();
    let mut problems = Vec::new();
    let mut checked = 0;
    for (id, def) in &m.component {
        let at = |key: &str| format!("{}: component.{id}{key}", m.file);
        let source = m.dir.join(&def.source);
        let root = match component_bytes(&source).and_then(|b| app.runtime.load(id, &b)) {
            Ok(c) => c,
            Err(e) => {
                problems.push(format!("{}.source: {e:#}", at("")));
                continue;
            }
        };
        let imports: BTreeMap<String, ComponentItem> =
            root.component_type().imports(engine).map(|(n, i)| (n.to_string(), i.ty)).collect();
        let type_only = |item: &ComponentItem| match item {
            ComponentItem::ComponentInstance(t) => t.exports(engine).all(|(_, e)| matches!(e.ty, ComponentItem::Type(_))),
            _ => false,
        };
        let mut served = Vec::new();
        for (dep, d) in &def.dependencies {
            let key = format!(".dependencies.\"{dep}\"");
            let Some((import, _)) = imports.iter().find(|(n, _)| matches_interface(dep, n)) else {
                problems.push(format!("{}: the component imports no {dep}", at(&key)));
                continue;
            };
            served.push(import.clone());
            let path = m.dir.join(&d.path);
            let provider = match component_bytes(&path).and_then(|b| app.runtime.load(dep, &b)) {
                Ok(c) => c,
                Err(e) => {
                    problems.push(format!("{}.path: {e:#}", at(&key)));
                    continue;
                }
            };
            let ty = provider.component_type();
            if !ty.exports(engine).any(|(n, _)| n == import) {
                problems.push(format!("{}: {} does not export {import}", at(&key), d.path));
            }
            // Spin plugs one level: what the dependency imports goes to Spin.
            for (n, item) in ty.imports(engine) {
                if !spin_provides(n) && !type_only(&item.ty) {
                    problems.push(format!("{}: {} imports {n}, which Spin does not provide", at(&key), d.path));
                }
            }
        }
        for (n, item) in &imports {
            if !served.contains(n) && !spin_provides(n) && !type_only(item) {
                problems.push(format!("{}: imports {n}, which no dependency and not Spin provides", at("")));
            }
        }
        // Spin gives dependencies no configuration of their own: without
        // inheriting the parent's, fetch-page has no credentials and
        // gzip-land no landing.
        if !def.dependencies.is_empty() && !def.dependencies_inherit_configuration {
            problems.push(format!(
                "{}.dependencies_inherit_configuration: the dependencies read this component's configuration (credentials, landing): set it to true",
                at("")
            ));
        }
        if def.build.as_ref().is_none_or(|b| b.command.trim().is_empty()) {
            problems.push(format!("{}.build.command: missing, so `spin build` cannot build this component", at("")));
        }
        let values = BTreeMap::new();
        match m.resolve(id, &values) {
            Ok(r) => {
                if let Err(e) = AllowList::parse(&r.allowed_outbound_hosts) {
                    problems.push(format!("{}.allowed_outbound_hosts: {e:#}", at("")));
                }
                // A credential not marked secret is shown by Spin's tooling
                // and may be logged: tokens and API keys must be secrets.
                for name in m.variables.keys().filter(|n| n.ends_with("token") || n.ends_with("api_key")) {
                    if !r.secrets.contains(name) {
                        problems.push(format!("{}: variables.{name}: a credential must be `secret = true`", m.file));
                    }
                }
            }
            Err(e) => problems.push(format!("{e:#}")),
        }
        for (i, _) in m.trigger.cron.iter().enumerate().filter(|(_, t)| &t.component == id) {
            if !root.component_type().exports(engine).any(|(n, _)| n == "handle-cron-event") {
                problems.push(format!("{}: trigger.cron[{i}]: component {id} does not export handle-cron-event", m.file));
            }
        }
        checked += 1;
    }
    problems.sort();
    problems.dedup();
    if problems.is_empty() {
        println!(
            "{}: application {}: {} component(s), their dependencies, imports, hosts, builds, secrets and triggers are as Spin needs",
            m.file, m.application.name, checked
        );
        Ok(ExitCode::SUCCESS)
    } else {
        for p in &problems {
            eprintln!("{p}");
        }
        eprintln!("dame: {} problem(s) in {}", problems.len(), m.file);
        Ok(ExitCode::from(1))
    }
}
