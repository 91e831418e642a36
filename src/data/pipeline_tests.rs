//! The pipeline's result does not depend on how its users are cut into ranges.

use super::*;
use crate::data::events::Event;

/// 40 users with up to 3 sessions each, items and times from a small generator, with ties in
/// time, repeats of an item and sessions that give no pair; with and without session names.
fn log(with_sessions: bool) -> EventLog {
    let mut rng = Rng::new(7);
    let mut log = EventLog {
        users: (0..40).map(|u| format!("user{u}")).collect(),
        items: (0..30).map(|i| format!("item{i}")).collect(),
        events_read: 0,
        ..Default::default()
    };
    for round in 0..600 {
        let user = rng.below(40) as u32;
        let session = match with_sessions {
            true => {
                let name = format!("s{user}-{}", rng.below(3));
                match log.sessions.iter().position(|s| *s == name) {
                    Some(i) => i as u32,
                    None => {
                        log.sessions.push(name);
                        log.sessions.len() as u32 - 1
                    }
                }
            }
            false => NO_SESSION,
        };
        log.events.push(Event {
            user,
            session,
            item: rng.below(12) as u32 + u32::from(round % 5 == 0) * 12,
            ts: 1_000 + (rng.below(400) as i64) * 30,
        });
    }
    log.events_read = log.events.len() as u64;
    log
}

#[test]
fn the_result_does_not_depend_on_the_chunks() {
    for with_sessions in [true, false] {
        for gap in [None, Some(900)] {
            let cfg = PipelineConfig {
                k: 2,
                q: 3,
                max_prefix_len: 4,
                session_gap: gap,
                ..Default::default()
            };
            let one = run_in_chunks(log(with_sessions), &cfg, 1).unwrap();
            let st = &one.stages;
            assert!(st.sessions >= 40 && st.pairs_dropped_same_time > 0 && st.pairs_revisit > 0);
            assert!(
                one.windows.iter().all(|w| !w.is_empty()),
                "{:?}",
                one.splits
            );
            let one = format!("{one:?}");
            for n in [2, 7, 64] {
                let many = format!("{:?}", run_in_chunks(log(with_sessions), &cfg, n).unwrap());
                assert_eq!(
                    many, one,
                    "{n} chunks, sessions {with_sessions}, gap {gap:?}"
                );
            }
        }
    }
}
