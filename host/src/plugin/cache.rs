//! The compiled-plugin cache: where it lives, who may write it, and the
//! keyed digest that every artifact must carry before its native code runs.
//!
//! Compiling a plugin costs far more than loading its compiled form, so the
//! host keeps each compiled component. Loading one runs native code, so an
//! artifact is only as trustworthy as the folder it is in: the cache lives in
//! the syncing user's own cache directory (`$XDG_CACHE_HOME/cross-domain-sync`
//! or the platform's equivalent, shared by all of that user's data folders),
//! not in a data folder that others may be able to write. The folder is made
//! owner-only, and a folder owned by someone else, or writable by others, is
//! not used at all (plugins are then compiled for each run).
//!
//! Each artifact file is `HMAC-SHA256(key, name ‖ artifact) ‖ artifact`, with
//! a random key kept owner-only in the cache folder and the name binding the
//! artifact to the source digest and engine it was compiled for. An artifact
//! whose digest does not check (altered, truncated, or copied from another
//! entry) is refused and compiled again.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::io::Write as _;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

type HmacSha256 = Hmac<Sha256>;

/// Bytes of the keyed digest in front of each artifact.
const MAC_LEN: usize = 32;

/// The user's cache folder for compiled plugins: `$CDS_CACHE_DIR` is handled
/// by the caller; this is the platform's per-user cache directory.
pub fn default_dir() -> Option<PathBuf> {
    dirs::cache_dir().map(|d| d.join("cross-domain-sync"))
}

/// A cache folder ready for use: owned by this user, owner-only, with its key.
#[derive(Clone)]
pub struct Cache {
    dir: PathBuf,
    key: [u8; 32],
}

impl Cache {
    /// Opens (creating if need be) the cache folder `dir`. `Err` says why it
    /// cannot be used; the host then compiles without a cache.
    pub fn open(dir: &Path) -> Result<Cache, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create it: {e}"))?;
        let meta = std::fs::metadata(dir).map_err(|e| e.to_string())?;
        // SAFETY: geteuid has no preconditions and cannot fail.
        let me = unsafe { libc::geteuid() };
        if meta.uid() != me {
            return Err(format!(
                "it belongs to uid {}, not to this user (uid {me}); another user could put \
                 native code there",
                meta.uid()
            ));
        }
        if meta.mode() & 0o077 != 0 {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| format!("cannot make it owner-only: {e}"))?;
        }
        let key = load_key(&dir.join("key"))?;
        Ok(Cache {
            dir: dir.to_path_buf(),
            key,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The path of the entry `name`.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn mac(&self, name: &str, artifact: &[u8]) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(name.as_bytes());
        mac.update(&[0]);
        mac.update(artifact);
        mac
    }

    /// The artifact of entry `name`, if it is there and its digest checks.
    /// `Err` names what is wrong with an entry that is there.
    pub fn get(&self, name: &str) -> Result<Option<Vec<u8>>, String> {
        let mut bytes = match std::fs::read(self.path(name)) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("cannot be read: {e}")),
        };
        if bytes.len() < MAC_LEN {
            return Err("failed its integrity check (too short)".into());
        }
        let artifact = bytes.split_off(MAC_LEN);
        self.mac(name, &artifact)
            .verify_slice(&bytes)
            .map_err(|_| "failed its integrity check (its keyed digest does not match)")?;
        Ok(Some(artifact))
    }

    /// Stores `artifact` as entry `name`, atomically.
    pub fn put(&self, name: &str, artifact: &[u8]) -> crate::error::Result<()> {
        let tag = self.mac(name, artifact).finalize().into_bytes();
        let mut bytes = Vec::with_capacity(MAC_LEN + artifact.len());
        bytes.extend_from_slice(&tag);
        bytes.extend_from_slice(artifact);
        crate::store::atomic_write(&self.path(name), &bytes)
    }
}

/// Reads the cache's key, or makes one (owner-only) when there is none or it
/// is damaged. A key others could read would let them forge artifacts.
fn load_key(path: &Path) -> Result<[u8; 32], String> {
    if let Ok(meta) = std::fs::metadata(path) {
        if meta.mode() & 0o077 != 0 {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                .map_err(|e| format!("cannot make its key owner-only: {e}"))?;
        }
        if let Ok(bytes) = std::fs::read(path)
            && let Ok(key) = <[u8; 32]>::try_from(bytes.as_slice())
        {
            return Ok(key);
        }
    }
    // A damaged key: its artifacts can no longer be checked; start anew.
    let _ = std::fs::remove_file(path);
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).map_err(|e| format!("no randomness for its key: {e}"))?;
    // Written beside, then linked into place, which fails if another process
    // linked its key first: then that key is the one, and both use it.
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(&key)?;
        f.sync_all()
    };
    let written = write();
    let linked = written.and_then(|()| std::fs::hard_link(&tmp, path));
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(key),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => std::fs::read(path)
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
            .ok_or_else(|| "its key is damaged".to_string()),
        Err(e) => Err(format!("cannot write its key: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_checks_only_under_its_own_name_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(&dir.path().join("c")).unwrap();
        cache.put("a.cwasm", b"artifact a").unwrap();
        cache.put("b.cwasm", b"artifact b").unwrap();
        assert_eq!(cache.get("a.cwasm").unwrap().unwrap(), b"artifact a");
        assert_eq!(cache.get("none.cwasm").unwrap(), None);
        // Copied under another name: refused.
        std::fs::copy(cache.path("b.cwasm"), cache.path("a.cwasm")).unwrap();
        assert!(cache.get("a.cwasm").unwrap_err().contains("integrity"));
        // One bit changed: refused.
        let mut bytes = std::fs::read(cache.path("b.cwasm")).unwrap();
        *bytes.last_mut().unwrap() ^= 1;
        std::fs::write(cache.path("b.cwasm"), bytes).unwrap();
        assert!(cache.get("b.cwasm").is_err());
        // The same folder opened again keeps its key.
        cache.put("a.cwasm", b"artifact a").unwrap();
        let again = Cache::open(cache.dir()).unwrap();
        assert_eq!(again.get("a.cwasm").unwrap().unwrap(), b"artifact a");
        let mode = std::fs::metadata(cache.dir()).unwrap().mode();
        assert_eq!(mode & 0o077, 0);
        let key_mode = std::fs::metadata(cache.dir().join("key")).unwrap().mode();
        assert_eq!(key_mode & 0o077, 0);
    }

    #[test]
    fn a_folder_others_may_write_is_made_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let c = dir.path().join("c");
        std::fs::create_dir(&c).unwrap();
        std::fs::set_permissions(&c, std::fs::Permissions::from_mode(0o777)).unwrap();
        Cache::open(&c).unwrap();
        assert_eq!(std::fs::metadata(&c).unwrap().mode() & 0o777, 0o700);
    }
}
