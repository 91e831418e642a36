//! The two-thread read against one pass over the same bytes: the same log when the split is a
//! course boundary and when it only looks like one (inside a string), and the same error, with
//! the same line, byte and place, whichever half it is in.

use super::*;

/// `courses` courses; users and sessions recur across courses, some events are not kept.
fn document(courses: usize, user_of: impl Fn(usize, usize) -> String) -> String {
    let mut doc = String::from("[");
    for c in 0..courses {
        let mut users = Vec::new();
        for k in 0..3 {
            let u = user_of(c, k);
            let events: Vec<String> = (0..4)
                .map(|e| {
                    let kind = if e == 2 { "click_info" } else { "video_play" };
                    let ts = 1_500_000_000 + (c * 100 + k * 10 + e) as i64 * 60;
                    format!("[\"{kind}\", {ts}]")
                })
                .collect();
            let session = format!("s{}", (c + k) % 4);
            users.push(format!(
                "\"{u}\": {{\"{session}\": [{}]}}",
                events.join(", ")
            ));
        }
        let sep = if c == 0 { "" } else { ",\n " };
        doc += &format!("{sep}[\"course-{}\", {{{}}}]", c % 5, users.join(", "));
    }
    doc + "]\n"
}

fn both(doc: &str) -> (Option<u64>, Result<EventLog>, Result<EventLog>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.json");
    std::fs::write(&path, doc).unwrap();
    let split = find_split(&path, doc.len() as u64);
    (
        split,
        read_with(&path, true, 0),
        read_with(&path, true, u64::MAX),
    )
}

fn user(c: usize, k: usize) -> String {
    format!("u{}", (c * 2 + k) % 7)
}

#[test]
fn two_halves_read_as_one_pass() {
    let doc = document(12, user);
    let (split, two, one) = both(&doc);
    let at = split.expect("a course boundary after the middle") as usize;
    assert!(doc[..at].ends_with("}]") && doc[at..].starts_with(",\n [\"course-"));
    let (two, one) = (two.unwrap(), one.unwrap());
    assert!(one.events.len() > 50 && one.sessions.len() > 4);
    assert_eq!(two, one);
}

#[test]
fn ids_new_in_the_second_half_are_numbered_on_as_one_pass_numbers_them() {
    // Users first seen after the middle (one per course), beside users of both halves whose
    // sessions there are partly new.
    let doc = document(12, |c, k| match k {
        2 if c >= 5 => format!("late-{c}"),
        _ => user(c, k),
    });
    let (split, two, one) = both(&doc);
    let at = split.expect("a course boundary after the middle") as usize;
    let (two, one) = (two.unwrap(), one.unwrap());
    let first_half = &doc[..at];
    let late = |names: &[String]| names.iter().filter(|n| n.starts_with("late-")).count();
    assert!(late(&one.users) >= 3 && !first_half.contains("late-11"));
    assert_eq!(two, one);
}

#[test]
fn a_boundary_inside_a_string_is_read_in_one_pass() {
    // In the course after the middle, a user id that ends like a course boundary.
    let doc = document(8, |c, k| match (c, k) {
        (4, 1) => "u}], [".into(),
        _ => user(c, k),
    });
    let (split, two, one) = both(&doc);
    let at = split.expect("bytes that look like a boundary") as usize;
    assert!(doc[at..].starts_with(", [\": {"), "{}", &doc[at..at + 10]);
    assert_eq!(two.unwrap(), one.unwrap());
}

#[test]
fn errors_are_those_of_one_pass_in_either_half() {
    let doc = document(12, user);
    let last = doc.rfind("video_play").unwrap();
    let first = doc.find("video_play").unwrap();
    for (at, what) in [(last, "video_pl\", ]"), (first, "video_play\" 1")] {
        let bad = format!("{}{what}{}", &doc[..at], &doc[at + 12..]);
        let (_, two, one) = both(&bad);
        let (two, one) = (two.unwrap_err().to_string(), one.unwrap_err().to_string());
        assert!(one.contains("line ") && one.contains("course #"), "{one}");
        assert_eq!(two, one);
    }
}

/// Events in the layouts [`simple_event`] reads and in others it leaves to [`event`]: one
/// session of the given events, in one course.
fn one_session(events: &[&str]) -> String {
    format!(
        "[[\"c1\", {{\"u1\": {{\"s1\": [{}]}}, \"u2\": {{\"s2\": [{}]}}}}]]\n",
        events.join(", "),
        events.join(",")
    )
}

#[test]
fn the_common_event_layout_reads_as_the_general_one() {
    let events = [
        r#"["video_play", "2017-05-10T19:48:13"]"#,
        r#"["load_video","2017-05-10T19:49:13"]"#,
        r#"["click_info", "2017-05-10T19:50:13"]"#,
        r#"["click_info", {"not": "read"}]"#,
        r#"["video_pause", "1494445873"]"#,
        r#"["pause_video", 1494445933]"#,
        r#"["seek_video", "2017-05-10T19:53:13", "extra", 1]"#,
        r#"["video\u005fplay", "2017-05-10T19:54:13"]"#,
        r#"["speed_video", "2017-05-10T19:55:\u0031\u0033"]"#,
        r#"[ "problem_get", "2017-05-10T19:56:13" ]"#,
        r#"["problem_check",  "2017-05-10T19:57:13"]"#,
    ];
    // A newline after each `[` leaves every event to the general reader.
    let general: Vec<String> = events.iter().map(|e| e.replacen('[', "[\n", 1)).collect();
    let general: Vec<&str> = general.iter().map(String::as_str).collect();
    let read = |doc: String| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.json");
        std::fs::write(&path, doc).unwrap();
        let mut log = read_with(&path, true, u64::MAX).unwrap();
        log.source = std::path::PathBuf::new();
        log
    };
    let (fast, slow) = (read(one_session(&events)), read(one_session(&general)));
    assert_eq!(fast.events_read, 22);
    assert_eq!(fast.events.len(), 18, "{:?}", fast.events);
    assert_eq!(fast, slow);
    // The nine kept events of a session, a minute apart from 2017-05-10T19:48:13Z (`date -u -d
    // 2017-05-10T19:48:13 +%s`), but for the two skipped ones.
    let ts: Vec<i64> = fast.events[..9]
        .iter()
        .map(|e| e.ts - 1_494_445_693)
        .collect();
    assert_eq!(ts, [0, 60, 180, 240, 300, 360, 420, 480, 540]);
}
