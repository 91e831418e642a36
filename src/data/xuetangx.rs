//! The XuetangX raw activity log, streamed: one JSON array
//! `[[course_id, {user_id: {session_hash: [[event_type, iso_ts], ...]}}], ...]`, several GB, never
//! held whole. Events whose type starts with one of [`KEPT_PREFIXES`] are kept; the session is
//! the session hash (which can span several courses).
//!
//! A kept event's timestamp is an ISO 8601 string or Unix seconds, as a number or a string (a
//! fraction is dropped); an event that is not kept has its second field skipped unread. Fields
//! after the timestamp are skipped, whatever JSON they hold. Only whitespace may follow the
//! top-level array. Errors name the line, the byte offset and the place (course, user, session,
//! event).

use super::events::{Event, EventLog, LogBuilder};
use super::json::Scanner;
use super::time::{parse_timestamp, TimestampParser};
use crate::error::{Error, Result};
use crate::util::Progress;
use memchr::memchr3;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// Event types kept, by prefix (as upstream).
pub const KEPT_PREFIXES: [&[u8]; 6] = [
    b"load_",
    b"problem_",
    b"video_",
    b"seek_",
    b"speed_",
    b"pause_",
];

/// Whether an event of this type is kept.
#[inline]
pub fn is_kept(event_type: &[u8]) -> bool {
    KEPT_PREFIXES.iter().any(|p| event_type.starts_with(p))
}

/// Where the reader is, for error messages.
#[derive(Default)]
struct Place {
    /// Courses started so far (1-based number of the current or last one).
    course_no: usize,
    /// Inside course `course_no`'s `[course_id, {users}]` pair.
    in_course: bool,
    course: Vec<u8>,
    user: Vec<u8>,
    session: Vec<u8>,
    event_no: usize,
    /// What is known inside the course: 0 nothing, 1 its id, 2 the user, 3 the session, 4 the
    /// event.
    depth: u8,
}

impl Place {
    /// `None` before the first course (the error's line and byte say where).
    fn describe(&self) -> Option<String> {
        let s = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        if self.course_no == 0 {
            return None;
        }
        if !self.in_course {
            return Some(format!(
                "after course #{} `{}`",
                self.course_no,
                s(&self.course)
            ));
        }
        let mut out = format!("course #{}", self.course_no);
        if self.depth >= 1 {
            out += &format!(" `{}`", s(&self.course));
        }
        if self.depth >= 2 {
            out += &format!(" / user `{}`", s(&self.user));
        }
        if self.depth >= 3 {
            out += &format!(" / session `{}`", s(&self.session));
        }
        if self.depth >= 4 {
            out += &format!(" / event #{}", self.event_no);
        }
        Some(out)
    }
}

/// Files from this size on are read in two halves on two threads (see [`read_with`]).
const SPLIT_MIN: u64 = 64 << 20;

/// Reads a XuetangX activity file into an [`EventLog`], streaming.
pub fn read_xuetangx(path: &Path, quiet: bool) -> Result<EventLog> {
    read_with(path, quiet, SPLIT_MIN)
}

/// [`read_xuetangx`]; a file of at least `split_min` bytes is read in two halves at once when a
/// course boundary can be found near its middle: this thread reads up to it, another reads the
/// rest into its own builder, whose ids are then numbered on in order of first appearance, as
/// one pass would number them ([`LogBuilder::finish_with`]). If the first half does not end exactly there (the bytes that
/// looked like a boundary were inside a string), this thread simply reads on to the end; if the
/// second half fails on its own, it is read again after the first, so that every error is the
/// one a single pass gives, with the same line, byte and place.
fn read_with(path: &Path, quiet: bool, split_min: u64) -> Result<EventLog> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let total = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut sc = Scanner::new(file, path);
    sc.skip_bom()?;
    let mut progress = Progress::new("reading", total, true, quiet);
    let mut b = LogBuilder::default();
    let mut place = Place::default();
    let split = (total >= split_min)
        .then(|| find_split(path, total))
        .flatten();
    // The second half's builder, when it was read on its own.
    let res = std::thread::scope(|s| -> Result<Option<LogBuilder>> {
        let second = split.map(|at| s.spawn(move || second_half(path, at)));
        let stopped = parse(&mut sc, &mut b, &mut place, &mut progress, split)?;
        let (Some(at), Some(second)) = (split.filter(|_| stopped), second) else {
            return Ok(None);
        };
        if let Ok(Ok(next)) = second.join() {
            progress.set(total);
            return Ok(Some(next));
        }
        let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
        file.seek(SeekFrom::Start(at))
            .map_err(|e| Error::io(path, e))?;
        let mut rest = Scanner::resume(file, path, at, sc.line());
        courses(&mut rest, &mut b, &mut place, &mut progress, false, None).map(|_| None)
    });
    progress.finish();
    let next = res.map_err(|e| match e {
        Error::Data {
            file,
            row,
            column: None,
            msg,
        } => Error::Data {
            file,
            row,
            column: place.describe(),
            msg,
        },
        other => other,
    })?;
    if sc.offset() == 0 {
        return Err(Error::data(path, None, None, "the input is empty"));
    }
    match next {
        Some(next) => b.finish_with(next, path),
        None => b.finish(path),
    }
}

/// A byte offset near the middle of the file just after `}]` that is followed by `, ["` (spaces
/// allowed): the end of a course, unless those bytes lie inside a string.
fn find_split(path: &Path, total: u64) -> Option<u64> {
    let mut file = File::open(path).ok()?;
    let start = total / 2;
    file.seek(SeekFrom::Start(start)).ok()?;
    let mut window = Vec::new();
    file.take(1 << 20).read_to_end(&mut window).ok()?;
    // Past whitespace from `j`, the byte `c` must follow; gives the index after it.
    let then = |mut j: usize, c: u8| {
        while window.get(j).is_some_and(u8::is_ascii_whitespace) {
            j += 1;
        }
        (window.get(j) == Some(&c)).then_some(j + 1)
    };
    (0..window.len().saturating_sub(1)).find_map(|i| {
        if &window[i..i + 2] != b"}]" {
            return None;
        }
        let next = then(i + 2, b',')
            .and_then(|j| then(j, b'['))
            .and_then(|j| then(j, b'"'));
        next.map(|_| start + i as u64 + 2)
    })
}

/// The courses from byte `at` (just after a course) to the end, into a builder of their own.
fn second_half(path: &Path, at: u64) -> Result<LogBuilder> {
    let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
    file.seek(SeekFrom::Start(at))
        .map_err(|e| Error::io(path, e))?;
    let mut sc = Scanner::resume(file, path, at, 1);
    let mut b = LogBuilder::default();
    let mut progress = Progress::new("reading", 0, true, true);
    courses(
        &mut sc,
        &mut b,
        &mut Place::default(),
        &mut progress,
        false,
        None,
    )?;
    Ok(b)
}

/// The whole document, or (with `stop`) its courses up to the one that ends exactly at byte
/// `stop`: then returns `true`.
fn parse(
    sc: &mut Scanner<File>,
    b: &mut LogBuilder,
    place: &mut Place,
    progress: &mut Progress,
    stop: Option<u64>,
) -> Result<bool> {
    if sc.peek()?.is_none() {
        return Err(sc.error(None, "the input is empty"));
    }
    sc.expect(b'[', "the top-level array")?;
    courses(sc, b, place, progress, true, stop)
}

/// The courses of the top-level array from the current position (before the first course, or
/// just after one) to the end of the document; or up to the course that ends exactly at byte
/// `stop`, returning `true`.
fn courses(
    sc: &mut Scanner<File>,
    b: &mut LogBuilder,
    place: &mut Place,
    progress: &mut Progress,
    mut first_course: bool,
    stop: Option<u64>,
) -> Result<bool> {
    let mut etype = Vec::new();
    let mut scratch = Vec::new();
    let mut dates = TimestampParser::default();
    while sc.more(b']', &mut first_course)? {
        place.course_no += 1;
        place.in_course = true;
        place.depth = 0;
        sc.expect(b'[', "a [course_id, {users}] pair")?;
        sc.string(&mut place.course)?;
        place.depth = 1;
        let item = b.item(&place.course).map_err(|e| sc.error(None, e))?;
        sc.expect(b',', "a comma after the course id")?;
        sc.expect(b'{', "the users object")?;
        let mut first_user = true;
        while sc.more(b'}', &mut first_user)? {
            place.depth = 1;
            sc.string(&mut place.user)?;
            place.depth = 2;
            let user = b.user(&place.user).map_err(|e| sc.error(None, e))?;
            sc.expect(b':', "a colon")?;
            sc.expect(b'{', "the sessions object")?;
            let mut first_session = true;
            while sc.more(b'}', &mut first_session)? {
                place.depth = 2;
                sc.string(&mut place.session)?;
                place.depth = 3;
                let session = b
                    .session(user, &place.session)
                    .map_err(|e| sc.error(None, e))?;
                sc.expect(b':', "a colon")?;
                sc.expect(b'[', "the events array")?;
                let mut first_event = true;
                place.event_no = 0;
                while sc.more(b']', &mut first_event)? {
                    place.event_no += 1;
                    place.depth = 4;
                    let ts = match simple_event(sc, &mut dates)? {
                        Some(ts) => ts,
                        None => event(sc, &mut etype, &mut scratch)?,
                    };
                    if let Some(ts) = ts {
                        b.push(Event {
                            user,
                            session,
                            item,
                            ts,
                        });
                    }
                    b.events_read += 1;
                }
            }
        }
        place.depth = 1;
        sc.expect(b']', "the end of the [course_id, {users}] pair")?;
        place.in_course = false;
        progress.set(sc.offset());
        if stop == Some(sc.offset()) {
            return Ok(true);
        }
    }
    sc.end()?;
    Ok(false)
}

/// The common event layout read straight from the scanner's buffer: `["TYPE", "VALUE"]` with no
/// escape or newline in either string, no whitespace but one optional space after the comma, and
/// the whole event in the buffer. `Some` with what [`event`] would return (the timestamp of a
/// kept event, `None` for one that is not kept); `None`, nothing consumed, for any other layout
/// or a kept event whose timestamp does not parse, which [`event`] then reads (and reports).
#[inline]
fn simple_event(
    sc: &mut Scanner<File>,
    dates: &mut TimestampParser,
) -> Result<Option<Option<i64>>> {
    if sc.peek()? != Some(b'[') {
        return Ok(None);
    }
    let w = sc.window();
    // The closing quote of the string whose opening quote is at `open`.
    let close = |open: usize| -> Option<usize> {
        if w.get(open) != Some(&b'"') {
            return None;
        }
        let len = memchr3(b'"', b'\\', b'\n', &w[open + 1..])?;
        (w[open + 1 + len] == b'"').then_some(open + 1 + len)
    };
    let Some(t_end) = close(1) else {
        return Ok(None);
    };
    let mut v_open = t_end + 1;
    if w.get(v_open) != Some(&b',') {
        return Ok(None);
    }
    v_open += 1;
    if w.get(v_open) == Some(&b' ') {
        v_open += 1;
    }
    let Some(v_end) = close(v_open) else {
        return Ok(None);
    };
    if w.get(v_end + 1) != Some(&b']') {
        return Ok(None);
    }
    let ts = if is_kept(&w[2..t_end]) {
        match dates.parse(&w[v_open + 1..v_end]) {
            Some(ts) => Some(ts),
            None => return Ok(None),
        }
    } else {
        None
    };
    sc.advance(v_end + 2);
    Ok(Some(ts))
}

/// Reads one `[event_type, timestamp]`; the timestamp (Unix seconds) if the event is kept.
#[inline]
fn event(
    sc: &mut Scanner<File>,
    etype: &mut Vec<u8>,
    scratch: &mut Vec<u8>,
) -> Result<Option<i64>> {
    sc.expect(b'[', "an [event_type, timestamp] pair")?;
    sc.string(etype)?;
    sc.expect(b',', "a comma after the event type")?;
    let keep = is_kept(etype);
    let ts = if keep {
        match sc.peek()? {
            Some(b'"') => sc.string(scratch)?,
            Some(c @ (b'[' | b'{')) => {
                return Err(sc.error(
                    None,
                    format!(
                        "expected the timestamp (a string or a number), found `{}`",
                        c as char
                    ),
                ))
            }
            _ => sc.scalar(scratch)?,
        }
        Some(parse_timestamp(scratch).ok_or_else(|| {
            sc.error(
                None,
                format!(
                    "cannot parse timestamp `{}` (expected ISO 8601 or Unix seconds)",
                    String::from_utf8_lossy(scratch)
                ),
            )
        })?)
    } else {
        sc.skip_value(scratch)?;
        None
    };
    // Tolerate (and ignore) extra fields after the timestamp.
    let mut first = false;
    while sc.more(b']', &mut first)? {
        sc.skip_value(scratch)?;
    }
    Ok(ts)
}

#[cfg(test)]
#[path = "xuetangx_tests.rs"]
mod tests;
