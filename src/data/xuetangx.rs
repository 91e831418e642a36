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
use super::time::parse_timestamp;
use crate::error::{Error, Result};
use crate::util::Progress;
use std::fs::File;
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

/// Reads a XuetangX activity file into an [`EventLog`], streaming.
pub fn read_xuetangx(path: &Path, quiet: bool) -> Result<EventLog> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let total = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut sc = Scanner::new(file, path);
    sc.skip_bom()?;
    let mut progress = Progress::new("reading", total, true, quiet);
    let mut b = LogBuilder::default();
    let mut place = Place::default();
    let res = parse(&mut sc, &mut b, &mut place, &mut progress);
    progress.finish();
    res.map_err(|e| match e {
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
    b.finish(path)
}

fn parse(
    sc: &mut Scanner<File>,
    b: &mut LogBuilder,
    place: &mut Place,
    progress: &mut Progress,
) -> Result<()> {
    if sc.peek()?.is_none() {
        return Err(sc.error(None, "the input is empty"));
    }
    let mut etype = Vec::new();
    let mut scratch = Vec::new();
    sc.expect(b'[', "the top-level array")?;
    let mut first_course = true;
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
                    if let Some(ts) = event(sc, &mut etype, &mut scratch)? {
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
    }
    sc.end()
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
