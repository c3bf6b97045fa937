//! TensorBoard event files: the records of a run as scalars that `tensorboard --logdir` shows.
//!
//! A run with `[log] tensorboard = true` (or `softgfn train --tensorboard`) writes
//! `RUN/tb/events.out.tfevents.<seconds>.softgfn[.<n>]`: the first event names the file format
//! (`file_version: "brain.Event:2"`), then every evaluation record gives one event whose
//! summary holds a scalar per number of the record ([`record_scalars`]): `loss`,
//! `log_z_learned`, `exact_l1`, `ms_per_iteration`, `wall_seconds`, the `log Z` estimators, the
//! environment's own metrics (`modes_found`, ...), each under its record name as tag, at
//! `step = iteration`.
//!
//! The file format is TensorFlow's record framing, written here without a protobuf dependency:
//!
//! ```text
//! u64 length (LE) | u32 masked CRC-32C of the 8 length bytes | data | u32 masked CRC-32C of data
//! ```
//!
//! where `data` is an `Event` message (`tensorflow/core/util/event.proto`: `wall_time = 1`
//! double, `step = 2` int64, `file_version = 3` string, `summary = 5` message) whose `Summary`
//! holds `repeated Value value = 1` with `tag = 1` string and `simple_value = 2` float
//! (`tensorflow/core/framework/summary.proto`). The mask is
//! `((crc >> 15) | (crc << 17)) + 0xa282ead8`.
//!
//! Every record is written with one `write` and synced, so a killed run keeps every record
//! already written. A resumed run appends a **new** file to the same directory (TensorBoard
//! merges the files of a directory in name order) and leaves out the records of iterations that
//! the directory's files already hold, so no step appears twice; a truncated last record of a
//! killed run is ignored when the directory is scanned. `--force` over an existing run deletes
//! its event files.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Result, TrainError};
use crate::record::{CSV_COLUMNS, EvalRecord};

/// The subdirectory of a run directory that holds its event files.
pub const TB_DIR: &str = "tb";
/// The prefix of every event file name (what TensorBoard looks for).
pub const EVENT_FILE_PREFIX: &str = "events.out.tfevents.";
/// The file version written as the first event.
pub const FILE_VERSION: &str = "brain.Event:2";

/// CRC-32C (Castagnoli, reflected polynomial `0x82F63B78`) lookup table.
const CRC32C_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0x82F6_3B78
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

/// CRC-32C of `bytes` (`crc32c(b"123456789") == 0xE3069283`).
pub fn crc32c(bytes: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in bytes {
        c = CRC32C_TABLE[((c ^ b as u32) & 0xff) as usize] ^ (c >> 8);
    }
    !c
}

/// The masked CRC-32C of TensorFlow's record framing.
pub fn masked_crc32c(bytes: &[u8]) -> u32 {
    let c = crc32c(bytes);
    (c.rotate_right(15)).wrapping_add(0xa282_ead8)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn varint_len(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

/// Appends the `Event` header fields `wall_time = 1` (double) and `step = 2` (int64).
fn put_event_header(out: &mut Vec<u8>, wall_time: f64, step: i64) {
    out.push(0x09); // field 1, wire type 1 (64-bit)
    out.extend_from_slice(&wall_time.to_le_bytes());
    out.push(0x10); // field 2, wire type 0 (varint)
    put_varint(out, step as u64);
}

/// Appends one `Summary.Value { tag = 1, simple_value = 2 }`, as field 1 of a `Summary`.
fn put_scalar_value(out: &mut Vec<u8>, tag: &str, value: f32) {
    let inner = 1 + varint_len(tag.len() as u64) + tag.len() + 1 + 4;
    out.push(0x0a); // Summary.value, field 1, length-delimited
    put_varint(out, inner as u64);
    out.push(0x0a); // Value.tag, field 1, length-delimited
    put_varint(out, tag.len() as u64);
    out.extend_from_slice(tag.as_bytes());
    out.push(0x15); // Value.simple_value, field 2, wire type 5 (32-bit)
    out.extend_from_slice(&value.to_le_bytes());
}

/// The scalars of a record, in tag order of [`CSV_COLUMNS`] then the environment metrics:
/// every column but `iteration` (the step) whose value is present and finite.
pub fn record_scalars(record: &EvalRecord) -> impl Iterator<Item = (&str, f64)> + '_ {
    CSV_COLUMNS
        .iter()
        .copied()
        .filter(|c| *c != "iteration")
        .filter_map(|c| record.value(c).map(|v| (c, v)))
        .chain(
            record
                .env_metrics
                .iter()
                .filter_map(|(k, v)| v.map(|v| (k.as_str(), v))),
        )
        .filter(|(_, v)| v.is_finite())
}

fn now_seconds() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Writes one event file; buffers are kept between records.
#[derive(Debug)]
pub struct EventWriter {
    path: PathBuf,
    file: File,
    /// Records of iterations up to this one are not written (a resumed run).
    skip_through: Option<u64>,
    data: Vec<u8>,
    summary: Vec<u8>,
    frame: Vec<u8>,
}

impl EventWriter {
    /// Creates a new event file in `dir` (created with its parents) and writes the file-version
    /// event. The name is `events.out.tfevents.<seconds>.softgfn`, with `.<n>` added when that
    /// name is taken. Records of iterations `<= skip_through` are left out (see the module
    /// documentation).
    ///
    /// # Errors
    /// A directory or file that cannot be created or written.
    pub fn create(dir: &Path, skip_through: Option<u64>) -> Result<Self> {
        std::fs::create_dir_all(dir)
            .map_err(|e| TrainError::io("cannot create the TensorBoard directory", dir, e))?;
        let secs = now_seconds() as u64;
        let base = format!("{EVENT_FILE_PREFIX}{secs:010}.softgfn");
        let mut n = 0u32;
        let (path, file) = loop {
            let name = if n == 0 {
                base.clone()
            } else {
                format!("{base}.{n}")
            };
            let path = dir.join(name);
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(f) => break (path, f),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 10_000 => n += 1,
                Err(e) => {
                    return Err(TrainError::io(
                        "cannot create the TensorBoard event file",
                        &path,
                        e,
                    ));
                }
            }
        };
        let mut w = Self {
            path,
            file,
            skip_through,
            data: Vec::with_capacity(1024),
            summary: Vec::with_capacity(1024),
            frame: Vec::with_capacity(1024),
        };
        w.data.clear();
        put_event_header(&mut w.data, now_seconds(), 0);
        w.data.push(0x1a); // Event.file_version, field 3, length-delimited
        put_varint(&mut w.data, FILE_VERSION.len() as u64);
        w.data.extend_from_slice(FILE_VERSION.as_bytes());
        w.flush_event()?;
        Ok(w)
    }

    /// Opens the event directory `RUN/tb` of a run: a fresh file, leaving out the iterations
    /// that the directory's existing event files already hold.
    ///
    /// # Errors
    /// As [`EventWriter::create`]; an existing event file that cannot be read or is corrupt
    /// before its last record.
    pub fn for_run(run_dir: &Path) -> Result<Self> {
        let dir = run_dir.join(TB_DIR);
        std::fs::create_dir_all(&dir)
            .map_err(|e| TrainError::io("cannot create the TensorBoard directory", &dir, e))?;
        let written = last_step_in_dir(&dir)?;
        Self::create(&dir, written)
    }

    /// The file written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `scalars` as one event at `step` (a record of iteration `step`), unless the step
    /// is one of those left out.
    ///
    /// # Errors
    /// The file cannot be written.
    pub fn write_scalars<'a>(
        &mut self,
        step: u64,
        scalars: impl IntoIterator<Item = (&'a str, f64)>,
    ) -> Result<()> {
        if self.skip_through.is_some_and(|s| step <= s) {
            return Ok(());
        }
        self.summary.clear();
        for (tag, v) in scalars {
            put_scalar_value(&mut self.summary, tag, v as f32);
        }
        self.data.clear();
        put_event_header(&mut self.data, now_seconds(), step as i64);
        self.data.push(0x2a); // Event.summary, field 5, length-delimited
        put_varint(&mut self.data, self.summary.len() as u64);
        self.data.extend_from_slice(&self.summary);
        self.flush_event()
    }

    /// Writes the numbers of an evaluation record ([`record_scalars`]) at its iteration.
    ///
    /// # Errors
    /// The file cannot be written.
    pub fn write_record(&mut self, record: &EvalRecord) -> Result<()> {
        // The iterator borrows the record only; the buffers are this writer's.
        let step = record.iteration;
        self.write_scalars(step, record_scalars(record))
    }

    /// Frames `self.data` as one record and writes it with one call, then syncs.
    fn flush_event(&mut self) -> Result<()> {
        let len = (self.data.len() as u64).to_le_bytes();
        self.frame.clear();
        self.frame.extend_from_slice(&len);
        self.frame
            .extend_from_slice(&masked_crc32c(&len).to_le_bytes());
        self.frame.extend_from_slice(&self.data);
        self.frame
            .extend_from_slice(&masked_crc32c(&self.data).to_le_bytes());
        self.file
            .write_all(&self.frame)
            .and_then(|()| self.file.sync_data())
            .map_err(|e| TrainError::io("cannot append to", &self.path, e))
    }
}

/// What an event holds, as far as softgfn writes events.
#[derive(Clone, Debug, PartialEq)]
pub enum EventKind {
    /// The first event of a file.
    FileVersion(String),
    /// Scalars `(tag, simple_value)` of a summary (values without `simple_value` left out).
    Scalars(Vec<(String, f32)>),
    /// Any other event (graph, log message, ...).
    Other,
}

/// One decoded event.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// Seconds since the Unix epoch.
    pub wall_time: f64,
    /// The step (softgfn: the iteration).
    pub step: i64,
    /// The content.
    pub kind: EventKind,
}

fn corrupt(path: &Path, offset: usize, what: &str) -> TrainError {
    TrainError::EventFile {
        path: path.display().to_string(),
        message: format!("{what} at byte {offset}"),
    }
}

/// A protobuf reader over one message.
struct Pb<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Pb<'a> {
    fn varint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *self.b.get(self.i)?;
            self.i += 1;
            v |= ((byte & 0x7f) as u64) << shift;
            if byte & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.b.get(self.i..self.i.checked_add(n)?)?;
        self.i += n;
        Some(s)
    }

    /// The next field: number, wire type, and its bytes (varints as their value's 8 LE bytes).
    fn field(&mut self) -> Option<(u64, u8, &'a [u8], u64)> {
        let key = self.varint()?;
        let (num, wire) = (key >> 3, (key & 7) as u8);
        match wire {
            0 => {
                let v = self.varint()?;
                Some((num, wire, &[], v))
            }
            1 => Some((num, wire, self.take(8)?, 0)),
            2 => {
                let n = usize::try_from(self.varint()?).ok()?;
                Some((num, wire, self.take(n)?, 0))
            }
            5 => Some((num, wire, self.take(4)?, 0)),
            _ => None,
        }
    }

    fn done(&self) -> bool {
        self.i >= self.b.len()
    }
}

fn decode_value(b: &[u8]) -> Option<Option<(String, f32)>> {
    let mut p = Pb { b, i: 0 };
    let (mut tag, mut value) = (None, None);
    while !p.done() {
        match p.field()? {
            (1, 2, s, _) => tag = Some(std::str::from_utf8(s).ok()?.to_string()),
            (2, 5, s, _) => value = Some(f32::from_le_bytes(s.try_into().ok()?)),
            _ => {}
        }
    }
    Some(tag.zip(value))
}

fn decode_event(b: &[u8]) -> Option<Event> {
    let mut p = Pb { b, i: 0 };
    let mut ev = Event {
        wall_time: 0.0,
        step: 0,
        kind: EventKind::Other,
    };
    while !p.done() {
        match p.field()? {
            (1, 1, s, _) => ev.wall_time = f64::from_le_bytes(s.try_into().ok()?),
            (2, 0, _, v) => ev.step = v as i64,
            (3, 2, s, _) => {
                ev.kind = EventKind::FileVersion(std::str::from_utf8(s).ok()?.to_string())
            }
            (5, 2, s, _) => {
                let mut q = Pb { b: s, i: 0 };
                let mut scalars = Vec::new();
                while !q.done() {
                    if let (1, 2, v, _) = q.field()?
                        && let Some(sv) = decode_value(v)?
                    {
                        scalars.push(sv);
                    }
                }
                ev.kind = EventKind::Scalars(scalars);
            }
            _ => {}
        }
    }
    Some(ev)
}

/// Decodes the events of an event file's bytes. Returns the events read and, if the bytes end
/// inside a record, the error for that truncated record (a file cut short by a kill).
///
/// # Errors
/// A CRC mismatch or an undecodable event anywhere (a corrupt file).
fn parse_events(path: &Path, bytes: &[u8]) -> Result<(Vec<Event>, Option<TrainError>)> {
    let mut events = Vec::new();
    let mut at = 0usize;
    while at < bytes.len() {
        let rest = &bytes[at..];
        if rest.len() < 12 {
            return Ok((events, Some(corrupt(path, at, "truncated record header"))));
        }
        let len_bytes = &rest[..8];
        let crc = u32::from_le_bytes([rest[8], rest[9], rest[10], rest[11]]);
        if masked_crc32c(len_bytes) != crc {
            return Err(corrupt(path, at, "length CRC mismatch"));
        }
        let len = u64::from_le_bytes(len_bytes.try_into().unwrap_or([0; 8]));
        let Some(end) = usize::try_from(len)
            .ok()
            .and_then(|l| l.checked_add(16))
            .filter(|&e| e <= rest.len())
        else {
            return Ok((events, Some(corrupt(path, at, "truncated record"))));
        };
        let data = &rest[12..end - 4];
        let crc = u32::from_le_bytes([rest[end - 4], rest[end - 3], rest[end - 2], rest[end - 1]]);
        if masked_crc32c(data) != crc {
            return Err(corrupt(path, at, "data CRC mismatch"));
        }
        events.push(decode_event(data).ok_or_else(|| corrupt(path, at, "undecodable event"))?);
        at += end;
    }
    Ok((events, None))
}

/// Reads every event of an event file, checking the framing and both CRCs of every record.
///
/// # Errors
/// A file that cannot be read, a CRC mismatch, a truncated record or an undecodable event:
/// [`TrainError::EventFile`] naming the file and the byte offset.
pub fn read_events(path: &Path) -> Result<Vec<Event>> {
    let bytes = std::fs::read(path).map_err(|e| TrainError::io("cannot read", path, e))?;
    match parse_events(path, &bytes)? {
        (events, None) => Ok(events),
        (_, Some(e)) => Err(e),
    }
}

/// The event files of a directory, in name order (the order TensorBoard reads them in); none
/// when the directory does not exist.
///
/// # Errors
/// A directory that exists but cannot be listed.
pub fn event_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(TrainError::io("cannot list", dir, e)),
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(EVENT_FILE_PREFIX)
        })
        .map(|e| e.path())
        .collect();
    files.sort();
    Ok(files)
}

/// The largest step of a scalar event in the directory's event files (a truncated last record
/// ignored); `None` when there is none.
///
/// # Errors
/// A file that cannot be read or is corrupt before its end.
pub fn last_step_in_dir(dir: &Path) -> Result<Option<u64>> {
    let mut last: Option<u64> = None;
    for f in event_files(dir)? {
        let bytes = std::fs::read(&f).map_err(|e| TrainError::io("cannot read", &f, e))?;
        let (events, _truncated_tail) = parse_events(&f, &bytes)?;
        for e in events {
            if matches!(e.kind, EventKind::Scalars(_)) && e.step >= 0 {
                last = Some(last.map_or(e.step as u64, |l| l.max(e.step as u64)));
            }
        }
    }
    Ok(last)
}

/// Deletes the event files of a directory (a run started over with `--force`).
///
/// # Errors
/// A file that cannot be deleted.
pub fn remove_event_files(dir: &Path) -> Result<()> {
    for f in event_files(dir)? {
        std::fs::remove_file(&f).map_err(|e| TrainError::io("cannot delete", &f, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_check_value() {
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(b""), 0);
    }

    #[test]
    fn varints_round_trip() {
        for v in [0u64, 1, 127, 128, 300, 1 << 35, u64::MAX] {
            let mut b = Vec::new();
            put_varint(&mut b, v);
            assert_eq!(b.len(), varint_len(v));
            assert_eq!(Pb { b: &b, i: 0 }.varint(), Some(v));
        }
    }

    #[test]
    fn scalar_value_encoding_matches_the_proto() {
        // Summary { value { tag: "ab" simple_value: 1.0 } }, encoded by hand from summary.proto.
        let mut b = Vec::new();
        put_scalar_value(&mut b, "ab", 1.0);
        assert_eq!(
            b,
            [0x0a, 9, 0x0a, 2, b'a', b'b', 0x15, 0x00, 0x00, 0x80, 0x3f]
        );
    }

    fn scalars_of(events: &[Event]) -> Vec<(i64, Vec<(String, f32)>)> {
        events
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::Scalars(s) => Some((e.step, s.clone())),
                _ => None,
            })
            .collect()
    }

    fn write_steps(dir: &Path, skip: Option<u64>, steps: &[u64]) -> PathBuf {
        let mut w = EventWriter::create(dir, skip).unwrap();
        for &s in steps {
            w.write_scalars(
                s,
                [
                    ("loss", s as f64 * 0.5),
                    ("exact_l1", 1.0 / (s as f64 + 1.0)),
                ],
            )
            .unwrap();
        }
        w.path().to_path_buf()
    }

    #[test]
    fn written_events_read_back_with_their_steps_and_values() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_steps(dir.path(), None, &[0, 10, 20]);
        let events = read_events(&path).unwrap();
        assert_eq!(events[0].kind, EventKind::FileVersion(FILE_VERSION.into()));
        assert!(events[0].wall_time > 1.6e9);
        let got = scalars_of(&events);
        assert_eq!(got.len(), 3);
        for (i, (step, s)) in got.iter().enumerate() {
            let step_u = (i * 10) as u64;
            assert_eq!(*step, step_u as i64);
            assert_eq!(
                s,
                &vec![
                    ("loss".to_string(), (step_u as f64 * 0.5) as f32),
                    ("exact_l1".to_string(), (1.0 / (step_u as f64 + 1.0)) as f32)
                ]
            );
        }
    }

    #[test]
    fn a_record_writes_every_present_number_but_the_iteration() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = EventWriter::create(dir.path(), None).unwrap();
        let mut rec = EvalRecord {
            iteration: 7,
            trajectories: 112,
            wall_seconds: 0.25,
            loss: Some(1.5),
            log_z_learned: Some(2.0),
            exact_l1: Some(f64::NAN),
            ms_per_iteration: Some(3.0),
            ..Default::default()
        };
        rec.env_metrics.insert("modes_found".into(), Some(12.0));
        rec.env_metrics.insert("spearman".into(), None);
        w.write_record(&rec).unwrap();
        let got = scalars_of(&read_events(w.path()).unwrap());
        let tags: Vec<&str> = got[0].1.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(got[0].0, 7);
        assert_eq!(
            tags,
            [
                "trajectories",
                "wall_seconds",
                "loss",
                "log_z_learned",
                "ms_per_iteration",
                "modes_found"
            ]
        );
        assert_eq!(got[0].1[5].1, 12.0);
    }

    #[test]
    fn a_resumed_writer_leaves_out_the_steps_already_written() {
        let dir = tempfile::tempdir().unwrap();
        // A kill in the middle of the record of iteration 40: its bytes are cut short.
        let first = write_steps(dir.path(), None, &[0, 10, 20, 30, 40]);
        let bytes = std::fs::read(&first).unwrap();
        let last_len = {
            let mut w = EventWriter::create(&dir.path().join("x"), None).unwrap();
            let before = std::fs::metadata(w.path()).unwrap().len();
            w.write_scalars(40, [("loss", 20.0), ("exact_l1", 1.0 / 41.0)])
                .unwrap();
            (std::fs::metadata(w.path()).unwrap().len() - before) as usize
        };
        let whole = bytes.len() - last_len;
        std::fs::write(&first, &bytes[..bytes.len() - 3]).unwrap();
        assert_eq!(last_step_in_dir(dir.path()).unwrap(), Some(30));
        // The resumed run restarts from a checkpoint at iteration 20.
        let mut w = EventWriter::create(dir.path(), last_step_in_dir(dir.path()).unwrap()).unwrap();
        for s in [20u64, 30, 40, 50] {
            w.write_scalars(s, [("loss", s as f64)]).unwrap();
        }
        let files = event_files(dir.path()).unwrap();
        assert_eq!(files.len(), 2);
        assert_eq!(files[1], w.path());
        let second: Vec<i64> = scalars_of(&read_events(&files[1]).unwrap())
            .iter()
            .map(|(s, _)| *s)
            .collect();
        assert_eq!(second, [40, 50]);
        // The first file, truncated, is refused by the strict reader with its offset.
        let err = read_events(&files[0]).unwrap_err().to_string();
        assert!(
            err.contains("truncated record") && err.contains(&format!("byte {whole}")),
            "{err}"
        );
    }

    #[test]
    fn corrupt_files_are_refused_with_the_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_steps(dir.path(), None, &[0, 1]);
        let good = std::fs::read(&path).unwrap();
        let mut bad = good.clone();
        let n = bad.len();
        bad[n - 6] ^= 0x40; // inside the last record's data
        std::fs::write(&path, &bad).unwrap();
        let err = read_events(&path).unwrap_err().to_string();
        assert!(
            err.contains("corrupt TensorBoard event file") && err.contains("data CRC mismatch"),
            "{err}"
        );
        assert!(last_step_in_dir(dir.path()).is_err());
        let mut bad = good.clone();
        bad[0] ^= 1; // the first length
        std::fs::write(&path, &bad).unwrap();
        let err = read_events(&path).unwrap_err().to_string();
        assert!(err.contains("length CRC mismatch at byte 0"), "{err}");
        std::fs::write(&path, &good[..5]).unwrap();
        let err = read_events(&path).unwrap_err().to_string();
        assert!(err.contains("truncated record header at byte 0"), "{err}");
        std::fs::write(&path, &good).unwrap();
        assert_eq!(read_events(&path).unwrap().len(), 3);
    }

    #[test]
    fn an_unwritable_directory_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tb");
        std::fs::write(&file, "not a directory").unwrap();
        let err = EventWriter::create(&file, None).unwrap_err().to_string();
        assert!(
            err.contains("cannot create the TensorBoard directory"),
            "{err}"
        );
    }
}
