//! `wasi:config/store` at the draft version Spin provides
//! (0.2.0-draft-2024-09-27). wasmtime's own crate implements another
//! version, and a component built against one does not link against the
//! other, so the host implements this one from its WIT.

use crate::runtime::State;
use wasmtime::component::{HasSelf, Linker};

mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit/deps/wasi-config",
        world: "wasi:config/imports",
    });
}

use bindings::wasi::config::store::{Error, Host};

impl Host for State {
    fn get(&mut self, key: String) -> Result<Option<String>, Error> {
        Ok(self.config.get(&key).cloned())
    }

    fn get_all(&mut self) -> Result<Vec<(String, String)>, Error> {
        Ok(self.config.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
    }
}

pub fn add_to_linker(linker: &mut Linker<State>) -> wasmtime::Result<()> {
    bindings::wasi::config::store::add_to_linker::<State, HasSelf<State>>(linker, |s| s)
}
