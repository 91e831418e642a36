//! One user's activity: enrolments, sessions that interleave the active courses, and the
//! events of each course visit.

use super::{Ev, KEPT_TYPES, OTHER_TYPES, PERIOD, START, TOPIC_SIZE};
use crate::rng::Rng;

/// Popularity of topics: weight `1 / (t + 1)^TOPIC_ZIPF` for the topic of rank `t`.
const TOPIC_ZIPF: f64 = 0.3;
/// Popularity inside a topic: weight `1 / (r + 1)^RANK_ZIPF` for the course of rank `r`.
const RANK_ZIPF: f64 = 0.5;
/// A user's engagement `exp(ENGAGEMENT_SIGMA * N(0, 1))` scales their number of sessions and
/// the length of their sessions.
const ENGAGEMENT_SIGMA: f64 = 1.0;
/// Sessions per user: log-normal, median `SESSIONS_MEDIAN * engagement^SESSIONS_EXP`.
const SESSIONS_MEDIAN: f64 = 1.6;
const SESSIONS_SIGMA: f64 = 0.9;
const SESSIONS_EXP: f64 = 0.25;
const SESSIONS_CAP: usize = 300;
/// Share of sessions that visit a single course.
const SINGLE_COURSE: f64 = 0.81;
/// Other sessions visit `1 + X` courses in a row (consecutive repeats not counted), X
/// log-normal with median `SWITCHES_MEDIAN * engagement^SWITCHES_EXP`.
const SWITCHES_MEDIAN: f64 = 1.2;
const SWITCHES_SIGMA: f64 = 1.3;
const SWITCHES_EXP: f64 = 0.2;
const SWITCHES_CAP: usize = 430;
/// Chance that a session starts in a new course rather than an active one ...
const NEW_AT_START: f64 = 0.15;
/// ... and that a later step of a session enters a new course.
const NEW_IN_SESSION: f64 = 0.08;
/// A new enrolment: the next course of the current topic in its order (intro first), a popular
/// course of the topic, or (noise) a popular course of a popular topic.
const NEXT_IN_ORDER: f64 = 0.5;
const NOISE: f64 = 0.05;
/// Chance that the topic preference drifts before an enrolment (after the first).
const DRIFT: f64 = 0.3;
/// A course stays active `COURSE_DAYS_MIN + Exp(COURSE_DAYS_MEAN)` days after enrolment.
const COURSE_DAYS_MIN: f64 = 20.0;
const COURSE_DAYS_MEAN: f64 = 60.0;
/// Mean days between sessions (plus an hour).
const GAP_DAYS_MEAN: f64 = 3.0;
/// How much a user prefers one active course over another: `exp(AFFINITY_SIGMA * N(0, 1))`.
const AFFINITY_SIGMA: f64 = 0.8;
const DAY: f64 = 86_400.0;

/// Popularity tables and sizes.
pub(super) struct World {
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

/// Exponential with the given mean.
fn exponential(rng: &mut Rng, mean: f64) -> f64 {
    -(1.0 - rng.next_f64()).ln() * mean
}

/// Discretised log-normal, at least 1.
fn lognormal_count(rng: &mut Rng, median: f64, sigma: f64, cap: usize) -> usize {
    let x = median * (sigma * rng.normal()).exp();
    (x.round() as usize).clamp(1, cap)
}

impl World {
    pub(super) fn new(n_courses: usize) -> Self {
        let n_topics = n_courses.div_ceil(TOPIC_SIZE);
        World {
            n_courses,
            n_topics,
            topic_cdf: cdf((0..n_topics).map(|t| 1.0 / (t as f64 + 1.0).powf(TOPIC_ZIPF))),
            rank_cdf: cdf((0..TOPIC_SIZE).map(|r| 1.0 / (r as f64 + 1.0).powf(RANK_ZIPF))),
        }
    }

    pub(super) fn n_courses(&self) -> usize {
        self.n_courses
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

/// A course the user enrolled in.
struct Enrolment {
    course: usize,
    /// Active until this second.
    end: i64,
    affinity: f64,
}

/// One user's state.
struct Learner<'w> {
    w: &'w World,
    rng: Rng,
    topic: usize,
    /// Per topic, the highest rank enrolled in (`usize::MAX`: none).
    reached: Vec<usize>,
    enrolled: Vec<Enrolment>,
}

impl Learner<'_> {
    /// Enrolls in a new course at time `t` and returns it.
    fn enroll(&mut self, t: i64) -> usize {
        let (w, rng) = (self.w, &mut self.rng);
        if !self.enrolled.is_empty() && rng.next_f64() < DRIFT {
            self.topic = w.drift(self.topic, rng);
        }
        let r = rng.next_f64();
        let course = if r < NOISE {
            w.popular_in(draw(&w.topic_cdf, rng), rng)
        } else if r < NOISE + NEXT_IN_ORDER {
            let next = self.reached[self.topic].wrapping_add(1);
            if next < w.topic_len(self.topic) {
                self.topic * TOPIC_SIZE + next
            } else {
                w.popular_in(self.topic, rng)
            }
        } else {
            w.popular_in(self.topic, rng)
        };
        let (ct, rank) = (course / TOPIC_SIZE, course % TOPIC_SIZE);
        if self.reached[ct] == usize::MAX || rank > self.reached[ct] {
            self.reached[ct] = rank;
        }
        let days = COURSE_DAYS_MIN + exponential(rng, COURSE_DAYS_MEAN);
        self.enrolled.push(Enrolment {
            course,
            end: t + (days * DAY) as i64,
            affinity: (AFFINITY_SIGMA * rng.normal()).exp(),
        });
        course
    }

    /// The next course of a session at time `t`, after `cur` (`usize::MAX` at the start): an
    /// active course other than `cur` by affinity, or sometimes (always, when there is none) a
    /// new enrolment.
    fn next_course(&mut self, t: i64, cur: usize) -> usize {
        let p_new = if cur == usize::MAX {
            NEW_AT_START
        } else {
            NEW_IN_SESSION
        };
        let open = |e: &&Enrolment| e.end > t && e.course != cur;
        let total: f64 = self.enrolled.iter().filter(open).map(|e| e.affinity).sum();
        if total == 0.0 || self.rng.next_f64() < p_new {
            return self.enroll(t);
        }
        let mut x = self.rng.next_f64() * total;
        let mut pick = usize::MAX;
        for e in self.enrolled.iter().filter(open) {
            pick = e.course;
            x -= e.affinity;
            if x <= 0.0 {
                break;
            }
        }
        pick
    }
}

/// One user's events, appended to `out`; sessions numbered from `*next_session`.
pub(super) fn gen_user(
    w: &World,
    u: usize,
    seed: u64,
    epv: f64,
    next_session: &mut u32,
    out: &mut Vec<Ev>,
) {
    let mut rng = Rng::new(seed ^ (u as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let engagement = (ENGAGEMENT_SIGMA * rng.normal()).exp();
    let n_sessions = lognormal_count(
        &mut rng,
        SESSIONS_MEDIAN * engagement.powf(SESSIONS_EXP),
        SESSIONS_SIGMA,
        SESSIONS_CAP,
    );
    let mut t = START + rng.below(PERIOD as u64 * 2 / 3) as i64;
    let topic = draw(&w.topic_cdf, &mut rng);
    let mut l = Learner {
        w,
        rng,
        topic,
        reached: vec![usize::MAX; w.n_topics],
        enrolled: Vec::new(),
    };
    for s in 0..n_sessions {
        if s > 0 {
            t += 3_600 + (exponential(&mut l.rng, GAP_DAYS_MEAN) * DAY) as i64;
        }
        let session = *next_session;
        *next_session += 1;
        let length = if l.rng.next_f64() < SINGLE_COURSE {
            1
        } else {
            1 + lognormal_count(
                &mut l.rng,
                SWITCHES_MEDIAN * engagement.powf(SWITCHES_EXP),
                SWITCHES_SIGMA,
                SWITCHES_CAP,
            )
        };
        let mut cur = usize::MAX;
        for _ in 0..length {
            let course = l.next_course(t, cur);
            if course == cur {
                continue; // a new enrolment that the user already had: no move
            }
            cur = course;
            let rng = &mut l.rng;
            let cap = 60usize.max((20.0 * epv) as usize);
            let n_events = 1 + lognormal_count(rng, epv - 1.0, 0.8, cap);
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
