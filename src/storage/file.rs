//! The `file://` backend: objects as files under one directory.
//!
//! A put writes to a temporary file in `<root>/.strata-tmp/`, syncs it, renames it into
//! place and syncs the directory, so readers never see a half-written object and a crash leaves at most a stray
//! temporary file, never a truncated object.

use std::io::{self, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use bytes::BytesMut;
use futures_util::StreamExt;
use tokio::fs;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use tokio_util::io::ReaderStream;

use super::{ByteRange, ByteStream, ContentHasher, Digest, Listed, Result, StorageError};

/// Directory under the root for in-progress writes; keys may not start with it.
const TMP_DIR: &str = ".strata-tmp";
/// Read and write granularity.
const CHUNK: usize = 1024 * 1024;

/// A tier kept in a local or mounted directory.
#[derive(Debug, Clone)]
pub struct FileStore {
    root: PathBuf,
}

impl FileStore {
    /// Uses directory `root`, creating it if needed.
    pub async fn open(root: &Path) -> Result<FileStore> {
        let store = FileStore { root: root.into() };
        fs::create_dir_all(root.join(TMP_DIR))
            .await
            .map_err(|e| store.error("creating the tier directory", e))?;
        Ok(store)
    }

    /// The directory holding the objects.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, key: &str) -> Result<PathBuf> {
        if key == TMP_DIR || key.starts_with(&format!("{TMP_DIR}/")) {
            return Err(StorageError::InvalidKey {
                key: key.into(),
                reason: "reserved for temporary files",
            });
        }
        Ok(self.root.join(key))
    }

    fn error(&self, doing: &str, e: io::Error) -> StorageError {
        StorageError::Backend {
            backend: format!("file://{}", self.root.display()),
            message: format!("{doing}: {e}"),
        }
    }

    fn not_found_or(&self, key: &str, doing: &str, e: io::Error) -> StorageError {
        if e.kind() == io::ErrorKind::NotFound {
            StorageError::NotFound { key: key.into() }
        } else {
            self.error(doing, e)
        }
    }

    pub(super) async fn put(&self, key: &str, mut body: impl AsyncRead + Unpin) -> Result<Digest> {
        let target = self.path(key)?;
        let tmp = self
            .root
            .join(TMP_DIR)
            .join(uuid::Uuid::now_v7().to_string());
        // Removes the temporary file unless the rename happened, also when this future
        // is dropped part-way (a cancelled move).
        let mut guard = RemoveOnDrop {
            path: tmp.clone(),
            armed: true,
        };
        let mut file = fs::File::create(&tmp)
            .await
            .map_err(|e| self.error("creating a temporary file", e))?;
        let mut hasher = ContentHasher::new();
        let mut buf = BytesMut::with_capacity(CHUNK);
        loop {
            buf.clear();
            if body.read_buf(&mut buf).await.map_err(StorageError::Body)? == 0 {
                break;
            }
            hasher.update(&buf);
            file.write_all(&buf)
                .await
                .map_err(|e| self.error("writing", e))?;
        }
        file.sync_all()
            .await
            .map_err(|e| self.error("syncing", e))?;
        if let Some(dir) = target.parent() {
            fs::create_dir_all(dir)
                .await
                .map_err(|e| self.error("creating directories", e))?;
        }
        fs::rename(&tmp, &target)
            .await
            .map_err(|e| self.error("renaming into place", e))?;
        guard.armed = false;
        // The rename is durable only once the directory that records it is synced.
        if let Some(dir) = target.parent() {
            let dir = fs::File::open(dir)
                .await
                .map_err(|e| self.error("opening the directory", e))?;
            dir.sync_all()
                .await
                .map_err(|e| self.error("syncing the directory", e))?;
        }
        Ok(hasher.finish())
    }

    pub(super) async fn get(&self, key: &str, range: Option<ByteRange>) -> Result<ByteStream> {
        let path = self.path(key)?;
        let mut file = fs::File::open(&path)
            .await
            .map_err(|e| self.not_found_or(key, "opening", e))?;
        let Some(range) = range else {
            return Ok(ReaderStream::with_capacity(file, CHUNK).boxed());
        };
        let size = file
            .metadata()
            .await
            .map_err(|e| self.error("reading metadata", e))?
            .len();
        let (offset, len) = range.resolve(size)?;
        file.seek(SeekFrom::Start(offset))
            .await
            .map_err(|e| self.error("seeking", e))?;
        Ok(ReaderStream::with_capacity(file.take(len), CHUNK).boxed())
    }

    pub(super) async fn probe(&self) -> Result<()> {
        let meta = fs::metadata(&self.root)
            .await
            .map_err(|e| self.error("reading the tier's directory", e))?;
        if !meta.is_dir() {
            return Err(self.error(
                "reading the tier's directory",
                io::Error::other("not a directory"),
            ));
        }
        Ok(())
    }

    pub(super) async fn size(&self, key: &str) -> Result<u64> {
        let meta = fs::metadata(self.path(key)?)
            .await
            .map_err(|e| self.not_found_or(key, "reading metadata", e))?;
        if !meta.is_file() {
            return Err(StorageError::NotFound { key: key.into() });
        }
        Ok(meta.len())
    }

    pub(super) async fn list(&self) -> Result<Vec<Listed>> {
        let mut listed = Vec::new();
        let mut dirs = vec![self.root.clone()];
        while let Some(dir) = dirs.pop() {
            let mut entries = fs::read_dir(&dir)
                .await
                .map_err(|e| self.error("listing", e))?;
            while let Some(entry) = entries
                .next_entry()
                .await
                .map_err(|e| self.error("listing", e))?
            {
                let path = entry.path();
                let meta = entry
                    .metadata()
                    .await
                    .map_err(|e| self.error("reading metadata", e))?;
                if meta.is_dir() {
                    if path != self.root.join(TMP_DIR) {
                        dirs.push(path);
                    }
                    continue;
                }
                let Ok(key) = path.strip_prefix(&self.root) else {
                    continue;
                };
                listed.push(Listed {
                    key: key.to_string_lossy().into_owned(),
                    size: meta.len(),
                    modified: meta
                        .modified()
                        .map_err(|e| self.error("reading metadata", e))?,
                });
            }
        }
        Ok(listed)
    }

    /// Removes temporary files last written before `before`: a put writes its file
    /// without pausing for long, so an old one belongs to a write that died.
    pub(super) async fn sweep(&self, before: SystemTime) -> Result<u64> {
        let mut removed = 0;
        let mut entries = fs::read_dir(self.root.join(TMP_DIR))
            .await
            .map_err(|e| self.error("listing temporary files", e))?;
        while let Some(entry) = entries
            .next_entry()
            .await
            .map_err(|e| self.error("listing temporary files", e))?
        {
            let modified = entry.metadata().await.and_then(|m| m.modified());
            if modified.is_ok_and(|at| at < before) {
                match fs::remove_file(entry.path()).await {
                    Ok(()) => removed += 1,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(self.error("removing a temporary file", e)),
                }
            }
        }
        Ok(removed)
    }

    pub(super) async fn delete(&self, key: &str) -> Result<()> {
        match fs::remove_file(self.path(key)?).await {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(self.error("deleting", e)),
            _ => Ok(()),
        }
    }
}

/// Removes a temporary file when dropped while armed.
struct RemoveOnDrop {
    path: PathBuf,
    armed: bool,
}

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if self.armed {
            // Best effort: a leftover lives only in the temporary directory.
            let _ = std::fs::remove_file(&self.path);
        }
    }
}
