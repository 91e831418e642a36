//! The events of a log grouped for the pipeline ([`super::pipeline`]): by base session, and the
//! groups of each user side by side.

use super::events::{Event, EventLog, NO_SESSION};

/// Events grouped by base session (the input's session, or the user), input order kept inside a
/// group, and the groups of each user side by side (users in id order, a user's groups in group
/// order), so that a range of users owns a contiguous range of events.
pub(super) struct Grouped {
    /// (ts, item id) of every event.
    pub(super) events: Vec<(i64, u32)>,
    /// Events per group.
    pub(super) len: Vec<usize>,
    /// The user of each group.
    pub(super) user: Vec<u32>,
    /// The non-empty groups, user by user.
    pub(super) order: Vec<u32>,
    /// User `u`'s groups are `order[user_groups[u]..user_groups[u + 1]]`.
    pub(super) user_groups: Vec<usize>,
    /// User `u`'s events are `events[user_events[u]..user_events[u + 1]]`.
    pub(super) user_events: Vec<usize>,
}

/// Exclusive prefix sums of `counts`, with the total appended.
fn offsets(counts: impl IntoIterator<Item = usize>) -> Vec<usize> {
    let mut out = vec![0];
    let mut sum = 0;
    for c in counts {
        sum += c;
        out.push(sum);
    }
    out
}

/// Groups the events with counting sorts.
pub(super) fn group_events(log: &EventLog, remap: &[u32]) -> Grouped {
    let has_sessions = log.events.first().is_some_and(|e| e.session != NO_SESSION);
    let n_groups = if has_sessions {
        log.sessions.len()
    } else {
        log.users.len()
    };
    let key = |e: &Event| {
        if has_sessions {
            e.session as usize
        } else {
            e.user as usize
        }
    };
    let n_users = log.users.len();
    let mut len = vec![0usize; n_groups];
    let mut user = vec![0u32; n_groups];
    let mut per_user = vec![0usize; n_users];
    for e in &log.events {
        len[key(e)] += 1;
        user[key(e)] = e.user;
        per_user[e.user as usize] += 1;
    }
    let user_events = offsets(per_user);
    let mut groups_of = vec![0usize; n_users];
    for g in (0..n_groups).filter(|&g| len[g] > 0) {
        groups_of[user[g] as usize] += 1;
    }
    let user_groups = offsets(groups_of);
    let mut fill = user_groups.clone();
    let mut order = vec![0u32; user_groups[n_users]];
    for g in (0..n_groups).filter(|&g| len[g] > 0) {
        let u = user[g] as usize;
        order[fill[u]] = g as u32;
        fill[u] += 1;
    }
    let mut at = vec![0usize; n_groups];
    let mut next = 0;
    for &g in &order {
        at[g as usize] = next;
        next += len[g as usize];
    }
    let mut events = vec![(0i64, 0u32); log.events.len()];
    for e in &log.events {
        let g = key(e);
        events[at[g]] = (e.ts, remap[e.item as usize]);
        at[g] += 1;
    }
    Grouped {
        events,
        len,
        user,
        order,
        user_groups,
        user_events,
    }
}
