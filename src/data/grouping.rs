//! The events of a log grouped for the pipeline ([`super::pipeline`]): by base session, and the
//! groups of each user side by side.

use super::events::{Event, EventLog, NO_SESSION};
use rayon::prelude::*;

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
    // The events of a group come in runs (a session's events inside one course of a XuetangX
    // log are side by side): counted and moved run by run, with one look-up per run.
    let runs = || log.events.chunk_by(|a, b| key(a) == key(b));
    for run in runs() {
        let (g, u) = (key(&run[0]), run[0].user as usize);
        len[g] += run.len();
        user[g] = u as u32;
        per_user[u] += run.len();
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
    for run in runs() {
        let g = key(&run[0]);
        let to = &mut events[at[g]..at[g] + run.len()];
        for (t, e) in to.iter_mut().zip(run) {
            *t = (e.ts, remap[e.item as usize]);
        }
        at[g] += run.len();
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

/// Sorts user numbers by their names (byte order), each held beside the first 8 bytes of its
/// name (zero-padded, big-endian), which order the names wherever they differ; only equal heads
/// read the names.
pub(super) fn sort_by_name(users: &mut [u32], names: &[String]) {
    let head = |u: u32| {
        let name = names[u as usize].as_bytes();
        let mut b = [0u8; 8];
        let n = name.len().min(8);
        b[..n].copy_from_slice(&name[..n]);
        u64::from_be_bytes(b)
    };
    let mut keyed: Vec<(u64, u32)> = users.par_iter().map(|&u| (head(u), u)).collect();
    keyed.par_sort_unstable_by(|a, b| {
        (a.0.cmp(&b.0)).then_with(|| names[a.1 as usize].cmp(&names[b.1 as usize]))
    });
    for (u, (_, k)) in users.iter_mut().zip(keyed) {
        *u = k;
    }
}

#[cfg(test)]
mod tests {
    use super::sort_by_name;

    /// The order of a plain sort of the names, on names that tie on their first 8 bytes, are
    /// prefixes of one another, hold zero bytes (which the padding also uses) or are not ASCII.
    #[test]
    fn users_sort_as_their_names_do() {
        let names: Vec<String> = [
            "user-0001-b",
            "user-0001-a",
            "user-0001",
            "user-000",
            "u",
            "",
            "ab",
            "ab\0",
            "ab\0\0\0\0\0\0\0",
            "ab\0x",
            "é",
            "e\u{301}",
            "zz",
            "10",
            "9",
            "1000000000000",
            "100000000000",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let mut users: Vec<u32> = (0..names.len() as u32).rev().collect();
        let mut want = users.clone();
        want.sort_by(|&a, &b| names[a as usize].cmp(&names[b as usize]));
        sort_by_name(&mut users, &names);
        assert_eq!(users, want);
    }
}
