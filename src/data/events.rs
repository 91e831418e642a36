//! Raw interaction logs, read into one in-memory [`EventLog`]: `interactions` (CSV/TSV with a
//! header) and `movielens` (`u.data`, `ratings.csv`, `ratings.dat`). The `xuetangx` activity JSON
//! is read by [`super::xuetangx`]. For text inputs an error's `row` is the 1-based line number
//! (the header is line 1).

use super::intern::{Interner, NotUtf8, SessionInterner};
use super::json::UTF8_BOM;
use super::time::parse_timestamp;
use crate::error::{Error, Result};
use crate::util::Progress;
use rayon::prelude::*;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

/// `Event::session` when the input has no session column.
pub const NO_SESSION: u32 = u32::MAX;

/// One kept event, with users, items and sessions numbered in order of first appearance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    pub user: u32,
    /// Index into [`EventLog::sessions`], or [`NO_SESSION`].
    pub session: u32,
    /// Index into [`EventLog::items`] (not yet the vocabulary id).
    pub item: u32,
    /// Unix seconds.
    pub ts: i64,
}

/// A whole log, events in input order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventLog {
    /// The file it was read from.
    pub source: PathBuf,
    /// Original user ids.
    pub users: Vec<String>,
    /// Original item ids.
    pub items: Vec<String>,
    /// Original session ids (each belongs to one user).
    pub sessions: Vec<String>,
    pub events: Vec<Event>,
    /// Events read before filtering (equal to `events.len()` for formats without a filter).
    pub events_read: u64,
}

/// Builds an [`EventLog`] while reading, interning ids.
#[derive(Default)]
pub struct LogBuilder {
    users: Interner,
    items: Interner,
    sessions: SessionInterner,
    events: Vec<Event>,
    /// Events seen, kept or not.
    pub events_read: u64,
}

impl LogBuilder {
    /// The number of user `id` (an error if it is new and not UTF-8, as for items and sessions).
    #[inline]
    pub fn user(&mut self, id: &[u8]) -> Result<u32, NotUtf8> {
        self.users.id(id)
    }
    /// The number of item `id`.
    #[inline]
    pub fn item(&mut self, id: &[u8]) -> Result<u32, NotUtf8> {
        self.items.id(id)
    }
    /// The number of session `id` of `user`.
    #[inline]
    pub fn session(&mut self, user: u32, id: &[u8]) -> Result<u32, NotUtf8> {
        self.sessions.id(user, id)
    }
    /// Appends a kept event.
    #[inline]
    pub fn push(&mut self, e: Event) {
        self.events.push(e);
    }
    /// The finished log of this builder's input followed by `next`'s (the builder of the input
    /// that follows): `next`'s ids keep the numbers this builder gave the same names, the others
    /// are numbered on after this builder's in their order of first appearance, and `next`'s
    /// events follow, so the log is the one a single builder over both inputs would give. The
    /// names are looked up on rayon's threads and the new ones are not inserted anywhere (no
    /// lookup follows). An error if no event was kept.
    pub fn finish_with(self, next: LogBuilder, source: &Path) -> Result<EventLog> {
        let next_users = next.users.into_names();
        let found = (next_users.par_iter())
            .map(|n| self.users.lookup(n.as_bytes()))
            .collect();
        let first_users = self.users.len();
        let (users, user_names) = number_on(self.users.into_names(), next_users, found);
        let next_items = next.items.into_names();
        let found = (next_items.iter())
            .map(|n| self.items.lookup(n.as_bytes()))
            .collect();
        let (items, item_names) = number_on(self.items.into_names(), next_items, found);
        let (session_users, next_sessions) = next.sessions.into_parts();
        let found = (session_users.par_iter().zip(&next_sessions))
            .map(|(&u, n)| {
                // A user new in `next` has no session in this builder's table.
                let u = users[u as usize];
                ((u as usize) < first_users)
                    .then(|| self.sessions.lookup(u, n.as_bytes()))
                    .flatten()
            })
            .collect();
        let (sessions, session_names) = number_on(self.sessions.into_names(), next_sessions, found);
        let mut events = self.events;
        events.par_extend(next.events.par_iter().map(|e| Event {
            user: users[e.user as usize],
            session: match e.session {
                NO_SESSION => NO_SESSION,
                s => sessions[s as usize],
            },
            item: items[e.item as usize],
            ts: e.ts,
        }));
        log(
            source,
            user_names,
            item_names,
            session_names,
            events,
            self.events_read + next.events_read,
        )
    }

    /// The finished log; an error if no event was kept.
    pub fn finish(self, source: &Path) -> Result<EventLog> {
        log(
            source,
            self.users.into_names(),
            self.items.into_names(),
            self.sessions.into_names(),
            self.events,
            self.events_read,
        )
    }
}

/// The numbers of a later input's ids, given for each whether an earlier input numbered the same
/// name (`found`): that number, or else the next free one in order, the name then added to
/// `names`, the earlier input's names. Gives the numbers and the names of both inputs.
fn number_on(
    mut names: Vec<String>,
    next: Vec<String>,
    found: Vec<Option<u32>>,
) -> (Vec<u32>, Vec<String>) {
    let numbers = (next.into_iter().zip(found))
        .map(|(name, f)| {
            f.unwrap_or_else(|| {
                names.push(name);
                names.len() as u32 - 1
            })
        })
        .collect();
    (numbers, names)
}

/// The log of what was read; an error if no event was kept.
fn log(
    source: &Path,
    users: Vec<String>,
    items: Vec<String>,
    sessions: Vec<String>,
    events: Vec<Event>,
    events_read: u64,
) -> Result<EventLog> {
    if events.is_empty() {
        let msg = if events_read == 0 {
            "the input has no events".to_string()
        } else {
            format!("no user left: none of the {events_read} events passed the filter")
        };
        return Err(Error::data(source, None, None, msg));
    }
    Ok(EventLog {
        source: source.to_path_buf(),
        users,
        items,
        sessions,
        events,
        events_read,
    })
}

/// Field separator of a delimited text file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Delim {
    Byte(u8),
    /// MovieLens 1M/10M `ratings.dat`.
    DoubleColon,
}

/// Splits one line into fields. With a byte separator, a field may be double-quoted (`""` is a
/// quote inside it); returns `None` for an unterminated quote.
fn split_fields<'a>(
    line: &'a [u8],
    delim: Delim,
    out: &mut Vec<std::borrow::Cow<'a, [u8]>>,
) -> bool {
    out.clear();
    match delim {
        Delim::DoubleColon => {
            let mut rest = line;
            while let Some(p) = rest.windows(2).position(|w| w == b"::") {
                out.push(rest[..p].into());
                rest = &rest[p + 2..];
            }
            out.push(rest.into());
            true
        }
        Delim::Byte(d) => {
            let mut i = 0;
            loop {
                if line.get(i) == Some(&b'"') {
                    let mut field = Vec::new();
                    i += 1;
                    loop {
                        match line.get(i) {
                            None => return false,
                            Some(b'"') if line.get(i + 1) == Some(&b'"') => {
                                field.push(b'"');
                                i += 2;
                            }
                            Some(b'"') => {
                                i += 1;
                                break;
                            }
                            Some(&c) => {
                                field.push(c);
                                i += 1;
                            }
                        }
                    }
                    out.push(field.into());
                    // Skip anything up to the separator.
                    match line[i..].iter().position(|&c| c == d) {
                        Some(p) => i += p + 1,
                        None => return true,
                    }
                } else {
                    match line[i..].iter().position(|&c| c == d) {
                        Some(p) => {
                            out.push(line[i..i + p].into());
                            i += p + 1;
                        }
                        None => {
                            out.push(line[i..].into());
                            return true;
                        }
                    }
                }
            }
        }
    }
}

/// Which field holds what.
#[derive(Clone, Copy, Debug)]
struct Columns {
    user: usize,
    item: usize,
    ts: usize,
    session: Option<usize>,
    /// Fields per line.
    width: usize,
}

/// Column names used in error messages.
const COL_USER: &str = "user_id";
const COL_ITEM: &str = "item_id";
const COL_TS: &str = "timestamp";
const COL_SESSION: &str = "session_id";

/// Lines of a text file with their 1-based numbers, `\r\n` or `\n` endings, and byte progress.
struct Lines {
    path: PathBuf,
    reader: BufReader<File>,
    line_no: usize,
    progress: Progress,
    bytes: u64,
}

impl Lines {
    fn open(path: &Path, quiet: bool) -> Result<Self> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let total = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(Lines {
            path: path.to_path_buf(),
            reader: BufReader::with_capacity(1 << 20, file),
            line_no: 0,
            progress: Progress::new("reading", total, true, quiet),
            bytes: 0,
        })
    }

    /// Reads the next line into `buf` without its ending; `false` at the end.
    fn next_line(&mut self, buf: &mut Vec<u8>) -> Result<bool> {
        buf.clear();
        let n = self
            .reader
            .read_until(b'\n', buf)
            .map_err(|e| Error::io(&self.path, e))?;
        if n == 0 {
            return Ok(false);
        }
        self.line_no += 1;
        self.bytes += n as u64;
        if self.line_no.is_multiple_of(65_536) {
            self.progress.set(self.bytes);
        }
        while let Some(b'\n' | b'\r') = buf.last() {
            buf.pop();
        }
        Ok(true)
    }

    /// The first line without a UTF-8 byte order mark, or an error if the file is empty.
    fn first_line(&mut self) -> Result<Vec<u8>> {
        let mut buf = Vec::new();
        if !self.next_line(&mut buf)? {
            return Err(Error::data(&self.path, None, None, "the input is empty"));
        }
        if buf.starts_with(UTF8_BOM) {
            buf.drain(..UTF8_BOM.len());
        }
        Ok(buf)
    }

    fn err(&self, column: Option<&str>, msg: impl Into<String>) -> Error {
        Error::data(&self.path, Some(self.line_no), column, msg)
    }
}

/// Reads rows after the header (if any) into a log.
fn read_rows(
    mut lines: Lines,
    delim: Delim,
    cols: Columns,
    first: Option<Vec<u8>>,
) -> Result<EventLog> {
    let mut b = LogBuilder::default();
    let mut pending = first;
    let mut buf = Vec::new();
    loop {
        match pending.take() {
            Some(l) => buf = l,
            None => {
                if !lines.next_line(&mut buf)? {
                    break;
                }
            }
        }
        let line = &buf[..];
        let mut fields = Vec::with_capacity(cols.width);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if !split_fields(line, delim, &mut fields) {
            return Err(lines.err(None, "unterminated quoted field"));
        }
        if fields.len() != cols.width {
            return Err(lines.err(
                None,
                format!("expected {} fields, found {}", cols.width, fields.len()),
            ));
        }
        let field = |i: usize, name: &str| -> Result<&[u8]> {
            let f = fields[i].trim_ascii();
            if f.is_empty() {
                return Err(lines.err(Some(name), "empty value"));
            }
            Ok(f)
        };
        let ts_raw = field(cols.ts, COL_TS)?;
        let ts = parse_timestamp(ts_raw).ok_or_else(|| {
            lines.err(
                Some(COL_TS),
                format!(
                    "cannot parse `{}` as Unix seconds or ISO 8601",
                    String::from_utf8_lossy(ts_raw)
                ),
            )
        })?;
        let lines_ref = &lines;
        let not_utf8 =
            |name: &'static str| move |e: NotUtf8| lines_ref.err(Some(name), e.to_string());
        let user = b
            .user(field(cols.user, COL_USER)?)
            .map_err(not_utf8(COL_USER))?;
        let item = b
            .item(field(cols.item, COL_ITEM)?)
            .map_err(not_utf8(COL_ITEM))?;
        let session = match cols.session {
            Some(i) => b
                .session(user, field(i, COL_SESSION)?)
                .map_err(not_utf8(COL_SESSION))?,
            None => NO_SESSION,
        };
        b.events_read += 1;
        b.push(Event {
            user,
            session,
            item,
            ts,
        });
    }
    lines.progress.finish();
    b.finish(&lines.path)
}

/// Refuses a header in which column `name` appears more than once (which one would be read is
/// a guess).
fn check_single(lines: &Lines, names: &[String], name: &str) -> Result<()> {
    let at: Vec<String> = names
        .iter()
        .enumerate()
        .filter(|(_, n)| *n == name)
        .map(|(i, _)| (i + 1).to_string())
        .collect();
    if at.len() > 1 {
        return Err(lines.err(
            Some(name),
            format!(
                "column `{name}` appears {} times in the header (fields {})",
                at.len(),
                at.join(", ")
            ),
        ));
    }
    Ok(())
}

/// Reads an `interactions` file: CSV or TSV (tab if the header has a tab) with a header naming
/// `user_id`, `item_id`, `timestamp` and optionally `session_id` (any order, other columns
/// ignored); timestamps as Unix seconds or ISO 8601.
pub fn read_interactions(path: &Path, quiet: bool) -> Result<EventLog> {
    let mut lines = Lines::open(path, quiet)?;
    let header = lines.first_line()?;
    let delim = Delim::Byte(if header.contains(&b'\t') { b'\t' } else { b',' });
    let mut names = Vec::new();
    if !split_fields(&header, delim, &mut names) {
        return Err(lines.err(None, "unterminated quoted field in the header"));
    }
    let names: Vec<String> = names
        .iter()
        .map(|n| String::from_utf8_lossy(n.trim_ascii()).to_ascii_lowercase())
        .collect();
    for name in [COL_USER, COL_ITEM, COL_TS, COL_SESSION] {
        check_single(&lines, &names, name)?;
    }
    let find = |name: &str| names.iter().position(|n| n == name);
    let need = |name: &str| {
        find(name).ok_or_else(|| {
            lines.err(
                Some(name),
                format!("missing column `{name}` in header {names:?}"),
            )
        })
    };
    let cols = Columns {
        user: need(COL_USER)?,
        item: need(COL_ITEM)?,
        ts: need(COL_TS)?,
        session: find(COL_SESSION),
        width: names.len(),
    };
    read_rows(lines, delim, cols, None)
}

/// Reads a GroupLens MovieLens ratings file, detected from its first line: `ratings.csv`
/// (header `userId,movieId,rating,timestamp`), `u.data` (tab-separated, no header: user, item,
/// rating, seconds) or `ratings.dat` (`user::item::rating::seconds`). Ratings are ignored.
pub fn read_movielens(path: &Path, quiet: bool) -> Result<EventLog> {
    let mut lines = Lines::open(path, quiet)?;
    let first = lines.first_line()?;
    let fixed = Columns {
        user: 0,
        item: 1,
        ts: 3,
        session: None,
        width: 4,
    };
    let lower = String::from_utf8_lossy(&first).to_ascii_lowercase();
    if lower.starts_with("userid") {
        let names: Vec<String> = lower.split(',').map(|n| n.trim().to_string()).collect();
        for name in ["userid", "movieid", "timestamp"] {
            check_single(&lines, &names, name)?;
        }
        let need = |name: &str| {
            names.iter().position(|n| *n == name).ok_or_else(|| {
                lines.err(
                    Some(name),
                    format!("missing column `{name}` in `ratings.csv` header"),
                )
            })
        };
        let cols = Columns {
            user: need("userid")?,
            item: need("movieid")?,
            ts: need("timestamp")?,
            session: None,
            width: names.len(),
        };
        read_rows(lines, Delim::Byte(b','), cols, None)
    } else if first.windows(2).any(|w| w == b"::") {
        read_rows(lines, Delim::DoubleColon, fixed, Some(first))
    } else if first.contains(&b'\t') {
        read_rows(lines, Delim::Byte(b'\t'), fixed, Some(first))
    } else {
        Err(lines.err(
            None,
            "not a MovieLens ratings file: expected a `ratings.csv` header \
             (userId,movieId,rating,timestamp), `u.data` (user<TAB>item<TAB>rating<TAB>seconds) \
             or `ratings.dat` (user::item::rating::seconds)",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_quoted_fields() {
        let mut out = Vec::new();
        assert!(split_fields(
            b"a,\"b,\"\"c\"\"\",d",
            Delim::Byte(b','),
            &mut out
        ));
        let got: Vec<&[u8]> = out.iter().map(|c| c.as_ref()).collect();
        assert_eq!(got, vec![&b"a"[..], b"b,\"c\"", b"d"]);
        assert!(!split_fields(b"a,\"b", Delim::Byte(b','), &mut out));
        assert!(split_fields(b"1::2::5::9", Delim::DoubleColon, &mut out));
        assert_eq!(out.len(), 4);
    }
}
