//! Timestamps: Unix seconds or ISO 8601, parsed to Unix seconds (UTC) without allocation.

use crate::util::{civil_from_days, days_from_civil};

/// The date and time of Unix second `t` as `YYYY-MM-DDTHH:MM:SS` (UTC).
pub fn format_iso(t: i64) -> String {
    let mut s = String::with_capacity(19);
    write_iso(&mut s, t);
    s
}

/// Appends `t` as `YYYY-MM-DDTHH:MM:SS` (UTC) to `out`.
pub fn write_iso(out: &mut String, t: i64) {
    use std::fmt::Write as _;
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let _ = write!(
        out,
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    );
}

fn digits(b: &[u8]) -> Option<u32> {
    if b.is_empty() {
        return None;
    }
    let mut v = 0u32;
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u32::from(c - b'0');
    }
    Some(v)
}

/// Parses an ISO 8601 date-time: `YYYY-MM-DD`, optionally followed by `T` or a space and
/// `HH:MM[:SS[.fff]]`, optionally followed by `Z` or `±HH[:MM]`. Without an offset the time is
/// taken as UTC. Fractions of a second are dropped. Returns Unix seconds.
pub fn parse_iso8601(s: &[u8]) -> Option<i64> {
    parse_iso8601_with(s, parse_date)
}

/// [`parse_iso8601`], the date's midnight from `date` (given `YYYY-MM-DD`'s ten bytes).
fn parse_iso8601_with(s: &[u8], date: impl FnOnce(&[u8]) -> Option<i64>) -> Option<i64> {
    let midnight = date(s.get(..10)?)?;
    let rest = &s[10..];
    if rest.is_empty() {
        return Some(midnight);
    }
    if rest[0] != b'T' && rest[0] != b' ' {
        return None;
    }
    let (secs, rest) = parse_time(&rest[1..])?;
    with_offset(midnight + secs, rest)
}

/// `YYYY-MM-DD` (exactly) as the Unix second of its midnight, if it is a real date.
fn parse_date(s: &[u8]) -> Option<i64> {
    if s[4] != b'-' || s[7] != b'-' {
        return None;
    }
    let y = digits(&s[0..4])? as i64;
    let mo = digits(&s[5..7])?;
    let d = digits(&s[8..10])?;
    if !(1..=12).contains(&mo) || d == 0 || d > days_in_month(y, mo) {
        return None;
    }
    Some(days_from_civil(y, mo, d) * 86_400)
}

/// `HH:MM[:SS[.fff]]` at the start of `s` as seconds into the day (the fraction dropped), and
/// what follows it.
fn parse_time(s: &[u8]) -> Option<(i64, &[u8])> {
    if s.len() < 5 || s[2] != b':' {
        return None;
    }
    let h = digits(&s[0..2])?;
    let mi = digits(&s[3..5])?;
    let mut rest = &s[5..];
    let mut sec = 0;
    if rest.first() == Some(&b':') {
        if rest.len() < 3 {
            return None;
        }
        sec = digits(&rest[1..3])?;
        rest = &rest[3..];
        if rest.first() == Some(&b'.') || rest.first() == Some(&b',') {
            let n = rest[1..].iter().take_while(|c| c.is_ascii_digit()).count();
            if n == 0 {
                return None;
            }
            rest = &rest[1 + n..];
        }
    }
    if h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    Some((i64::from(h * 3600 + mi * 60 + sec), rest))
}

/// Local time `t` in UTC, given what follows it: nothing or `Z` (UTC already), or `±HH[[:]MM]`.
fn with_offset(t: i64, rest: &[u8]) -> Option<i64> {
    match rest {
        [] | [b'Z'] => Some(t),
        [sign @ (b'+' | b'-'), off @ ..] => {
            let (oh, om) = match off.len() {
                2 => (digits(off)?, 0),
                4 => (digits(&off[0..2])?, digits(&off[2..4])?),
                5 if off[2] == b':' => (digits(&off[0..2])?, digits(&off[3..5])?),
                _ => return None,
            };
            let off = i64::from(oh * 3600 + om * 60);
            Some(if *sign == b'+' { t - off } else { t + off })
        }
        _ => None,
    }
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Parses Unix seconds (an integer, or a decimal whose fraction is dropped) or, failing that, an
/// ISO 8601 date-time.
pub fn parse_timestamp(s: &[u8]) -> Option<i64> {
    parse_timestamp_with(s, parse_date)
}

/// [`parse_timestamp`] for a stream of timestamps that mostly share their date with the one
/// before: the last date's midnight is kept, so that the calendar is worked out once per date.
#[derive(Default)]
pub struct TimestampParser {
    last: Option<([u8; 10], i64)>,
}

impl TimestampParser {
    /// What [`parse_timestamp`] gives for `s`.
    #[inline]
    pub fn parse(&mut self, s: &[u8]) -> Option<i64> {
        parse_timestamp_with(s, |d| match self.last {
            Some((key, midnight)) if key[..] == *d => Some(midnight),
            _ => {
                let midnight = parse_date(d)?;
                self.last = Some((d.try_into().ok()?, midnight));
                Some(midnight)
            }
        })
    }
}

/// [`parse_timestamp`], ISO dates' midnights from `date`.
#[inline]
fn parse_timestamp_with(s: &[u8], date: impl FnOnce(&[u8]) -> Option<i64>) -> Option<i64> {
    let s = s.trim_ascii();
    let (neg, body) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        _ => (false, s),
    };
    let int_len = body.iter().take_while(|c| c.is_ascii_digit()).count();
    if int_len > 0 && int_len <= 18 {
        let tail = &body[int_len..];
        let frac_ok = tail.is_empty()
            || (tail[0] == b'.' && tail[1..].iter().all(u8::is_ascii_digit) && tail.len() > 1);
        if frac_ok {
            let v = body[..int_len]
                .iter()
                .fold(0i64, |v, &c| v * 10 + i64::from(c - b'0'));
            return Some(if neg { -v } else { v });
        }
    }
    parse_iso8601_with(s, date)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_parser_that_keeps_the_last_date_parses_as_parse_timestamp() {
        let stream: [&[u8]; 14] = [
            b"2017-02-28T23:59:59",
            b"2017-02-28T00:00:01Z",
            b"2017-02-28 12:00",
            b"2017-02-28T25:00:00",
            b"2017-02-28",
            b"2017-02-29T00:00:00",
            b"2017-02-28T10:00:00+02:00",
            b"1488013987",
            b"2017-02-28T10:00:00",
            b"2016-02-29T10:00:00",
            b"2017-02-28X10:00:00",
            b"2017-02-2",
            b" 2016-02-29T10:00:01 ",
            b"2016-02-29T10:00:0",
        ];
        let mut p = TimestampParser::default();
        let got: Vec<_> = stream.iter().map(|s| p.parse(s)).collect();
        let want: Vec<_> = stream.iter().map(|s| parse_timestamp(s)).collect();
        assert_eq!(got, want);
        // Both kinds of failure and success are in the stream.
        assert_eq!(want.iter().filter(|t| t.is_none()).count(), 5, "{want:?}");
    }

    #[test]
    fn iso_and_unix_agree() {
        // 2017-02-25T09:13:07Z = 1488013987 (date -u -d 2017-02-25T09:13:07 +%s).
        assert_eq!(parse_iso8601(b"2017-02-25T09:13:07"), Some(1_488_013_987));
        assert_eq!(parse_iso8601(b"2017-02-25 09:13:07Z"), Some(1_488_013_987));
        assert_eq!(
            parse_iso8601(b"2017-02-25T10:13:07.250+01:00"),
            Some(1_488_013_987)
        );
        assert_eq!(parse_iso8601(b"1970-01-01"), Some(0));
        assert_eq!(parse_timestamp(b"964982703"), Some(964_982_703));
        assert_eq!(parse_timestamp(b"964982703.9"), Some(964_982_703));
        assert_eq!(format_iso(1_488_013_987), "2017-02-25T09:13:07");
        for t in [0i64, 951_782_400, 1_488_013_987, -86_401, 4_102_444_799] {
            assert_eq!(parse_iso8601(format_iso(t).as_bytes()), Some(t));
        }
    }

    #[test]
    fn rejects_garbage() {
        for s in [
            "",
            "abc",
            "2017-13-01",
            "2017-02-30",
            "2017-02-25X09",
            "2017-02-25T25:00",
            "12a",
        ] {
            assert_eq!(parse_timestamp(s.as_bytes()), None, "{s}");
        }
    }
}
