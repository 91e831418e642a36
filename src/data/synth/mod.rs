//! A synthetic activity log that behaves like MOOC enrolment data (`recmaml synth`).
//!
//! The model (`user.rs`):
//! - Courses fall into topics (50 per topic); inside a topic they have an order (`rank`, intro
//!   first), and popularity falls off Zipf-like with rank and with the topic's own rank.
//! - Each user enrolls in a small set of courses that grows over time: the first when they
//!   arrive, more now and then. A new enrolment follows the user's topic preference, which
//!   drifts (to a neighbouring topic, or a popular one): the next course of the topic in its
//!   order, or a popular course of the topic, or (noise) any popular course. A course stays
//!   active for some weeks after enrolment.
//! - A session is a visit to the platform. Most visit one course; the others move among the
//!   user's active courses (A, B, A, C, ...; by the user's affinity to each), sometimes entering
//!   a new one. Users differ in engagement, which scales their number of sessions and the length
//!   of their sessions (heavy-tailed both).
//! - Each course visit is a burst of events (some of kinds that `prepare` filters out), seconds
//!   apart, occasionally within the same second.
//!
//! The constants are calibrated against the published statistics of the real XuetangX log
//! (share of users with pairs, sessions per user, prefix-length percentiles, share of users with
//! K+Q pairs, popularity Acc@1); the README lists targets and achieved values.
//!
//! Both formats hold the same events in the same order: course by course, then user, session,
//! time (the nesting of the XuetangX file). The `interactions` file holds only the kept events
//! (timestamps in Unix seconds, `session_id` the session hash), so `prepare` gives the same
//! episodes from either.

mod user;

use super::time::write_iso;
use super::xuetangx::is_kept;
use crate::error::{Error, Result};
use crate::rng::Rng;
use crate::util::Progress;
use std::fmt::Write as _;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// Output formats of `synth`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SynthFormat {
    /// CSV `user_id,item_id,timestamp,session_id` (kept events only).
    Interactions,
    /// XuetangX raw activity JSON.
    Xuetangx,
}

/// What `synth` writes.
#[derive(Clone, Debug, PartialEq)]
pub struct SynthOptions {
    /// The file to write.
    pub out: PathBuf,
    /// Its format.
    pub format: SynthFormat,
    /// Number of users.
    pub users: usize,
    /// Number of courses (items).
    pub items: usize,
    /// Random seed.
    pub seed: u64,
    /// Median number of events per course visit (the real XuetangX log has about 120 events
    /// per session; the default keeps the default file small).
    pub events_per_visit: f64,
    /// No progress display.
    pub quiet: bool,
}

impl SynthOptions {
    /// The default log (interactions CSV), written to `out` without a progress display.
    pub fn new(out: impl Into<PathBuf>) -> Self {
        SynthOptions {
            out: out.into(),
            format: SynthFormat::Interactions,
            users: DEFAULT_USERS,
            items: DEFAULT_ITEMS,
            seed: DEFAULT_SEED,
            events_per_visit: DEFAULT_EVENTS_PER_VISIT,
            quiet: true,
        }
    }
}

/// Default number of users: about the real log's 182,755. About one user in 500 gives a val or
/// test episode, so the default has over 300 of each.
pub const DEFAULT_USERS: usize = 200_000;
/// Default number of courses.
pub const DEFAULT_ITEMS: usize = 1_500;
/// Default random seed.
pub const DEFAULT_SEED: u64 = 20_260_107;
/// Default median number of events per course visit.
pub const DEFAULT_EVENTS_PER_VISIT: f64 = 3.0;
/// Courses per topic.
pub const TOPIC_SIZE: usize = 50;
/// First second of the simulated period (2017-02-01T00:00:00Z) ...
const START: i64 = 1_485_907_200;
/// ... and its length (181 days, to 2017-08-01).
const PERIOD: i64 = 181 * 86_400;

const KEPT_TYPES: [&str; 8] = [
    "load_video",
    "video_play",
    "pause_video",
    "seek_video",
    "problem_check",
    "problem_get",
    "speed_change_video",
    "load_courseware",
];
const OTHER_TYPES: [&str; 4] = [
    "click_info",
    "close_courseware",
    "click_forum",
    "click_about",
];

/// The course id of course `c` (topic `c / 50`, rank `c % 50` inside the topic).
pub fn course_id(c: usize) -> String {
    format!(
        "course-v1:T{:03}X+{:03}+2017_T1",
        c / TOPIC_SIZE,
        c % TOPIC_SIZE
    )
}

/// The topic of a course id written by [`course_id`].
pub fn topic_of(course: &str) -> Option<usize> {
    course.strip_prefix("course-v1:T")?.get(..3)?.parse().ok()
}

/// The user id of user `u`.
fn user_id(u: usize) -> String {
    (1_000_000 + u).to_string()
}

/// One generated event.
#[derive(Clone, Copy)]
struct Ev {
    course: u32,
    user: u32,
    session: u32,
    kind: u8,
    ts: i64,
}

fn kind_name(k: u8) -> &'static str {
    let k = k as usize;
    if k < KEPT_TYPES.len() {
        KEPT_TYPES[k]
    } else {
        OTHER_TYPES[k - KEPT_TYPES.len()]
    }
}

/// A 32-hex-digit session hash for session `s`.
fn session_hash(seed: u64, s: u32) -> String {
    let mut r = Rng::new(
        seed.wrapping_add(0xA5A5_0000_0000)
            .wrapping_add(u64::from(s)),
    );
    format!("{:016x}{:016x}", r.next_u64(), r.next_u64())
}

/// What `synth` wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SynthSummary {
    pub users: usize,
    pub courses: usize,
    pub sessions: usize,
    /// All events generated (for `interactions`, only the kept ones are written).
    pub events: usize,
    pub kept_events: usize,
    pub bytes: u64,
}

/// Generates the log and writes it to `args.out` (via a temporary file renamed at the end).
pub fn run(args: &SynthOptions) -> Result<SynthSummary> {
    if args.users == 0 {
        return Err(Error::config("--users", "must be at least 1"));
    }
    if !(args.events_per_visit >= 2.0 && args.events_per_visit <= 10_000.0) {
        return Err(Error::config("--events-per-visit", "must be in [2, 10000]"));
    }
    if args.items < 2 {
        return Err(Error::config("--items", "must be at least 2"));
    }
    let w = user::World::new(args.items);
    let mut events = Vec::new();
    let mut next_session = 0u32;
    let mut progress = Progress::new("generating", args.users as u64, false, args.quiet);
    for u in 0..args.users {
        user::gen_user(
            &w,
            u,
            args.seed,
            args.events_per_visit,
            &mut next_session,
            &mut events,
        );
        if u % 4096 == 0 {
            progress.set(u as u64);
        }
    }
    progress.finish();
    // Course-major order, stable: (course, user, session, time) as generated.
    let mut start = vec![0usize; w.n_courses() + 1];
    for e in &events {
        start[e.course as usize + 1] += 1;
    }
    for c in 0..w.n_courses() {
        start[c + 1] += start[c];
    }
    let mut order = vec![0u32; events.len()];
    for (i, e) in events.iter().enumerate() {
        order[start[e.course as usize]] = i as u32;
        start[e.course as usize] += 1;
    }
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let tmp = tmp_path(&args.out);
    if let Some(name) = args.out.file_name() {
        let dir = tmp.parent().filter(|d| !d.as_os_str().is_empty());
        let dir = dir.unwrap_or(Path::new("."));
        let stale = crate::util::remove_stale_temporaries_of(dir, &name.to_string_lossy())?;
        for p in stale {
            eprintln!("removed {}, left by a run that was stopped", p.display());
        }
    }
    let res = write_log(&tmp, args, &events, &order);
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res?;
    std::fs::rename(&tmp, &args.out).map_err(|e| Error::io(&args.out, e))?;
    let bytes = std::fs::metadata(&args.out)
        .map_err(|e| Error::io(&args.out, e))?
        .len();
    Ok(SynthSummary {
        users: args.users,
        courses: w.n_courses(),
        sessions: next_session as usize,
        events: events.len(),
        kept_events: events
            .iter()
            .filter(|e| (e.kind as usize) < KEPT_TYPES.len())
            .count(),
        bytes,
    })
}

fn tmp_path(out: &Path) -> PathBuf {
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    out.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

fn write_log(path: &Path, args: &SynthOptions, events: &[Ev], order: &[u32]) -> Result<()> {
    let file = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let mut progress = Progress::new("writing", order.len() as u64, false, args.quiet);
    let mut line = String::new();
    let ioerr = |e| Error::io(path, e);
    let courses: Vec<String> = (0..args.items).map(course_id).collect();
    match args.format {
        SynthFormat::Interactions => {
            out.write_all(b"user_id,item_id,timestamp,session_id\n")
                .map_err(ioerr)?;
            for (n, &i) in order.iter().enumerate() {
                let e = events[i as usize];
                if !is_kept(kind_name(e.kind).as_bytes()) {
                    continue;
                }
                line.clear();
                let _ = writeln!(
                    line,
                    "{},{},{},{}",
                    user_id(e.user as usize),
                    courses[e.course as usize],
                    e.ts,
                    session_hash(args.seed, e.session)
                );
                out.write_all(line.as_bytes()).map_err(ioerr)?;
                if n % 1_000_000 == 0 {
                    progress.set(n as u64);
                }
            }
        }
        SynthFormat::Xuetangx => {
            out.write_all(b"[").map_err(ioerr)?;
            let mut first_course = true;
            for chunk in
                order.chunk_by(|&a, &b| events[a as usize].course == events[b as usize].course)
            {
                let course = events[chunk[0] as usize].course as usize;
                line.clear();
                if !first_course {
                    line.push_str(",\n");
                }
                first_course = false;
                let _ = write!(line, "[\"{}\", {{", courses[course]);
                for (ui, user) in chunk
                    .chunk_by(|&a, &b| events[a as usize].user == events[b as usize].user)
                    .enumerate()
                {
                    let sep = if ui > 0 { ", " } else { "" };
                    let _ = write!(
                        line,
                        "{sep}\"{}\": {{",
                        user_id(events[user[0] as usize].user as usize)
                    );
                    for (si, sess) in user
                        .chunk_by(|&a, &b| events[a as usize].session == events[b as usize].session)
                        .enumerate()
                    {
                        let sep = if si > 0 { ", " } else { "" };
                        let _ = write!(
                            line,
                            "{sep}\"{}\": [",
                            session_hash(args.seed, events[sess[0] as usize].session)
                        );
                        for (ei, &i) in sess.iter().enumerate() {
                            let e = events[i as usize];
                            let sep = if ei > 0 { ", " } else { "" };
                            let _ = write!(line, "{sep}[\"{}\", \"", kind_name(e.kind));
                            write_iso(&mut line, e.ts);
                            line.push_str("\"]");
                        }
                        line.push(']');
                    }
                    line.push('}');
                    if line.len() > 1 << 16 {
                        out.write_all(line.as_bytes()).map_err(ioerr)?;
                        line.clear();
                    }
                }
                line.push_str("}]");
                out.write_all(line.as_bytes()).map_err(ioerr)?;
                progress.inc(chunk.len() as u64);
            }
            out.write_all(b"]\n").map_err(ioerr)?;
        }
    }
    out.flush().map_err(ioerr)?;
    progress.finish();
    Ok(())
}
