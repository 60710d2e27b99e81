use crate::store::{ObjectStore, StoreError, check_key};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A local folder as an object store. Inside a component the folder is the
/// directory the host preopened; natively it is any path.
///
/// Objects are written to a temporary file and then linked (create-only) or
/// renamed (replace) into place, so a reader or a crash never leaves a half
/// object under its real name.
pub struct FsStore {
    root: PathBuf,
    /// Makes temporary names unique across writers sharing the folder
    /// (there is no process id inside a component).
    nonce: u64,
    counter: AtomicU64,
    /// Folders this store has made or found, so a month's hundreds of parts
    /// do not each walk `create_dir_all` up the path again (inside a
    /// component, every step of it is a host call).
    made: std::sync::Mutex<std::collections::HashSet<PathBuf>>,
}

impl FsStore {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        use std::hash::{BuildHasher, Hasher};
        let nonce = std::collections::hash_map::RandomState::new().build_hasher().finish();
        Self { root: root.into(), nonce, counter: AtomicU64::new(0), made: Default::default() }
    }

    fn path(&self, key: &str) -> Result<PathBuf, StoreError> {
        check_key(key)?;
        Ok(self.root.join(key))
    }

    /// Writes `bytes` to a fresh temporary file beside `path`, flushed to disk.
    fn write_temp(&self, path: &Path, bytes: &[u8]) -> Result<PathBuf, StoreError> {
        let dir = path.parent().expect("keys have a folder");
        let mut made = self.made.lock().unwrap_or_else(|e| e.into_inner());
        if !made.contains(dir) {
            std::fs::create_dir_all(dir).map_err(|e| io("creating", dir, e))?;
            made.insert(dir.to_path_buf());
        }
        drop(made);
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("object");
        let tmp = dir.join(format!(".{name}.tmp-{:016x}-{n}", self.nonce));
        let mut f = match std::fs::File::create(&tmp) {
            // The folder went away since it was made (removed by hand).
            Err(e) if e.kind() == ErrorKind::NotFound => {
                std::fs::create_dir_all(dir).map_err(|e| io("creating", dir, e))?;
                std::fs::File::create(&tmp)
            }
            other => other,
        }
        .map_err(|e| io("creating", &tmp, e))?;
        f.write_all(bytes).map_err(|e| io("writing", &tmp, e))?;
        f.sync_all().map_err(|e| io("syncing", &tmp, e))?;
        Ok(tmp)
    }
}

fn io(what: &str, path: &Path, e: std::io::Error) -> StoreError {
    match e.kind() {
        ErrorKind::PermissionDenied | ErrorKind::ReadOnlyFilesystem => StoreError::Denied(format!(
            "{what} {}: {e}; check that the landing folder is writable",
            path.display()
        )),
        _ => StoreError::Io(format!("{what} {}: {e}", path.display())),
    }
}

impl ObjectStore for FsStore {
    async fn put_new(&self, key: &str, bytes: &[u8], _content_type: &str) -> Result<bool, StoreError> {
        let path = self.path(key)?;
        let tmp = self.write_temp(&path, bytes)?;
        // A hard link is the create-if-absent that the filesystem makes
        // atomic: it fails if the name exists, and the name appears with the
        // whole content or not at all.
        let linked = std::fs::hard_link(&tmp, &path);
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(io("linking", &path, e)),
        }
    }

    async fn put(&self, key: &str, bytes: &[u8], _content_type: &str) -> Result<(), StoreError> {
        let path = self.path(key)?;
        let tmp = self.write_temp(&path, bytes)?;
        std::fs::rename(&tmp, &path).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            io("renaming", &path, e)
        })
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let path = self.path(key)?;
        match std::fs::read(&path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io("reading", &path, e)),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let dir_key = prefix.trim_end_matches('/');
        let dir = if dir_key.is_empty() { self.root.clone() } else { self.path(dir_key)? };
        let mut out = Vec::new();
        let mut stack = vec![(dir, dir_key.to_string())];
        while let Some((dir, key)) = stack.pop() {
            let entries = match std::fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(io("listing", &dir, e)),
            };
            for entry in entries {
                let entry = entry.map_err(|e| io("listing", &dir, e))?;
                let name = entry.file_name().to_string_lossy().into_owned();
                let child = if key.is_empty() { name } else { format!("{key}/{name}") };
                let ty = entry.file_type().map_err(|e| io("listing", &entry.path(), e))?;
                if ty.is_dir() {
                    stack.push((entry.path(), child));
                } else {
                    out.push(child);
                }
            }
        }
        out.sort();
        Ok(out)
    }

    async fn delete(&self, key: &str) -> Result<bool, StoreError> {
        // Temporary files left by a killed run are deleted through here too;
        // their names start with a dot, which keys otherwise never do.
        let path = self.root.join(key);
        if key.split('/').any(|s| s.is_empty() || s == "..") {
            return Err(StoreError::BadKey(key.to_string()));
        }
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io("deleting", &path, e)),
        }
    }

    fn describe(&self) -> String {
        format!("folder {}", self.root.display())
    }
}
