//! Storage: everything the host reads from or writes to disk.
//!
//! - [`atomic_write`]: temporary file in the same folder, fsync, rename, fsync
//!   of the folder (the `tempfile` crate does the first three).
//! - [`DataDir`]: the layout of a data folder (CONTRACT §2), its lock, entity
//!   files, sync state, and the journalled transaction ([`DataDir::commit`])
//!   that writes every file of a sync or none.
//! - Retries with exponential backoff on transient I/O errors.
//!
//! Architecture invariant: a sync's files change only inside
//! [`DataDir::commit`]. Its journal is written before anything is staged; the
//! journal's switch to `committed` is the commit point. [`DataDir::recover`],
//! run by every invocation after taking the lock, rolls a `prepared` journal
//! back and a `committed` one forward, so a kill at any point leaves every
//! domain exactly as before the sync or exactly as after it.

use crate::error::{Code, Error, Result};
use crate::raw::FileBytes;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::fs::{self, File};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Attempts for an I/O operation that fails transiently.
const ATTEMPTS: u32 = 4;
const FIRST_BACKOFF: Duration = Duration::from_millis(20);

fn transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
            | io::ErrorKind::TimedOut
            | io::ErrorKind::ResourceBusy
    ) || crate::faults::is_injected_transient(e)
}

/// Runs `op`, retrying transient failures with exponential backoff.
pub fn retry<T>(mut op: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    let mut wait = FIRST_BACKOFF;
    let mut attempt = 1;
    loop {
        match op() {
            Err(e) if attempt < ATTEMPTS && transient(&e) => {
                tracing::debug!("transient I/O error, retry {attempt} in {wait:?}: {e}");
                std::thread::sleep(wait);
                wait *= 2;
                attempt += 1;
            }
            r => return r,
        }
    }
}

fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn parent_of(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Writes a file's content into a writer; may be called again on a retry.
pub type Encode<'a> = dyn Fn(&mut dyn io::Write) -> io::Result<()> + 'a;

/// A `.cds-tmp-*` file beside `path` holding what `encode` writes, not yet
/// fsync'd: whoever renames it into place makes it durable ([`write_as`],
/// or, for a prestaged one ([`prestage`]), the commit). The content streams
/// through a buffer into the file, so a large file is never held whole in
/// memory.
fn temp_beside(path: &Path, encode: &Encode) -> io::Result<tempfile::NamedTempFile> {
    crate::faults::before_write(path)?;
    let dir = parent_of(path);
    fs::create_dir_all(dir)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".cds-tmp-")
        .tempfile_in(dir)?;
    keep_mode(path, tmp.as_file())?;
    {
        // 64 KiB: few writes for a large file, little fresh memory per
        // writing thread for a small one.
        let mut w = io::BufWriter::with_capacity(1 << 16, tmp.as_file_mut());
        encode(&mut w)?;
        w.flush()?;
    }
    Ok(tmp)
}

/// Gives `tmp`, about to replace `path`, the permission bits `path` has, so
/// that a replaced file stays as readable as its owner made it (a calendar
/// a group or a server reads, say). A new file keeps the temporary file's
/// owner-only mode: what a sync creates holds a person's data. Set-id bits
/// are not carried over.
fn keep_mode(path: &Path, tmp: &File) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    match fs::metadata(path) {
        Ok(meta) => tmp.set_permissions(fs::Permissions::from_mode(
            meta.permissions().mode() & 0o1777,
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Writes `bytes` to `path` atomically: a reader sees the old file or the new
/// one, never a mix, and the new one is on disk when this returns.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<()> {
    write_as(path, bytes, Durable::Now)
}

/// Writes `bytes` to `path` by a temporary file renamed over it, durable as
/// `durable` says (a whole fresh write on a retry, never a second fsync of
/// the same file).
fn write_as(path: &Path, bytes: &[u8], durable: Durable) -> Result<()> {
    retry(|| {
        let tmp = temp_beside(path, &|w| w.write_all(bytes))?;
        if durable != Durable::Batched {
            tmp.as_file().sync_all()?;
        }
        tmp.persist(path).map_err(|e| e.error)?;
        if durable == Durable::Now {
            fsync_dir(parent_of(path))
        } else {
            Ok(())
        }
    })
    .map_err(|e| Error::storage("writing", path, e))
}

/// How many files a commit stages at once.
const STAGING_THREADS: usize = 2;

/// From how many files a commit makes its files durable together, by one
/// `syncfs` per file system, instead of an fsync of each file and its
/// folder. A first sync into an empty vdir folder writes a file per item:
/// 7,628 files took 4.4-5.3 s to commit one fsync at a time, nearly all of
/// it waiting for the disk (BENCHMARKS.md, "vdir folders").
const BATCH_DURABILITY_MIN: usize = 64;

/// Whether a commit of `files` files makes them durable together.
fn batched(files: usize) -> bool {
    cfg!(target_os = "linux") && files >= BATCH_DURABILITY_MIN
}

/// Makes every file written so far on the file systems holding `paths`
/// durable, with its folder entries: one `syncfs(2)` per file system (the
/// standard library has no wrapper; `libc` gives the call). Linux only;
/// [`batched`] is false elsewhere.
fn sync_file_systems<'a>(paths: impl Iterator<Item = &'a Path>) -> io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let mut seen = std::collections::HashSet::new();
    for path in paths {
        let dir = parent_of(path);
        let Ok(meta) = fs::metadata(dir) else {
            continue;
        };
        if !seen.insert(meta.dev()) {
            continue;
        }
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            let folder = File::open(dir)?;
            // SAFETY: the descriptor is open for the duration of the call.
            if unsafe { libc::syncfs(folder.as_raw_fd()) } != 0 {
                return Err(io::Error::last_os_error());
            }
        }
    }
    Ok(())
}

/// Makes `dest` a durable copy of `src` as it is now. A hard link costs no
/// data I/O: every writer of this crate replaces files by renaming a new one
/// over them, so the linked inode keeps the old content once `src` is
/// replaced. Where links are refused (another file system, FAT, some network
/// mounts) the bytes are copied.
pub fn link_or_copy(src: &Path, dest: &Path) -> Result<()> {
    link_or_copy_as(src, dest, Durable::Now)
}

/// How a step of a commit makes what it wrote durable.
#[derive(Clone, Copy, PartialEq)]
enum Durable {
    /// Now: the file and its folder entry fsync'd.
    Now,
    /// The file's content now; its folder entry by the caller, which
    /// fsyncs each folder once ([`fsync_dirs`]) before the commit point.
    FoldersLater,
    /// Not here: a batched commit's `syncfs` ([`sync_file_systems`]).
    Batched,
}

/// Fsyncs each folder holding one of `paths`, once.
fn fsync_dirs<'a>(paths: impl Iterator<Item = &'a Path>) -> io::Result<()> {
    let dirs: std::collections::BTreeSet<&Path> = paths.map(parent_of).collect();
    dirs.into_iter().try_for_each(fsync_dir)
}

/// [`link_or_copy`], durable as `durable` says (a copy, where links are
/// refused, as [`write_as`] makes it).
fn link_or_copy_as(src: &Path, dest: &Path, durable: Durable) -> Result<()> {
    let sync = durable == Durable::Now;
    let linked = retry(|| {
        crate::faults::before_write(dest)?;
        let dir = parent_of(dest);
        fs::create_dir_all(dir)?;
        match fs::remove_file(dest) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        fs::hard_link(src, dest)?;
        if sync { fsync_dir(dir) } else { Ok(()) }
    });
    match linked {
        Ok(()) => Ok(()),
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::EXDEV | libc::EPERM | libc::EOPNOTSUPP | libc::EMLINK)
            ) =>
        {
            tracing::debug!("cannot hard-link {} ({e}); copying", dest.display());
            let old = read_optional(src)?.unwrap_or_default();
            write_as(dest, &old, durable)
        }
        Err(e) => Err(Error::storage("writing", dest, e)),
    }
}

/// Appends one line to `path` and fsyncs it.
pub fn append_line(path: &Path, line: &str) -> Result<()> {
    retry(|| {
        crate::faults::before_write(path)?;
        fs::create_dir_all(parent_of(path))?;
        let mut f = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        f.write_all(line.as_bytes())?;
        f.write_all(b"\n")?;
        f.sync_all()
    })
    .map_err(|e| Error::storage("appending to", path, e))
}

/// Below this size a file is read into memory; from it up, mapped.
pub const MAP_MIN_BYTES: u64 = 1 << 20;

/// Reads a file, mapping it when large (see [`FileBytes`]); `None` when it
/// does not exist.
pub fn read_mapped(path: &Path) -> Result<Option<FileBytes>> {
    let open = || -> io::Result<FileBytes> {
        let mut file = File::open(path)?;
        let len = file.metadata()?.len();
        if len < MAP_MIN_BYTES {
            let mut v = Vec::with_capacity(len as usize + 1);
            io::Read::read_to_end(&mut file, &mut v)?;
            return Ok(v.into());
        }
        // SAFETY: the mapping is read-only and private to this process;
        // what another program does to the file meanwhile is as the type's
        // docs say.
        let map = unsafe { memmap2::Mmap::map(&file)? };
        Ok(FileBytes::mapped(map))
    };
    match retry(open) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::storage("reading", path, e)),
    }
}

/// Reads a file; `None` when it does not exist.
pub fn read_optional(path: &Path) -> Result<Option<Vec<u8>>> {
    match retry(|| fs::read(path)) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::storage("reading", path, e)),
    }
}

/// Serialises JSON the way data files are written: 2-space indent, newline.
pub fn to_pretty(value: &impl Serialize) -> Vec<u8> {
    let mut v = serde_json::to_vec_pretty(value).unwrap_or_default();
    v.push(b'\n');
    v
}

/// One entity file: `{"<entity>": [item, ...]}` (other top-level keys kept).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EntityFile {
    pub items: Vec<Map<String, Value>>,
    /// The rest of the top-level object, written back untouched.
    pub rest: Map<String, Value>,
    pub existed: bool,
    /// Size on disk, for the bytes-per-sync limit.
    pub bytes: usize,
    /// [`content_digest`] of the bytes read (`None`: the file did not exist),
    /// to see whether another program changed it before the commit.
    pub digest: Option<String>,
    /// The file's metadata as it was just before it was read.
    pub file_stamp: Option<FileStamp>,
}

/// What the file system says of a file: size, modification time and inode.
/// Equal stamps before and after mean the same content in practice (what
/// make, git and rsync rely on); a different stamp does not mean different
/// content, so the digest decides then.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStamp {
    len: u64,
    modified: std::time::SystemTime,
    inode: u64,
    /// Modified so shortly before it was stamped that a second write within
    /// the file system's timestamp granularity (a jiffy on Linux, 2 s on
    /// FAT) could leave the time unchanged: "racy", as git calls it. A racy
    /// stamp is never trusted.
    racy: bool,
}

/// How recent a modification makes a stamp racy.
const RACY_WINDOW: Duration = Duration::from_secs(3);

impl FileStamp {
    pub fn of(path: &Path) -> Option<FileStamp> {
        use std::os::unix::fs::MetadataExt;
        let m = fs::metadata(path).ok()?;
        let modified = m.modified().ok()?;
        let racy = std::time::SystemTime::now()
            .duration_since(modified)
            .map_or(true, |age| age < RACY_WINDOW);
        Some(FileStamp {
            len: m.len(),
            modified,
            inode: m.ino(),
            racy,
        })
    }

    /// The file's size in bytes.
    pub fn size(&self) -> u64 {
        self.len
    }

    /// The file's modification time.
    pub fn modified(&self) -> std::time::SystemTime {
        self.modified
    }

    fn same_file_state(&self, now: &FileStamp) -> bool {
        !self.racy && (self.len, self.modified, self.inode) == (now.len, now.modified, now.inode)
    }
}

/// Whether `path` still holds what was read as `digest` (`None`: absent),
/// given its stamp then. Reads and hashes the file only when its stamp moved.
pub fn unchanged_since_read(
    path: &Path,
    digest: &Option<String>,
    stamp: &Option<FileStamp>,
) -> Result<bool> {
    if let (Some(then), Some(now)) = (stamp, FileStamp::of(path))
        && then.same_file_state(&now)
    {
        return Ok(true);
    }
    Ok(file_digest(path)? == *digest)
}

/// [`content_digest`] of a file's current bytes (`None`: absent), streamed
/// through a small buffer: the commit checks files of up to ~10 MB each at
/// the limits, and reading each whole into new memory cost more than
/// hashing it (fresh pages, zeroed by the kernel).
pub fn file_digest(path: &Path) -> Result<Option<String>> {
    let digest = retry(|| {
        let mut file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut hasher = xxhash_rust::xxh3::Xxh3::new();
        let mut buf = vec![0u8; 1 << 18];
        loop {
            match io::Read::read(&mut file, &mut buf) {
                Ok(0) => break,
                Ok(n) => hasher.update(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(Some(hasher.digest128()))
    })
    .map_err(|e| Error::storage("reading", path, e))?;
    Ok(digest.map(digest_hex))
}

/// The digest by which the commit tells whether a domain file still holds
/// the bytes a sync read: XXH3-128, which runs at memory speed. It never
/// leaves the process and only tells a benign writer's change from none (a
/// writer able to forge a collision could as well remove the file), so it
/// need not be cryptographic; SHA-256 took 60-70 ms of a sync at the limits
/// re-checking files written moments before it (racy stamps, above).
pub fn content_digest(bytes: &[u8]) -> String {
    digest_hex(xxhash_rust::xxh3::xxh3_128(bytes))
}

fn digest_hex(digest: u128) -> String {
    format!("{digest:032x}")
}

/// Parses an entity file; errors name the file and where it is broken.
pub fn parse_entity_file(path: &Path, entity: &str, bytes: &[u8]) -> Result<EntityFile> {
    let bad = |msg: String, json_path: &str| {
        Error::new(
            Code::DataFormatInvalid,
            format!("`{}`: {msg}", path.display()),
        )
        .with("file", path.display().to_string())
        .with("path", json_path)
    };
    let text = strip_bom(bytes);
    let value: Value = crate::strict::from_slice(text, &crate::strict::Seg::Root).map_err(|f| {
        match f {
            crate::strict::Fault::Json(e) => bad(
                format!(
                    "not valid JSON at line {}, column {}: {e}",
                    e.line(),
                    e.column()
                ),
                "$",
            ),
            crate::strict::Fault::Duplicate(d) => {
                // The item's id, if the text can tell it (for the message only).
                let id = serde_json::from_slice::<Value>(text).ok().and_then(|v| {
                    let i = d.item?;
                    v.get(entity)?.get(i)?.get("id")?.as_str().map(String::from)
                });
                crate::strict::duplicate_key(path, &d, id.as_deref())
            }
        }
    })?;
    let Value::Object(mut top) = value else {
        return Err(bad(
            format!("the top level must be an object {{\"{entity}\": [...]}}"),
            "$",
        ));
    };
    let items = match top.shift_remove(entity) {
        None => Vec::new(),
        Some(Value::Array(a)) => {
            let mut items = Vec::with_capacity(a.len());
            for (i, v) in a.into_iter().enumerate() {
                match v {
                    Value::Object(m) => items.push(m),
                    _ => {
                        return Err(bad(
                            format!("item {i} is not a JSON object"),
                            &format!("$.{entity}[{i}]"),
                        )
                        .with("index", i));
                    }
                }
            }
            items
        }
        Some(_) => {
            return Err(bad(
                format!("`{entity}` must be an array of items"),
                &format!("$.{entity}"),
            ));
        }
    };
    Ok(EntityFile {
        items,
        rest: top,
        existed: true,
        bytes: bytes.len(),
        digest: Some(content_digest(bytes)),
        file_stamp: None,
    })
}

/// Refuses an entity file that is a symbolic link. A sync replaces a file by
/// renaming a new one over it, which would replace the link with a regular
/// file and silently stop syncing the file it pointed to; writing through the
/// link instead would let a domain write outside its folder. (A domain's
/// folder itself may be a link: it is resolved once, and the files in it are
/// ordinary.)
pub fn refuse_symlink(path: &Path) -> Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => {
            let target = fs::read_link(path)
                .map(|t| format!(" (to `{}`)", t.display()))
                .unwrap_or_default();
            Err(Error::new(
                Code::StorageError,
                format!(
                    "`{}` is a symbolic link{target}; entity files must be regular files, \
                     because a sync replaces them atomically and would replace the link. Move \
                     the file it points to into the domain folder in its place, or point the \
                     domain's folder ($.domains.<name>.path) at the folder that holds it",
                    path.display()
                ),
            )
            .with("file", path.display().to_string()))
        }
        _ => Ok(()),
    }
}

/// `bytes` without a leading UTF-8 byte-order mark (many Windows tools
/// write one); files are written back without it.
pub fn strip_bom(bytes: &[u8]) -> &[u8] {
    bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes)
}

/// Encodes an entity file for writing.
pub fn encode_entity_file(entity: &str, file: &EntityFile) -> Vec<u8> {
    let mut out = Vec::with_capacity(file.bytes.max(1 << 16));
    // Writing into a Vec cannot fail.
    let _ = write_entity_file(entity, file, &mut out);
    out
}

/// Writes an entity file as [`encode_entity_file`] encodes it: exactly
/// `serde_json::to_writer_pretty` of `{"<entity>": items, ...rest}` and a
/// newline (see [`crate::raw::write_items`]).
pub fn write_entity_file(
    entity: &str,
    file: &EntityFile,
    out: &mut dyn io::Write,
) -> io::Result<()> {
    let items = file.items.iter().map(crate::raw::Out::Item);
    crate::raw::write_items(entity, items, &file.rest, out).map(|_| ())
}

/// An entity file as a sync reads it: its items still text (see
/// [`crate::raw`]), and what the commit needs to know of the version read.
#[derive(Debug, Default)]
pub struct ReadFile {
    pub raw: crate::raw::RawFile,
    /// Every item, parsed, when the file was read whole
    /// ([`DataDir::read_entity_parsed`]): `raw` then holds only their ids.
    pub parsed: Option<Vec<Map<String, Value>>>,
    pub existed: bool,
    /// Size on disk, for the bytes-per-sync limit.
    pub bytes: usize,
    /// [`content_digest`] of the bytes read (`None`: the file did not exist).
    pub digest: Option<String>,
    /// The file's metadata as it was just before it was read.
    pub file_stamp: Option<FileStamp>,
    /// A vdir folder read as one file (see [`crate::vdir`]): the file of
    /// each item, in item order.
    pub members: Option<Vec<FileVersion>>,
}

/// One file as a sync read it: what the commit compares it with to be sure
/// no other program wrote it meanwhile ([`unchanged_since_read`]).
#[derive(Debug, Clone, PartialEq)]
pub struct FileVersion {
    pub path: PathBuf,
    /// [`content_digest`] of the bytes read; `None`: it did not exist.
    pub digest: Option<String>,
    pub stamp: Option<FileStamp>,
}

/// One file change within a transaction: new content, or `None` to delete.
#[derive(Debug)]
pub struct Write {
    pub path: PathBuf,
    /// The new content; `None` (and nothing prestaged): delete the file.
    pub content: Option<Vec<u8>>,
    /// The new content, written beside `path` but not yet fsync'd: the
    /// commit makes it durable (see [`prestage`]).
    pub prestaged: Option<tempfile::TempPath>,
}

impl Write {
    fn deletes(&self) -> bool {
        self.content.is_none() && self.prestaged.is_none()
    }
}

/// Writes what `encode` writes into a temporary file beside `path`, to be
/// renamed into place by a later commit (or removed when dropped). A large
/// sync writes each entity type's files as soon as they are encoded, while
/// other types are still being planned, instead of holding every file's
/// bytes in memory until the commit. A crash leaves a `.cds-tmp-*` file,
/// which the next sync removes ([`DataDir::remove_temporaries`]).
///
/// The file is not made durable here but by the commit, before its commit
/// point ([`DataDir::commit`]); here its write to disk is only started
/// ([`start_writeback`]), so that the disk writes it while the sync plans
/// the other types, and the commit's fsync finds little left to wait for.
/// Waiting for each file's fsync here held up the next type's planning: a
/// fifth of a re-sync's time (BENCHMARKS.md, "Durable at the commit").
pub fn prestage(path: &Path, encode: &Encode) -> Result<Write> {
    let temp = retry(|| {
        let tmp = temp_beside(path, encode)?;
        start_writeback(tmp.as_file());
        Ok(tmp.into_temp_path())
    })
    .map_err(|e| Error::storage("writing", path, e))?;
    Ok(Write {
        path: path.to_path_buf(),
        content: None,
        prestaged: Some(temp),
    })
}

/// Asks the kernel to start writing `file`'s dirty pages to disk now,
/// without waiting for it: Linux's `sync_file_range(2)` with
/// `SYNC_FILE_RANGE_WRITE` (no wrapper in the standard library, nor in a
/// maintained crate; `libc` gives the call). Only a hint: durability still
/// comes from an fsync. Elsewhere, nothing: the commit's fsync does it all.
fn start_writeback(file: &File) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: the descriptor is open for the duration of the call; the
        // call only reads its arguments.
        let r =
            unsafe { libc::sync_file_range(file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE) };
        if r != 0 {
            tracing::debug!("sync_file_range: {}", io::Error::last_os_error());
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = file;
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct JournalFile {
    /// Relative to the data folder.
    path: String,
    staged: String,
    /// Where the previous content was saved; `None` when there was none.
    backup: Option<String>,
    delete: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Journal {
    id: String,
    state: String,
    files: Vec<JournalFile>,
    /// The audit entry to append once committed (without seq and hashes).
    audit: Option<Value>,
}

/// What [`DataDir::recover`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Recovery {
    Nothing,
    RolledBack { id: String, audit: Option<Value> },
    RolledForward { id: String, audit: Option<Value> },
}

/// Takes an exclusive lock on `path` (created if needed), waiting up to
/// `wait`. The standard library's `File::try_lock` (flock on Unix) does what
/// a lock crate would; it is released when the process ends, even by SIGKILL.
pub fn lock_file(path: &Path, wait: Duration) -> Result<DirLock> {
    fs::create_dir_all(parent_of(path))
        .map_err(|e| Error::storage("creating", parent_of(path), e))?;
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| Error::storage("opening lock", path, e))?;
    let deadline = Instant::now() + wait;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(DirLock { _file: file }),
            Err(fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(fs::TryLockError::WouldBlock) => {
                return Err(Error::new(
                    Code::SyncInProgress,
                    format!("`{}` is locked by another process", path.display()),
                ));
            }
            Err(fs::TryLockError::Error(e)) => return Err(Error::storage("locking", path, e)),
        }
    }
}

/// A data folder (`--data-dir`).
#[derive(Debug, Clone)]
pub struct DataDir {
    pub root: PathBuf,
}

/// The data folder's lock, released on drop.
pub struct DirLock {
    _file: File,
}

impl DataDir {
    pub fn new(root: impl Into<PathBuf>) -> DataDir {
        DataDir { root: root.into() }
    }

    pub fn state_dir(&self) -> PathBuf {
        self.root.join(".sync")
    }
    pub fn audit_path(&self) -> PathBuf {
        self.root.join("audit").join("audit.jsonl")
    }
    pub fn record_path(&self, sync_id: &str) -> PathBuf {
        self.root
            .join("sync-records")
            .join(format!("{sync_id}.json"))
    }
    pub fn backups_dir(&self, id: &str) -> PathBuf {
        self.state_dir().join("backups").join(id)
    }
    /// Where transaction `id` keeps the previous content of the file `rel`
    /// (as its manifest names it: relative to the data folder, or absolute
    /// for a vdir folder outside it, kept under `external/`).
    pub fn backup_path(&self, id: &str, rel: &str) -> PathBuf {
        let dir = self.backups_dir(id);
        match rel.strip_prefix('/') {
            Some(abs) => dir.join("external").join(abs),
            None => dir.join(rel),
        }
    }
    pub fn conflicts_path(&self, sync_id: &str) -> PathBuf {
        self.state_dir()
            .join("conflicts")
            .join(format!("{sync_id}.json"))
    }
    pub fn base_path(&self, pair: &str, entity: &str) -> PathBuf {
        self.state_dir()
            .join("base")
            .join(pair)
            .join(format!("{entity}.json"))
    }
    fn journal_path(&self) -> PathBuf {
        self.state_dir().join("journal.json")
    }

    fn rel(&self, path: &Path) -> String {
        path.strip_prefix(&self.root)
            .unwrap_or(path)
            .to_string_lossy()
            .into_owned()
    }

    /// Takes the data folder's lock, waiting up to `wait`.
    pub fn lock(&self, wait: Duration) -> Result<DirLock> {
        lock_file(&self.state_dir().join("lock"), wait).map_err(|e| {
            if e.code == Code::SyncInProgress {
                Error::new(
                    Code::SyncInProgress,
                    format!(
                        "another sync holds the lock on `{}` (waited {:.1} s); try again when \
                         it has finished, or pass a longer --wait",
                        self.root.display(),
                        wait.as_secs_f64()
                    ),
                )
                .with("file", self.state_dir().join("lock").display().to_string())
            } else {
                e
            }
        })
    }

    /// Reads an entity file of a domain folder (absent: empty).
    pub fn read_entity(&self, path: &Path, entity: &str) -> Result<EntityFile> {
        refuse_symlink(path)?;
        // Stamped before the read: a change in between moves the stamp, and
        // the commit's check then falls back to the digest of what was read.
        let stamp = FileStamp::of(path);
        match read_mapped(path)? {
            None => Ok(EntityFile::default()),
            Some(bytes) => Ok(EntityFile {
                file_stamp: stamp,
                ..parse_entity_file(path, entity, &bytes)?
            }),
        }
    }

    /// Reads an entity file for a sync, its items left as text; errors name
    /// the file and where it is broken, as [`parse_entity_file`]'s do.
    pub fn read_entity_raw(&self, path: &Path, entity: &str, id_field: &str) -> Result<ReadFile> {
        refuse_symlink(path)?;
        // Stamped before the read, as in `read_entity`.
        let stamp = FileStamp::of(path);
        let Some(mut bytes) = read_mapped(path)? else {
            return Ok(ReadFile::default());
        };
        let (len, digest) = (bytes.len(), content_digest(&bytes));
        bytes.skip(bytes.len() - strip_bom(&bytes).len());
        match crate::raw::scan(bytes, entity, id_field) {
            Ok(raw) => Ok(ReadFile {
                raw,
                parsed: None,
                existed: true,
                bytes: len,
                digest: Some(digest),
                file_stamp: stamp,
                members: None,
            }),
            // Not an entity file: the full parse says precisely why.
            Err(bytes) => Err(match parse_entity_file(path, entity, &bytes) {
                Err(e) => e,
                Ok(_) => Error::new(
                    Code::DataFormatInvalid,
                    format!("`{}` cannot be read as an entity file", path.display()),
                )
                .with("file", path.display().to_string()),
            }),
        }
    }

    /// Reads an entity file for a sync and parses every item (when there is
    /// no base whose digests could settle any): as [`read_entity`], in the
    /// form [`DataDir::read_entity_raw`] gives, the items in `parsed`.
    ///
    /// [`read_entity`]: DataDir::read_entity
    pub fn read_entity_parsed(
        &self,
        path: &Path,
        entity: &str,
        id_field: &str,
    ) -> Result<ReadFile> {
        let file = self.read_entity(path, entity)?;
        let items = file
            .items
            .iter()
            .map(|i| crate::raw::RawItem {
                span: 0..0,
                id: i.get(id_field).and_then(Value::as_str).map(String::from),
                digest: None,
            })
            .collect();
        Ok(ReadFile {
            raw: crate::raw::RawFile {
                text: FileBytes::default(),
                items,
                rest: file.rest,
            },
            parsed: Some(file.items),
            existed: file.existed,
            bytes: file.bytes,
            digest: file.digest,
            file_stamp: file.file_stamp,
            members: None,
        })
    }

    /// Writes every file of `writes` or none (see the module docs). Previous
    /// contents are saved under the backups folder of `id`. `audit` is
    /// appended by `append_audit` once the commit point has passed.
    ///
    /// Long: the journal's steps in order, with a kill point between each;
    /// the crash tests stop the process at every one, so the sequence is
    /// kept readable as one.
    pub fn commit(
        &self,
        id: &str,
        writes: &[Write],
        audit: Option<Value>,
        append_audit: &dyn Fn(&DataDir, &Value) -> Result<()>,
    ) -> Result<()> {
        let backups = self.backups_dir(id);
        let mut journal = Journal {
            id: id.to_string(),
            state: "prepared".into(),
            files: Vec::with_capacity(writes.len()),
            audit,
        };
        for w in writes {
            let rel = self.rel(&w.path);
            let existed = w.path.exists();
            journal.files.push(JournalFile {
                staged: format!("{rel}.cds-staged"),
                backup: existed.then(|| self.rel(&self.backup_path(id, &rel))),
                delete: w.deletes(),
                path: rel,
            });
        }
        atomic_write(&self.journal_path(), &to_pretty(&journal))?;
        crate::faults::kill_point("journal prepared");
        let outcome = (|| -> Result<()> {
            // What this transaction wrote, for `undo` and the backup list.
            let manifest = BackupManifest {
                id: id.to_string(),
                committed_at: chrono::Utc::now()
                    .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
                files: journal
                    .files
                    .iter()
                    .map(|f| ManifestFile {
                        path: f.path.clone(),
                        existed: f.backup.is_some(),
                        delete: f.delete,
                    })
                    .collect(),
            };
            atomic_write(&backups.join("manifest.json"), &to_pretty(&manifest))?;
            // Staging is most of a large sync's I/O (each file written and
            // fsync'd); two threads keep the disk and both cores busy.
            // Many files are made durable together once staged; a few, each
            // file as it is staged and each folder once, after them (where
            // an fsync of the folder after every link and rename took three
            // a file: BENCHMARKS.md, "Durable at the commit").
            let batch = batched(writes.len());
            let durable = if batch {
                Durable::Batched
            } else {
                Durable::FoldersLater
            };
            let stage = |(w, jf): (&Write, &JournalFile)| -> Result<()> {
                if let Some(b) = &jf.backup {
                    link_or_copy_as(&w.path, &self.root.join(b), durable)?;
                }
                let staged = self.root.join(&jf.staged);
                if let Some(content) = &w.content {
                    write_as(&staged, content, durable)?;
                } else if let Some(temp) = &w.prestaged {
                    // Already written (see [`prestage`]): made durable here,
                    // then only the name changes. The fsync is not retried:
                    // one that failed may have dropped the pages it could
                    // not write, so a second one that succeeds proves
                    // nothing; the sync fails and rolls back instead.
                    if !batch {
                        File::open(temp)
                            .and_then(|f| f.sync_all())
                            .map_err(|e| Error::storage("syncing", temp, e))?;
                    }
                    retry(|| {
                        crate::faults::before_write(&staged)?;
                        fs::rename(temp, &staged)
                    })
                    .map_err(|e| Error::storage("staging", &staged, e))?;
                }
                crate::faults::kill_point("file staged");
                Ok(())
            };
            let pairs: Vec<(&Write, &JournalFile)> = writes.iter().zip(&journal.files).collect();
            let next = std::sync::atomic::AtomicUsize::new(0);
            let first_error: std::sync::Mutex<Option<Error>> = std::sync::Mutex::new(None);
            let work = || {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let Some(&pair) = pairs.get(i) else { break };
                    if let Err(e) = stage(pair) {
                        // Stop handing out files; the first error wins.
                        next.store(pairs.len(), std::sync::atomic::Ordering::SeqCst);
                        let mut slot = first_error.lock().unwrap_or_else(|p| p.into_inner());
                        slot.get_or_insert(e);
                        break;
                    }
                }
            };
            // This thread is one of the stagers.
            std::thread::scope(|scope| {
                for _ in 1..STAGING_THREADS.min(pairs.len()) {
                    scope.spawn(work);
                }
                work();
            });
            if let Some(e) = first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
                return Err(e);
            }
            // Before the commit point: every staged file and backup on disk,
            // with its folder entry.
            let on_disk: Vec<PathBuf> = journal
                .files
                .iter()
                .flat_map(|f| [Some(&f.staged), f.backup.as_ref()])
                .flatten()
                .map(|rel| self.root.join(rel))
                .collect();
            let on_disk = || on_disk.iter().map(PathBuf::as_path);
            if batch {
                retry(|| sync_file_systems(on_disk()))
                    .map_err(|e| Error::storage("syncing", &self.root, e))?;
            } else {
                retry(|| fsync_dirs(on_disk()))
                    .map_err(|e| Error::storage("syncing the folders of", &self.root, e))?;
            }
            Ok(())
        })();
        if let Err(e) = outcome {
            self.roll_back(&journal);
            return Err(e);
        }
        journal.state = "committed".into();
        if let Err(e) = atomic_write(&self.journal_path(), &to_pretty(&journal)) {
            self.roll_back(&journal);
            return Err(e);
        }
        crate::faults::kill_point("journal committed");
        // Past the commit point the sync has happened. A failure to finish
        // here (rename, audit) leaves the journal for the next invocation to
        // roll forward; it does not make the sync a failure.
        if let Err(e) = self.roll_forward(&journal, append_audit) {
            tracing::error!(
                "sync {id} is committed but could not be finished ({e}); the next invocation \
                 finishes it"
            );
        }
        Ok(())
    }

    /// Removes the temporary files of writes that a crash cut short in the
    /// folders `journal` writes to (the caller holds the data folder's lock,
    /// so no write of ours is in flight).
    fn remove_torn_temporaries(&self, journal: &Journal) {
        let mut dirs: Vec<PathBuf> = journal
            .files
            .iter()
            .flat_map(|f| [Some(&f.path), Some(&f.staged), f.backup.as_ref()])
            .flatten()
            .map(|rel| parent_of(&self.root.join(rel)).to_path_buf())
            .collect();
        dirs.push(self.state_dir());
        Self::remove_temporaries(dirs);
    }

    /// Removes `.cds-tmp-*` files (writes a crash cut short, or files
    /// prestaged for a commit that never came) from `dirs`. Only call with
    /// the data folder's lock held.
    pub fn remove_temporaries(mut dirs: Vec<PathBuf>) {
        dirs.sort();
        dirs.dedup();
        for dir in dirs {
            for entry in fs::read_dir(&dir).into_iter().flatten().flatten() {
                if entry.file_name().to_string_lossy().starts_with(".cds-tmp-") {
                    let _ = fs::remove_file(entry.path());
                }
            }
        }
    }

    fn roll_back(&self, journal: &Journal) {
        self.remove_torn_temporaries(journal);
        for jf in &journal.files {
            let _ = fs::remove_file(self.root.join(&jf.staged));
        }
        let _ = fs::remove_dir_all(self.backups_dir(&journal.id));
        let _ = fs::remove_file(self.journal_path());
    }

    fn roll_forward(
        &self,
        journal: &Journal,
        append_audit: &dyn Fn(&DataDir, &Value) -> Result<()>,
    ) -> Result<()> {
        self.remove_torn_temporaries(journal);
        let batch = batched(journal.files.len());
        for jf in &journal.files {
            let path = self.root.join(&jf.path);
            let staged = self.root.join(&jf.staged);
            if jf.delete {
                match fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(Error::storage("removing", &path, e)),
                }
            } else if staged.exists() {
                retry(|| fs::rename(&staged, &path))
                    .map_err(|e| Error::storage("renaming into place", &path, e))?;
            }
            crate::faults::kill_point("file renamed");
        }
        // The renames and removals on disk before the journal goes: each
        // folder once, or one `syncfs` for many files.
        let paths: Vec<PathBuf> = journal
            .files
            .iter()
            .map(|f| self.root.join(&f.path))
            .collect();
        let paths = paths.iter().map(PathBuf::as_path);
        let _ = if batch {
            sync_file_systems(paths)
        } else {
            fsync_dirs(paths)
        };
        if let Some(entry) = &journal.audit {
            append_audit(self, entry)?;
        }
        crate::faults::kill_point("audited");
        let _ = fs::remove_file(self.journal_path());
        Ok(())
    }

    /// Finishes whatever a killed sync left: a `prepared` journal is rolled
    /// back, a `committed` one rolled forward.
    pub fn recover(
        &self,
        append_audit: &dyn Fn(&DataDir, &Value) -> Result<()>,
    ) -> Result<Recovery> {
        let path = self.journal_path();
        let Some(bytes) = read_optional(&path)? else {
            return Ok(Recovery::Nothing);
        };
        let journal: Journal = serde_json::from_slice(&bytes).map_err(|e| {
            Error::new(
                Code::StorageError,
                format!(
                    "the sync journal `{}` is damaged ({e}); no domain file was changed by the \
                     sync it describes unless its backups say so: inspect it, then remove it",
                    path.display()
                ),
            )
        })?;
        if journal.state == "committed" {
            self.roll_forward(&journal, append_audit)?;
            Ok(Recovery::RolledForward {
                id: journal.id,
                audit: journal.audit,
            })
        } else {
            self.roll_back(&journal);
            Ok(Recovery::RolledBack {
                id: journal.id,
                audit: journal.audit,
            })
        }
    }
}

#[cfg(test)]
mod stamp_tests {
    use super::*;

    /// A prestaged file is made durable by the commit, which opens it to
    /// fsync it before renaming it: one gone by then (removed by another
    /// program) fails the commit, naming it, and the commit rolls back, so
    /// the other file of the transaction keeps its old content.
    #[test]
    fn a_prestaged_file_gone_before_the_commit_fails_it_and_nothing_changes() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::new(dir.path());
        let (a, b) = (dir.path().join("a.json"), dir.path().join("b.json"));
        fs::write(&a, "old a").unwrap();
        fs::write(&b, "old b").unwrap();
        let first = prestage(&a, &|w| w.write_all(b"new a")).unwrap();
        let second = prestage(&b, &|w| w.write_all(b"new b")).unwrap();
        let gone = second.prestaged.as_deref().unwrap().to_path_buf();
        assert_eq!(fs::read_to_string(&gone).unwrap(), "new b");
        fs::remove_file(&gone).unwrap();
        let err = data
            .commit("t1", &[first, second], None, &|_, _| Ok(()))
            .unwrap_err();
        assert_eq!(err.code, Code::StorageError);
        assert!(
            err.message.starts_with("syncing") && err.message.contains(gone.to_str().unwrap()),
            "{}",
            err.message
        );
        assert_eq!(fs::read_to_string(&a).unwrap(), "old a");
        assert_eq!(fs::read_to_string(&b).unwrap(), "old b");
        assert!(!data.journal_path().exists(), "the journal is rolled back");
    }

    /// A file read whole or mapped gives the same items and digest, with or
    /// without a byte order mark, and a mapped one stays as read when
    /// another program replaces the file.
    #[test]
    fn large_files_read_mapped_as_small_ones_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::new(dir.path());
        let item = |i: usize| format!("{{\"id\": \"c{i}\", \"name\": \"{}\"}}", "x".repeat(200));
        for (n, bom) in [(3, false), (3, true), (8000, false), (8000, true)] {
            let items: Vec<String> = (0..n).map(item).collect();
            let mut text = if bom {
                b"\xEF\xBB\xBF".to_vec()
            } else {
                Vec::new()
            };
            text.extend(format!("{{\"contacts\": [{}]}}", items.join(", ")).into_bytes());
            assert_eq!(
                text.len() as u64 >= MAP_MIN_BYTES,
                n == 8000,
                "both ways tried"
            );
            let path = dir.path().join(format!("c{n}{bom}.json"));
            fs::write(&path, &text).unwrap();
            let raw = data.read_entity_raw(&path, "contacts", "id").unwrap();
            assert_eq!(raw.bytes, text.len());
            assert_eq!(raw.digest, Some(content_digest(&text)));
            assert_eq!(raw.raw.items.len(), n);
            assert_eq!(raw.raw.text_of(n - 1), item(n - 1).as_bytes());
            let parsed = data.read_entity_parsed(&path, "contacts", "id").unwrap();
            let items = parsed.parsed.unwrap();
            assert_eq!(items.len(), n);
            assert_eq!(items[n - 1]["id"], format!("c{}", n - 1));
            // Replaced as editors and this host do: the mapping keeps the
            // text it was read with.
            let other = dir.path().join("other.json");
            fs::write(&other, b"{\"contacts\": []}").unwrap();
            fs::rename(&other, &path).unwrap();
            assert_eq!(raw.raw.text_of(0), item(0).as_bytes());
        }
        assert!(
            read_mapped(&dir.path().join("absent.json"))
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn a_file_is_unchanged_only_while_its_content_is() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("contacts.json");
        fs::write(&path, b"{\"contacts\": [1]}").unwrap();
        // Just written, so racy: only the digest can say it is unchanged.
        assert!(FileStamp::of(&path).unwrap().racy);
        let old = std::time::SystemTime::now() - Duration::from_secs(60);
        fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(old)
            .unwrap();
        let stamp = FileStamp::of(&path);
        assert!(!stamp.as_ref().unwrap().racy);
        let digest = file_digest(&path).unwrap();
        assert!(unchanged_since_read(&path, &digest, &stamp).unwrap());
        // Rewritten by rename with the same bytes: the stamp moves, the
        // digest says it is the same.
        atomic_write(&path, b"{\"contacts\": [1]}").unwrap();
        assert_ne!(FileStamp::of(&path), stamp);
        assert!(unchanged_since_read(&path, &digest, &stamp).unwrap());
        // Same size, other bytes, written in place.
        fs::write(&path, b"{\"contacts\": [2]}").unwrap();
        assert!(!unchanged_since_read(&path, &digest, &stamp).unwrap());
        // Even with its time set back to what was stamped (a write within
        // one timestamp tick): a racy stamp is not trusted.
        let racy = FileStamp::of(&path);
        let digest = file_digest(&path).unwrap();
        let f = fs::File::options().write(true).open(&path).unwrap();
        f.set_modified(racy.as_ref().unwrap().modified).unwrap();
        fs::write(&path, b"{\"contacts\": [3]}").unwrap();
        f.set_modified(racy.as_ref().unwrap().modified).unwrap();
        assert_eq!(
            FileStamp::of(&path).map(|s| (s.len, s.modified, s.inode)),
            racy.as_ref().map(|s| (s.len, s.modified, s.inode))
        );
        assert!(!unchanged_since_read(&path, &digest, &racy).unwrap());
        // Removed.
        fs::remove_file(&path).unwrap();
        assert!(!unchanged_since_read(&path, &digest, &stamp).unwrap());
        // Absent when read and still absent.
        assert!(unchanged_since_read(&path, &None, &None).unwrap());
    }

    /// A file's streamed digest is the digest of its bytes read whole (what
    /// the sync records when it reads a file), at sizes around XXH3's
    /// internal blocks and the streaming buffer.
    #[test]
    fn a_streamed_digest_is_the_digest_of_the_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.json");
        for len in [
            0,
            1,
            16,
            17,
            128,
            129,
            240,
            241,
            1024,
            1 << 18,
            (1 << 18) + 7,
            3 << 20,
        ] {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            fs::write(&path, &bytes).unwrap();
            assert_eq!(
                file_digest(&path).unwrap(),
                Some(content_digest(&bytes)),
                "{len} bytes"
            );
        }
        fs::remove_file(&path).unwrap();
        assert_eq!(file_digest(&path).unwrap(), None);
    }
}

#[cfg(test)]
mod encode_tests {
    use super::*;
    use serde_json::json;

    /// Entity files are written as `serde_json::to_writer_pretty` writes
    /// them, whatever the items and the other top-level keys hold, and read
    /// back as they were.
    #[test]
    fn entity_files_are_serde_json_pretty() {
        let items = |v: Value| -> Vec<Map<String, Value>> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|i| i.as_object().unwrap().clone())
                .collect()
        };
        let cases = [
            (json!([]), json!({})),
            (
                json!([{"id": "a", "name": "Ä \"q\" \\ \n\t\u{1}", "tags": [], "n": {"x": [1, 2.5, -3]}},
                       {"id": "b", "e": {}, "f": null, "g": true}]),
                json!({}),
            ),
            (
                json!([{"id": "c"}]),
                json!({"version": 2, "meta": {"by": ["x", {"y": []}]}}),
            ),
        ];
        for (list, rest) in cases {
            let file = EntityFile {
                items: items(list.clone()),
                rest: rest.as_object().unwrap().clone(),
                ..EntityFile::default()
            };
            let mut whole = Map::new();
            whole.insert("contacts".into(), list);
            whole.extend(rest.as_object().unwrap().clone());
            let mut want = serde_json::to_vec_pretty(&whole).unwrap();
            want.push(b'\n');
            let got = encode_entity_file("contacts", &file);
            assert_eq!(
                String::from_utf8_lossy(&got),
                String::from_utf8_lossy(&want)
            );
            let back = parse_entity_file(Path::new("contacts.json"), "contacts", &got).unwrap();
            assert_eq!((back.items, back.rest), (file.items, file.rest));
        }
    }
}

/// What a transaction wrote (`backups/<id>/manifest.json`), for `undo` and
/// `backups list`: written by [`DataDir::commit`], read by
/// [`BackupManifest::read`]; `schemas/backup-manifest.schema.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(title = "cross-domain-sync backup manifest")]
pub struct BackupManifest {
    /// The transaction: a sync id, or `resolve-...`, `undo-...`.
    pub id: String,
    /// RFC 3339, UTC, nanoseconds (orders transactions of one second).
    pub committed_at: String,
    pub files: Vec<ManifestFile>,
}

/// One file a transaction wrote, relative to the data folder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ManifestFile {
    pub path: String,
    /// Whether it existed before (its old version is then in the backup).
    pub existed: bool,
    /// Whether the transaction deleted it.
    pub delete: bool,
}

impl BackupManifest {
    /// The manifest of the backup folder `dir`; `None` when it has none.
    pub fn read(dir: &Path) -> Result<Option<BackupManifest>> {
        let path = dir.join("manifest.json");
        let Some(bytes) = read_optional(&path)? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            Error::new(
                Code::StorageError,
                format!("the backup manifest `{}` is damaged: {e}", path.display()),
            )
            .with("file", path.display().to_string())
        })
    }
}
