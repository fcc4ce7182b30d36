//! The `events` subcommands: verify, export, import, rebuild. They work directly on the
//! data dir's database.

use std::io::{BufReader, Write};
use std::path::Path;

use crate::store::{self, ExportFilter, Head, VerifyError};

/// Parses `SEQ:HASH`.
pub fn parse_head(s: &str) -> Result<Head, String> {
    let (seq, hash) = s
        .split_once(':')
        .ok_or_else(|| format!("expected SEQ:HASH, got {s:?}"))?;
    let seq: i64 = seq
        .parse()
        .map_err(|_| format!("{seq:?} is not a sequence number"))?;
    if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("{hash:?} is not a SHA-256 hex hash"));
    }
    Ok(Head {
        seq,
        hash: hash.to_ascii_lowercase(),
    })
}

/// `events verify`. Returns the process exit code.
pub fn verify(db: &Path, expect: Option<Head>, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let conn = match store::open_offline(db, false) {
        Ok(c) => c,
        Err(e) => {
            let _ = writeln!(err, "error: {e}");
            return 2;
        }
    };
    match store::verify(&conn, expect.as_ref()) {
        Ok(r) => {
            let _ = writeln!(
                out,
                "ok: {} events, chain intact, head {}:{}",
                r.events, r.head.seq, r.head.hash
            );
            0
        }
        Err(e @ VerifyError::Store(_)) => {
            let _ = writeln!(err, "error: {e}");
            2
        }
        Err(e) => {
            let _ = writeln!(err, "FAILED: {e}");
            if let Some(seq) = e.seq() {
                let _ = writeln!(err, "first bad seq: {seq}");
            }
            1
        }
    }
}

/// `events export`.
pub fn export(db: &Path, filter: &ExportFilter, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let result = store::open_offline(db, false).and_then(|c| store::export(&c, filter, out));
    match result {
        Ok(n) => {
            let _ = writeln!(err, "exported {n} events");
            0
        }
        Err(e) => {
            let _ = writeln!(err, "error: {e}");
            2
        }
    }
}

/// `events import FILE` (`-` for standard input).
pub fn import(db: &Path, file: &Path, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let run = || -> Result<u64, store::StoreError> {
        if let Some(dir) = db.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut conn = store::open_offline(db, true)?;
        if file == Path::new("-") {
            store::import(&mut conn, &mut std::io::stdin().lock())
        } else {
            let f = std::fs::File::open(file)?;
            store::import(&mut conn, &mut BufReader::new(f))
        }
    };
    match run() {
        Ok(n) => {
            let _ = writeln!(out, "imported {n} events");
            0
        }
        Err(e) => {
            let _ = writeln!(err, "error: {e}");
            1
        }
    }
}

/// `events rebuild`.
pub fn rebuild(db: &Path, names: &[String], out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let result = store::open_offline(db, false).and_then(|mut c| store::rebuild(&mut c, db, names));
    match result {
        Ok(r) => {
            let _ = writeln!(
                out,
                "rebuilt {} from {} events in {:.3} s ({:.0} events/s)",
                r.projections.join(", "),
                r.events,
                r.total_seconds,
                r.events as f64 / r.replay_seconds.max(1e-9)
            );
            0
        }
        Err(e) => {
            let _ = writeln!(err, "error: {e}");
            1
        }
    }
}
