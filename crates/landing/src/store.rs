use std::future::Future;

/// Why the store failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The key is not one this store may write (traversal, odd characters).
    #[error("refused object key {0:?}")]
    BadKey(String),
    #[error("{0}")]
    Io(String),
    /// Permission denied, bucket missing, or the like: a person must act.
    #[error("{0}")]
    Denied(String),
}

/// The few operations landing needs from a folder or a bucket. Keys are
/// relative, `/`-separated and validated by the store.
pub trait ObjectStore {
    /// Creates `key` only if it does not exist yet; `Ok(false)` if it did.
    /// Readers never see a partly written object.
    fn put_new(&self, key: &str, bytes: &[u8], content_type: &str) -> impl Future<Output = Result<bool, StoreError>>;

    /// Creates or replaces `key`, atomically for readers.
    fn put(&self, key: &str, bytes: &[u8], content_type: &str) -> impl Future<Output = Result<(), StoreError>>;

    fn get(&self, key: &str) -> impl Future<Output = Result<Option<Vec<u8>>, StoreError>>;

    /// Every key under `prefix` (which ends in `/`), at any depth, sorted.
    fn list(&self, prefix: &str) -> impl Future<Output = Result<Vec<String>, StoreError>>;

    /// `Ok(false)` if there was nothing to delete.
    fn delete(&self, key: &str) -> impl Future<Output = Result<bool, StoreError>>;

    /// Where this store is, for messages: a folder or `gs://bucket`.
    fn describe(&self) -> String;
}

/// Keys are built by the layout from validated parts; this is the second
/// line of defence, so that no key can leave the store's root.
pub(crate) fn check_key(key: &str) -> Result<(), StoreError> {
    let ok = !key.is_empty()
        && key.len() <= 512
        && !key.starts_with('/')
        && key.split('/').all(|seg| !seg.is_empty() && seg != "." && seg != "..")
        && key.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./".contains(&b));
    if ok { Ok(()) } else { Err(StoreError::BadKey(key.to_string())) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_cannot_escape() {
        assert!(check_key("raw/domestic/202101/part-00001.ndjson.gz").is_ok());
        for bad in ["", "/etc/passwd", "raw/../x", "raw//x", "raw/./x", "raw/x y", "raw/x\\y", "raw/é"] {
            assert!(check_key(bad).is_err(), "{bad}");
        }
    }
}
