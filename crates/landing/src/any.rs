use crate::{FsStore, GcsStore, ObjectStore, StoreError};
use http_client::Transport;

/// The store a deployment names: a folder or a bucket, decided at run time
/// from configuration, so the component that lands pages stays one build.
// One value per component instance: the size difference costs nothing.
#[allow(clippy::large_enum_variant)]
pub enum AnyStore<T> {
    Folder(FsStore),
    Gcs(GcsStore<T>),
}

impl<T: Transport> ObjectStore for AnyStore<T> {
    async fn put_new(&self, key: &str, bytes: &[u8], content_type: &str) -> Result<bool, StoreError> {
        match self {
            AnyStore::Folder(s) => s.put_new(key, bytes, content_type).await,
            AnyStore::Gcs(s) => s.put_new(key, bytes, content_type).await,
        }
    }

    async fn put(&self, key: &str, bytes: &[u8], content_type: &str) -> Result<(), StoreError> {
        match self {
            AnyStore::Folder(s) => s.put(key, bytes, content_type).await,
            AnyStore::Gcs(s) => s.put(key, bytes, content_type).await,
        }
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match self {
            AnyStore::Folder(s) => s.get(key).await,
            AnyStore::Gcs(s) => s.get(key).await,
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        match self {
            AnyStore::Folder(s) => s.list(prefix).await,
            AnyStore::Gcs(s) => s.list(prefix).await,
        }
    }

    async fn delete(&self, key: &str) -> Result<bool, StoreError> {
        match self {
            AnyStore::Folder(s) => s.delete(key).await,
            AnyStore::Gcs(s) => s.delete(key).await,
        }
    }

    fn describe(&self) -> String {
        match self {
            AnyStore::Folder(s) => s.describe(),
            AnyStore::Gcs(s) => s.describe(),
        }
    }
}
