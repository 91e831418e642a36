//! A synthetic activity log that behaves like MOOC enrolment data (`recmaml synth`).
//!
//! The model:
//! - Courses fall into topics (50 per topic); inside a topic they have an order (`rank`, intro
//!   first), and popularity falls off Zipf-like with rank and with the topic's own rank.
//! - A user has a current topic and, per topic, how far they got. Each step of a session goes
//!   back to the previous course (sometimes), on to the next course of the current topic (most
//!   often), to a popular course of the topic, or anywhere (noise).
//! - Topic preference drifts: between sessions the user often moves to a neighbouring or new
//!   topic, and sometimes within a session. So recent items predict the next item better than
//!   old ones.
//! - Session lengths (courses visited) have median about 3 and a long tail; users' numbers of
//!   sessions are heavy-tailed; each visit is a burst of events (some of kinds that `prepare`
//!   filters out), seconds apart, occasionally within the same second.
//!
//! Both formats hold the same events in the same order: course by course, then user, session,
//! time (the nesting of the XuetangX file). The `interactions` file holds only the kept events
//! (timestamps in Unix seconds, `session_id` the session hash), so `prepare` gives the same
//! episodes from either.

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

/// Default number of users.
pub const DEFAULT_USERS: usize = 15_000;
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

/// Popularity tables and sizes.
struct World {
    n_courses: usize,
    n_topics: usize,
    /// Cumulative topic weights.
    topic_cdf: Vec<f64>,
    /// Cumulative weights over ranks inside a topic.
    rank_cdf: Vec<f64>,
}

fn cdf(weights: impl Iterator<Item = f64>) -> Vec<f64> {
    let mut acc = 0.0;
    let mut v: Vec<f64> = weights
        .map(|w| {
            acc += w;
            acc
        })
        .collect();
    for x in &mut v {
        *x /= acc;
    }
    v
}

fn draw(cdf: &[f64], rng: &mut Rng) -> usize {
    let u = rng.next_f64();
    cdf.partition_point(|&c| c <= u).min(cdf.len() - 1)
}

impl World {
    fn new(n_courses: usize) -> Self {
        let n_topics = n_courses.div_ceil(TOPIC_SIZE);
        World {
            n_courses,
            n_topics,
            topic_cdf: cdf((0..n_topics).map(|t| 1.0 / (t as f64 + 1.0).powf(0.7))),
            rank_cdf: cdf((0..TOPIC_SIZE).map(|r| 1.0 / (r as f64 + 1.0).powf(0.9))),
        }
    }

    fn topic_len(&self, t: usize) -> usize {
        TOPIC_SIZE.min(self.n_courses - t * TOPIC_SIZE)
    }

    fn popular_in(&self, t: usize, rng: &mut Rng) -> usize {
        let len = self.topic_len(t);
        let r = loop {
            let r = draw(&self.rank_cdf, rng);
            if r < len {
                break r;
            }
        };
        t * TOPIC_SIZE + r
    }

    /// A topic near `t` (drift), or a popular one.
    fn drift(&self, t: usize, rng: &mut Rng) -> usize {
        if rng.next_f64() < 0.7 {
            let step = 1 + rng.below(2) as usize;
            if rng.next_f64() < 0.5 {
                (t + step) % self.n_topics
            } else {
                (t + self.n_topics - step) % self.n_topics
            }
        } else {
            draw(&self.topic_cdf, rng)
        }
    }
}

/// Discretised log-normal, at least 1.
fn lognormal_count(rng: &mut Rng, median: f64, sigma: f64, cap: usize) -> usize {
    let x = median * (sigma * rng.normal()).exp();
    (x.round() as usize).clamp(1, cap)
}

/// One user's events, appended to `out`; sessions numbered from `*next_session`.
fn gen_user(w: &World, u: usize, seed: u64, epv: f64, next_session: &mut u32, out: &mut Vec<Ev>) {
    let mut rng = Rng::new(seed ^ (u as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    // Heavy-tailed activity: most users have one or two sessions, a few have dozens.
    let n_sessions = lognormal_count(&mut rng, 1.6, 1.1, 80);
    let mut t = START + rng.below(PERIOD as u64 * 2 / 3) as i64;
    let mut topic = draw(&w.topic_cdf, &mut rng);
    let mut reached = vec![usize::MAX; w.n_topics];
    for s in 0..n_sessions {
        if s > 0 {
            t += 3_600 + (rng.next_f64().max(1e-12).ln().abs() * 2.5 * 86_400.0) as i64;
            if rng.next_f64() < 0.45 {
                topic = w.drift(topic, &mut rng);
            }
        }
        let session = *next_session;
        *next_session += 1;
        let length = lognormal_count(&mut rng, 2.2, 1.15, 400);
        let (mut prev, mut cur) = (usize::MAX, usize::MAX);
        for _ in 0..length {
            if rng.next_f64() < 0.08 {
                topic = w.drift(topic, &mut rng);
            }
            let r = rng.next_f64();
            let course = if r < 0.12 && prev != usize::MAX {
                prev
            } else if r < 0.72 {
                let next = reached[topic].wrapping_add(1);
                if next < w.topic_len(topic) {
                    topic * TOPIC_SIZE + next
                } else {
                    w.popular_in(topic, &mut rng)
                }
            } else if r < 0.95 {
                w.popular_in(topic, &mut rng)
            } else {
                w.popular_in(draw(&w.topic_cdf, &mut rng), &mut rng)
            };
            let ct = course / TOPIC_SIZE;
            let rank = course % TOPIC_SIZE;
            if reached[ct] == usize::MAX || rank > reached[ct] {
                reached[ct] = rank;
            }
            (prev, cur) = (cur, course);
            let cap = 60usize.max((20.0 * epv) as usize);
            let n_events = 1 + lognormal_count(&mut rng, epv - 1.0, 0.8, cap);
            for _ in 0..n_events {
                let kind = if rng.next_f64() < 0.62 {
                    rng.below(KEPT_TYPES.len() as u64) as u8
                } else {
                    (KEPT_TYPES.len() + rng.below(OTHER_TYPES.len() as u64) as usize) as u8
                };
                out.push(Ev {
                    course: course as u32,
                    user: u as u32,
                    session,
                    kind,
                    ts: t,
                });
                // Seconds to a few minutes apart; sometimes the same second.
                if rng.next_f64() > 0.06 {
                    t += 1 + rng.below(180) as i64;
                }
            }
        }
    }
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
    let w = World::new(args.items);
    let mut events = Vec::new();
    let mut next_session = 0u32;
    let mut progress = Progress::new("generating", args.users as u64, false, args.quiet);
    for u in 0..args.users {
        gen_user(
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
    let mut start = vec![0usize; w.n_courses + 1];
    for e in &events {
        start[e.course as usize + 1] += 1;
    }
    for c in 0..w.n_courses {
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
        courses: w.n_courses,
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
