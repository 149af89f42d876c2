//! Whether anything was committed to a SQLite database since a moment before, known
//! without a read transaction: by reading the WAL-index header in the database's `-shm`
//! file, as SQLite's own readers do to learn the same thing.
//!
//! Why: the access check (`sqlite.rs`, `AccessReaders`) runs on every authenticated
//! request, and its read transaction, not its query, was most of its cost: beginning and
//! ending one takes and drops a WAL read lock, an `fcntl` on the `-shm` file each time
//! (1.8 `fcntl` calls per request under `GET /api/users/me/`), plus SQLite's bookkeeping
//! around it. With this header the check answers from memory while nothing has been committed since it
//! last read the user (bench/RESULTS.md). SQLite has no API for it (`PRAGMA
//! data_version` needs a read transaction of its own), and no crate reads it, so it is
//! read here by hand.
//!
//! The layout is SQLite's protocol between processes sharing a database
//! (<https://www.sqlite.org/walformat.html>, unchanged since 3.7.0 in 2010: a change would
//! break every older SQLite sharing a file with a newer one):
//! - the `-shm` file starts with the 48-byte WAL-index header, twice (offsets 0 and 48);
//! - a commit writes the new header into the second copy, then a memory barrier, then
//!   into the first (`walIndexWriteHdr`); a reader reads the first, a barrier, the
//!   second, and trusts them only when both are the same (`walIndexTryHdr`);
//! - every commit changes the header: `iChange` counts commits and `mxFrame` the WAL's
//!   frames, and restarting the WAL from its beginning changes its salts.
//!
//! So two equal readings of the header mean nothing was committed between them, by this
//! process or any other. (The converse need not hold: a checkpoint that restarts the WAL
//! changes the header too, which only costs a read.) The header's fields are not
//! interpreted, but for the two that say it is one (`iVersion`, `isInit`).
//!
//! Two ways of writing would not go through the header: leaving WAL mode, and writing in
//! exclusive locking mode, where the writer may keep its WAL index in its own memory.
//! Both need an exclusive lock on the database file, which any other connection's shared
//! lock refuses; the connection `WalIndex` keeps holds one (in WAL mode SQLite keeps it
//! from a connection's first read until it closes), so neither can happen while the
//! header is read; a test holds this.
//!
//! The header is read where SQLite itself mapped it, through the VFS's `xShmMap` on a
//! connection of our own that stays open as long as the mapping is read. Mapping the
//! `-shm` file ourselves would be simpler but is wrong: closing our descriptor of it would
//! drop every lock this process holds on it (POSIX locks belong to the process, not to
//! the descriptor), SQLite's "still in use" lock included; the next process to open the
//! database would then truncate the file under this one's SQLite connections.

use std::sync::atomic::{fence, AtomicU32, Ordering};

/// The header's size in 32-bit words (48 bytes).
const HEADER_WORDS: usize = 12;

/// `iVersion` of every WAL-index header SQLite 3.7.0 and later writes.
const WALINDEX_VERSION: u32 = 3_007_000;

/// One reading of the header: equal readings, nothing committed in between.
pub type Version = [u32; HEADER_WORDS];

/// The WAL-index header of one database, where SQLite mapped it.
pub struct WalIndex {
    header: *const AtomicU32,
    /// The connection through whose `-shm` mapping `header` is read; the mapping lasts as
    /// long as it is open. It runs nothing after `open`, so it holds no snapshot of the
    /// database; what it does hold is needed: the shared lock on the database file that
    /// keeps every writer in WAL mode (above), and SQLite's "still in use" lock on the
    /// `-shm` file.
    _conn: rusqlite::Connection,
}

// SAFETY: `header` points into SQLite's mapping, which lives as long as `_conn`, and is
// only read, by atomic loads; `_conn` is never used again once `open` returns.
unsafe impl Send for WalIndex {}
unsafe impl Sync for WalIndex {}

impl WalIndex {
    /// Reads the header through `conn`'s mapping from now on. `None` when the database
    /// is not in WAL mode or is in memory, or its VFS does not map the WAL index: then
    /// there is nothing to read, and the caller reads the database every time.
    pub fn open(conn: rusqlite::Connection) -> Option<Self> {
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |row| row.get(0))
            .ok()?;
        if !mode.eq_ignore_ascii_case("wal") || conn.path().is_none_or(str::is_empty) {
            return None;
        }
        // A read opens the WAL index, and fills in its header if it is new.
        conn.query_row("SELECT count(*) FROM sqlite_schema", [], |row| {
            row.get::<_, i64>(0)
        })
        .ok()?;
        let header = shm_region_zero(&conn)?;
        let index = WalIndex {
            header: header.cast::<AtomicU32>(),
            _conn: conn,
        };
        index.version().map(|_| index)
    }

    /// The header as it stands: `None` while a commit is writing it (the two copies
    /// differ, also after a writer died mid-commit, until the next reader recovers the
    /// WAL), or if it does not read as a WAL-index header.
    pub fn version(&self) -> Option<Version> {
        let word = |i: usize| {
            // SAFETY: `i` < 2 × HEADER_WORDS, within the mapping; u32-aligned, as the
            // mapping is page-aligned. Atomic, because other processes write it.
            unsafe { (*self.header.add(i)).load(Ordering::Relaxed) }
        };
        let first: Version = std::array::from_fn(word);
        // SQLite's `walShmBarrier` between the two copies, paired with the writer's.
        fence(Ordering::SeqCst);
        let second: Version = std::array::from_fn(|i| word(HEADER_WORDS + i));
        // An acquire after the reading: whatever is read from the database afterwards is
        // at least as new as this header.
        fence(Ordering::Acquire);
        // `isInit` is the header's 13th byte, the low byte of word 3 in memory order.
        let is_init = first[3].to_ne_bytes()[0];
        (first == second && first[0] == WALINDEX_VERSION && is_init == 1).then_some(first)
    }
}

/// Where SQLite mapped the first 32 KiB of `conn`'s WAL index (its `-shm` file), by the
/// VFS method SQLite's WAL code uses itself (`xShmMap`, region 0, not extending the file).
fn shm_region_zero(conn: &rusqlite::Connection) -> Option<*const std::ffi::c_void> {
    use rusqlite::ffi;
    /// SQLite's WAL-index region size (`WALINDEX_PGSZ`).
    const REGION_BYTES: i32 = 32 * 1024;
    let mut file: *mut ffi::sqlite3_file = std::ptr::null_mut();
    // SAFETY: `conn` is open and not in use elsewhere; FILE_POINTER writes the main
    // database's `sqlite3_file` into `file`, which lives as long as the connection.
    let found = unsafe {
        ffi::sqlite3_file_control(
            conn.handle(),
            c"main".as_ptr(),
            ffi::SQLITE_FCNTL_FILE_POINTER,
            (&raw mut file).cast(),
        )
    };
    if found != ffi::SQLITE_OK || file.is_null() {
        return None;
    }
    // SAFETY: `file` is the connection's open database file; its methods table is
    // SQLite's for as long as it is open. Version 2 is the first with the `xShm` methods.
    let methods = unsafe { (*file).pMethods.as_ref()? };
    let shm_map = methods.xShmMap.filter(|_| methods.iVersion >= 2)?;
    let mut region: *mut std::ffi::c_void = std::ptr::null_mut();
    // SAFETY: region 0 of a WAL index the read above opened; with "extend" 0 SQLite only
    // maps what exists, and answers NULL if there is none.
    let mapped = unsafe { shm_map(file, 0, REGION_BYTES, 0, &mut region) };
    (mapped == ffi::SQLITE_OK && !region.is_null()).then_some(region.cast_const())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wal_database(dir: &tempfile::TempDir) -> rusqlite::Connection {
        let conn = rusqlite::Connection::open(dir.path().join("db.sqlite3")).unwrap();
        conn.pragma_update(None, "journal_mode", "wal").unwrap();
        conn.execute_batch("CREATE TABLE t (n INTEGER)").unwrap();
        conn
    }

    #[test]
    fn every_commit_changes_the_version_and_reads_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let writer = wal_database(&dir);
        let reader = rusqlite::Connection::open(dir.path().join("db.sqlite3")).unwrap();
        let probe = rusqlite::Connection::open(dir.path().join("db.sqlite3")).unwrap();
        let index = WalIndex::open(reader).expect("a WAL database is mapped");
        let mut seen = vec![index.version().unwrap()];
        let mut assert_new = |what: &str| {
            let now = index.version().unwrap();
            assert!(!seen.contains(&now), "{what} must change the version");
            seen.push(now);
        };

        // Reads, and a transaction that changes nothing, leave it as it was.
        let before = index.version().unwrap();
        probe
            .query_row("SELECT count(*) FROM t", [], |_| Ok(()))
            .unwrap();
        writer.execute_batch("BEGIN IMMEDIATE; ROLLBACK").unwrap();
        assert_eq!(index.version().unwrap(), before);

        writer.execute("INSERT INTO t VALUES (1)", []).unwrap();
        assert_new("a commit");
        writer.execute("UPDATE t SET n = 2", []).unwrap();
        assert_new("a second commit of the same size");
        // A checkpoint that empties the WAL, then a commit that starts it again from its
        // first frame: the frame count is as after the first commit, the salts are not.
        writer
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .unwrap();
        writer.execute("UPDATE t SET n = 3", []).unwrap();
        assert_new("a commit into a restarted WAL");
        // Another connection, as another process writes.
        let other = rusqlite::Connection::open(dir.path().join("db.sqlite3")).unwrap();
        other.execute("DELETE FROM t", []).unwrap();
        assert_new("another connection's commit");
    }

    /// SQLite's "still in use" lock (a POSIX read lock on byte 128 of the `-shm` file,
    /// `UNIX_SHM_DMS`) held by this process: while it is, no other process truncates the
    /// file under this one's connections.
    #[cfg(target_os = "linux")]
    fn holds_the_in_use_lock(shm: &std::path::Path) -> bool {
        use std::os::unix::fs::MetadataExt;
        let inode = std::fs::metadata(shm).unwrap().ino();
        let pid = std::process::id().to_string();
        std::fs::read_to_string("/proc/locks")
            .unwrap()
            .lines()
            .any(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                // "1: POSIX  ADVISORY  READ 4242 08:01:1234 128 128"
                fields.len() >= 8
                    && fields[1] == "POSIX"
                    && fields[3] == "READ"
                    && fields[4] == pid
                    && fields[5].rsplit(':').next() == Some(inode.to_string().as_str())
                    && fields[6..8] == ["128", "128"]
            })
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn reading_the_header_keeps_sqlites_in_use_lock() {
        // Mapping the `-shm` file through a descriptor of our own, then closing it,
        // dropped this lock: another process then truncated the file and this one's
        // SQLite died of SIGBUS.
        let dir = tempfile::tempdir().unwrap();
        let writer = wal_database(&dir);
        let shm = dir.path().join("db.sqlite3-shm");
        assert!(holds_the_in_use_lock(&shm));
        let index =
            WalIndex::open(rusqlite::Connection::open(dir.path().join("db.sqlite3")).unwrap())
                .unwrap();
        writer.execute("INSERT INTO t VALUES (1)", []).unwrap();
        assert!(index.version().is_some());
        assert!(holds_the_in_use_lock(&shm));
        drop(writer);
        assert!(
            holds_the_in_use_lock(&shm),
            "the index's own connection holds it"
        );
    }

    #[test]
    fn while_the_header_is_read_nobody_leaves_wal_mode_or_writes_around_it() {
        let dir = tempfile::tempdir().unwrap();
        drop(wal_database(&dir));
        let open = || {
            let conn = rusqlite::Connection::open(dir.path().join("db.sqlite3")).unwrap();
            conn.busy_timeout(std::time::Duration::ZERO).unwrap();
            conn
        };
        let index = WalIndex::open(open()).unwrap();
        let before = index.version().unwrap();

        let busy = |result: rusqlite::Result<()>| {
            matches!(result, Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy)
        };
        let leave_wal = |conn: &rusqlite::Connection| {
            conn.query_row("PRAGMA journal_mode = DELETE", [], |r| {
                r.get::<_, String>(0)
            })
            .map(|mode| assert_eq!(mode, "delete"))
        };
        let write_exclusively = |conn: &rusqlite::Connection| {
            conn.execute_batch("PRAGMA locking_mode = EXCLUSIVE; INSERT INTO t VALUES (1)")
        };

        // SQLite tells connections of one process apart as it does processes. Each on a
        // connection of its own, which has not opened the WAL index yet.
        assert!(busy(leave_wal(&open())), "left WAL mode");
        assert!(busy(write_exclusively(&open())), "wrote in exclusive mode");
        assert_eq!(index.version().unwrap(), before);

        // Without the index's connection, both are allowed.
        drop(index);
        write_exclusively(&open()).unwrap();
        leave_wal(&open()).unwrap();
    }

    #[test]
    fn a_database_not_in_wal_mode_is_not_mapped() {
        let dir = tempfile::tempdir().unwrap();
        let conn = rusqlite::Connection::open(dir.path().join("db.sqlite3")).unwrap();
        conn.execute_batch("CREATE TABLE t (n INTEGER)").unwrap();
        assert!(WalIndex::open(conn).is_none());
        let memory = rusqlite::Connection::open_in_memory().unwrap();
        assert!(WalIndex::open(memory).is_none());
    }
}
