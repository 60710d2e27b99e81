//! Runs the components: one wasmtime engine, one store per component
//! instance, and the composition Spin does with component dependencies —
//! a component's import of `dame:epc/fetch-page` is served by the instance
//! of the component the manifest names for it.
//!
//! Each instance gets its own WASI context, so capabilities stay explicit:
//! the configuration values, the folders granted and the hosts it may reach
//! are decided per instance by the caller (dependencies inherit their
//! parent's, as `dependencies_inherit_configuration` says in Spin).

use crate::config_store;
use crate::outbound::{AllowList, Outbound};
use anyhow::{Context, Result, anyhow, bail};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::Mutex;
use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, Instance, Linker, ResourceTable};
use wasmtime::{Config, Engine, Store};
use wasmtime_wasi::cli::StdoutStream;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// `.context()` for wasmtime's own error type, giving an `anyhow` error.
pub trait WasmtimeContext<T> {
    fn ctx(self, context: impl std::fmt::Display + Send + Sync + 'static) -> Result<T>;
}

impl<T> WasmtimeContext<T> for std::result::Result<T, wasmtime::Error> {
    fn ctx(self, context: impl std::fmt::Display + Send + Sync + 'static) -> Result<T> {
        self.map_err(anyhow::Error::from).context(context)
    }
}

/// What an instance is allowed: its configuration, the hosts it may reach,
/// the folders it may use, the warehouse the host gives it.
#[derive(Clone, Default)]
pub struct Capabilities {
    /// `wasi:config/store` values.
    pub config: BTreeMap<String, String>,
    pub allowed_hosts: AllowList,
    /// Host folder → path the component sees.
    pub preopens: Vec<(PathBuf, String)>,
    /// Served to imports of `dame:epc/warehouse` marked [`Provider::Host`].
    pub warehouse: Option<Arc<dyn crate::warehouse::Backend>>,
    /// Faults injected into requests to the cloud APIs (`DAME_HOST_FAULTS`).
    pub faults: Option<Arc<crate::outbound::Faults>>,
    /// When set, the time spent in each call across a component boundary
    /// the host mediates (`dame bench`).
    pub call_times: Option<Arc<CallTimes>>,
}

/// Calls from one component into another, by `interface.function`: how
/// many, and the time from the call to its return (lowering the arguments
/// into the callee, running it, lifting its results).
#[derive(Debug, Default)]
pub struct CallTimes(std::sync::Mutex<BTreeMap<String, (u64, std::time::Duration)>>);

impl CallTimes {
    fn record(&self, label: &str, took: std::time::Duration) {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let e = m.entry(label.to_string()).or_default();
        e.0 += 1;
        e.1 += took;
    }

    /// (calls, total time) by `interface.function`.
    pub fn snapshot(&self) -> BTreeMap<String, (u64, std::time::Duration)> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// What serves one import of a component.
pub enum Provider {
    /// An instance of another component, itself with providers.
    Component { name: String, component: Component, deps: Vec<(String, Provider)> },
    /// The host's own implementation (the DuckDB warehouse).
    Host,
}

/// Per-instance state.
pub struct State {
    ctx: WasiCtx,
    table: ResourceTable,
    http: WasiHttpCtx,
    outbound: Outbound,
    pub(crate) config: Arc<BTreeMap<String, String>>,
    pub(crate) warehouse: Option<Arc<dyn crate::warehouse::Backend>>,
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.ctx, table: &mut self.table }
    }
}

impl WasiHttpView for State {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView { ctx: &mut self.http, table: &mut self.table, hooks: &mut self.outbound }
    }
}

pub struct Runtime {
    engine: Engine,
    cache: Option<PathBuf>,
}

impl Runtime {
    pub fn new() -> Result<Self> {
        let mut config = Config::new();
        config.wasm_component_model(true);
        let engine = Engine::new(&config)?;
        let cache = std::env::var_os("DAME_CACHE_DIR")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("dame")))
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/dame")))
            .map(|d| d.join("components"));
        Ok(Self { engine, cache })
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// [`Runtime::load`] for a component file named by the manifest (or
    /// its copy embedded in this binary), without reading or hashing its
    /// bytes when the cache already knows them.
    ///
    /// Hashing the six components' 4.6 MB (and, for embedded ones, first
    /// copying them out of the binary) was most of a warm start: `dame
    /// bench` measured 11–17 ms to instantiate the composition, of which
    /// the SHA-256 and the copy's page faults took over half. The cache now
    /// also keeps, per source, a small index file: the source's identity
    /// (the file's path, size and modification time, or for an embedded
    /// component this executable's) → the content key. A source whose
    /// identity changes is hashed again.
    pub fn load_path(&self, name: &str, path: &Path) -> Result<Component> {
        // The engine's settings are part of the identity, as they are of
        // the key: another build's index never points this one at code it
        // cannot run.
        let identity = source_identity(path).map(|id| {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            self.engine.precompile_compatibility_hash().hash(&mut h);
            format!("{id} engine {:016x}", h.finish())
        });
        let index = match (&self.cache, &identity) {
            (Some(dir), Some(id)) => {
                use std::hash::{Hash, Hasher};
                let mut h = std::collections::hash_map::DefaultHasher::new();
                id.hash(&mut h);
                Some(dir.join(format!("{name}-{:016x}.key", h.finish())))
            }
            _ => None,
        };
        if let (Some(dir), Some(index)) = (&self.cache, &index) {
            if let Ok(text) = std::fs::read_to_string(index) {
                // The index holds the identity it was written for, then the key.
                if let Some((id, key)) = text.split_once('\n') {
                    let compiled = dir.join(format!("{name}-{}.cwasm", key.trim()));
                    if Some(id) == identity.as_deref() && compiled.exists() {
                        // Safe as in `load`: written by this code, under the
                        // key of the bytes it compiled; wasmtime checks the
                        // engine.
                        if let Ok(c) = unsafe { Component::deserialize_file(&self.engine, &compiled) } {
                            return Ok(c);
                        }
                    }
                }
            }
        }
        let wasm = component_bytes(path)?;
        let key = self.key(&wasm);
        let component = self.load_keyed(name, &key, &wasm)?;
        if let (Some(index), Some(id)) = (&index, &identity) {
            let tmp = index.with_extension(format!("{}.tmp", std::process::id()));
            if std::fs::write(&tmp, format!("{id}\n{key}")).is_ok() {
                let _ = std::fs::rename(&tmp, index);
            }
        }
        Ok(component)
    }

    /// The cache key of a component's bytes under this engine.
    fn key(&self, wasm: &[u8]) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(wasm);
        h.update(env!("CARGO_PKG_VERSION"));
        {
            use std::hash::{Hash, Hasher};
            let mut engine_hash = std::collections::hash_map::DefaultHasher::new();
            self.engine.precompile_compatibility_hash().hash(&mut engine_hash);
            h.update(engine_hash.finish().to_le_bytes());
        }
        h.finalize().iter().take(16).map(|b| format!("{b:02x}")).collect()
    }

    /// Compiles a component, or loads its compiled form from the cache
    /// (`~/.cache/dame/components`): compiling takes seconds, loading
    /// milliseconds. The key covers the bytes and the engine's settings.
    pub fn load(&self, name: &str, wasm: &[u8]) -> Result<Component> {
        let key = self.key(wasm);
        self.load_keyed(name, &key, wasm)
    }

    fn load_keyed(&self, name: &str, key: &str, wasm: &[u8]) -> Result<Component> {
        if let Some(dir) = &self.cache {
            let path = dir.join(format!("{name}-{key}.cwasm"));
            if path.exists() {
                // Safe because the file was written by this same code from
                // bytes it compiled, under a key that names those bytes and
                // this engine; wasmtime also checks the engine matches.
                if let Ok(c) = unsafe { Component::deserialize_file(&self.engine, &path) } {
                    return Ok(c);
                }
            }
            let compiled = self.engine.precompile_component(wasm).ctx(format!("compiling component {name}"))?;
            let tmp = dir.join(format!(".{name}-{key}.{}.tmp", std::process::id()));
            if std::fs::create_dir_all(dir).is_ok() && std::fs::write(&tmp, &compiled).is_ok() {
                let _ = std::fs::rename(&tmp, &path);
            }
            return unsafe { Component::deserialize(&self.engine, &compiled) }.ctx(format!("loading component {name}"));
        }
        Component::new(&self.engine, wasm).ctx(format!("compiling component {name}"))
    }

    fn store(&self, caps: &Capabilities, stderr: Option<Box<dyn StdoutStream>>) -> Result<Store<State>> {
        let mut b = WasiCtx::builder();
        b.inherit_stdout();
        match stderr {
            Some(s) => {
                b.stderr(BoxedStream(s));
            }
            None => {
                b.inherit_stderr();
            }
        }
        // The landing folder's file operations run on the job's own thread
        // rather than a hop to tokio's blocking pool each: a part is a dozen
        // of them (create, write, sync, link, remove, for data and
        // checkpoint), and the job's single thread has nothing else to do
        // while its guest waits for one.
        b.allow_blocking_current_thread(true);
        for (host, guest) in &caps.preopens {
            b.preopened_dir(host, guest, FsPerms::ReadWrite).ctx(format!("granting folder {}", host.display()))?;
        }
        let state = State {
            ctx: b.build(),
            table: ResourceTable::new(),
            http: WasiHttpCtx::new(),
            outbound: Outbound::new(caps.allowed_hosts.clone(), caps.faults.clone()),
            config: Arc::new(caps.config.clone()),
            warehouse: caps.warehouse.clone(),
        };
        Ok(Store::new(&self.engine, state))
    }

    fn linker(&self) -> Result<Linker<State>> {
        let mut linker = Linker::new(&self.engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
        config_store::add_to_linker(&mut linker)?;
        Ok(linker)
    }

    /// Instantiates `component`, serving each import listed in `deps`
    /// (interface name → provider). Providers that are components are
    /// instantiated first, each in its own store, with the same
    /// capabilities (Spin's `dependencies_inherit_configuration`).
    pub async fn instantiate(
        &self,
        component: &Component,
        deps: &[(String, Provider)],
        caps: &Capabilities,
        stderr: Option<Box<dyn StdoutStream>>,
    ) -> Result<(Store<State>, Instance)> {
        let mut linker = self.linker()?;
        let imports: Vec<(String, ComponentItem)> =
            component.component_type().imports(&self.engine).map(|(n, i)| (n.to_string(), i.ty)).collect();
        for (interface, provider) in deps {
            let (import, item) = imports
                .iter()
                .find(|(name, _)| matches_interface(interface, name))
                .ok_or_else(|| anyhow!("dependency '{interface}' matches no import of the component"))?;
            let ComponentItem::ComponentInstance(ty) = item else {
                bail!("import '{import}' is not an interface");
            };
            let (name, dep, dep_deps) = match provider {
                Provider::Host => {
                    if !import.starts_with("dame:epc/warehouse@") {
                        bail!("the host provides only dame:epc/warehouse, not {import}");
                    }
                    // Without a configured warehouse the calls answer
                    // `not-available`; the pipeline makes none then.
                    crate::warehouse::add_to_linker(&mut linker)?;
                    continue;
                }
                Provider::Component { name, component, deps } => (name, component, deps),
            };
            let (dep_store, dep_instance) = Box::pin(self.instantiate(dep, dep_deps, caps, None))
                .await
                .with_context(|| format!("instantiating {name}, which provides {import}"))?;
            let mut dep_store = dep_store;
            let export = dep_instance
                .get_export_index(&mut dep_store, None, import)
                .ok_or_else(|| anyhow!("{name} does not export {import}"))?;
            let dep_store = Arc::new(Mutex::new(dep_store));
            let mut target = linker.instance(import)?;
            let funcs: Vec<String> = ty
                .exports(&self.engine)
                .filter(|(_, e)| matches!(e.ty, ComponentItem::ComponentFunc(_)))
                .map(|(n, _)| n.to_string())
                .collect();
            for func_name in funcs {
                let func = {
                    let mut s = dep_store.lock().await;
                    let idx = dep_instance
                        .get_export_index(&mut *s, Some(&export), &func_name)
                        .ok_or_else(|| anyhow!("{import} has no function {func_name} in {name}"))?;
                    dep_instance
                        .get_func(&mut *s, idx)
                        .ok_or_else(|| anyhow!("{import}#{func_name} is not a function in {name}"))?
                };
                let store = dep_store.clone();
                let times = caps.call_times.clone();
                let short = import.split('@').next().unwrap_or(import);
                let label: Arc<str> = format!("{}.{func_name}", short.rsplit('/').next().unwrap_or(short)).into();
                target.func_new_async(&func_name, move |_parent, _ty, params, results| {
                    let store = store.clone();
                    let (times, label) = (times.clone(), label.clone());
                    Box::new(async move {
                        let started = std::time::Instant::now();
                        let mut s = store.lock().await;
                        let r = func.call_async(&mut *s, params, results).await;
                        if let Some(t) = times {
                            t.record(&label, started.elapsed());
                        }
                        r
                    })
                })?;
            }
        }
        // Interfaces that hold only types (`dame:epc/types`, Spin's
        // `cron-types`) are imported as instances with nothing to provide.
        for (name, item) in &imports {
            if let ComponentItem::ComponentInstance(ty) = item {
                if ty.exports(&self.engine).all(|(_, e)| matches!(e.ty, ComponentItem::Type(_))) {
                    let _ = linker.instance(name);
                }
            }
        }
        let mut store = self.store(caps, stderr)?;
        let instance = linker.instantiate_async(&mut store, component).await.ctx("instantiating the component")?;
        Ok((store, instance))
    }
}

/// Whether a dependency name from the manifest (`dame:epc/fetch-page`,
/// optionally with `@version`) names an import (`dame:epc/fetch-page@0.1.0`).
pub fn matches_interface(dependency: &str, import: &str) -> bool {
    match dependency.split_once('@') {
        Some(_) => dependency == import,
        None => import.split('@').next() == Some(dependency),
    }
}

/// `WasiCtxBuilder::stderr` wants a sized stream.
struct BoxedStream(Box<dyn StdoutStream>);

impl wasmtime_wasi::cli::IsTerminal for BoxedStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for BoxedStream {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        self.0.async_stream()
    }
}

/// Reads a component file given by the manifest, falling back to the copy
/// embedded in this binary when the file has not been built (a fresh clone
/// runs without `spin build`). The embedded copy is borrowed, not copied.
pub fn component_bytes(path: &Path) -> Result<std::borrow::Cow<'static, [u8]>> {
    match std::fs::read(path) {
        Ok(b) => Ok(b.into()),
        Err(_) => {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            crate::components::embedded(name)
                .map(Into::into)
                .ok_or_else(|| anyhow!("component {} is missing: run `spin build` or check the manifest", path.display()))
        }
    }
}

/// What identifies the bytes [`component_bytes`] would return, without
/// reading them: the file's absolute path, size and modification time, or,
/// for the embedded copy, its name and size in this executable (path, size,
/// modification time). `None` when neither can be told.
fn source_identity(path: &Path) -> Option<String> {
    fn stamp(p: &Path) -> Option<String> {
        let m = std::fs::metadata(p).ok()?;
        let t = m.modified().ok()?.duration_since(std::time::UNIX_EPOCH).ok()?;
        Some(format!("{} {} {}.{:09}", p.canonicalize().ok()?.display(), m.len(), t.as_secs(), t.subsec_nanos()))
    }
    if path.is_file() {
        return stamp(path).map(|s| format!("file {s}"));
    }
    let name = path.file_name()?.to_str()?;
    let embedded = crate::components::embedded(name)?;
    let exe = std::env::current_exe().ok()?;
    Some(format!("embedded {name} {} in {}", embedded.len(), stamp(&exe)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dependency_names_match_imports() {
        assert!(matches_interface("dame:epc/fetch-page", "dame:epc/fetch-page@0.1.0"));
        assert!(matches_interface("dame:epc/fetch-page@0.1.0", "dame:epc/fetch-page@0.1.0"));
        assert!(!matches_interface("dame:epc/fetch", "dame:epc/fetch-page@0.1.0"));
    }
}
