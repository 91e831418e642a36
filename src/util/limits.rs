//! Limits on what untrusted input may make the program allocate, checked before allocating.
//! Each has a default that real data stays far below, and the two a real user could reach are
//! raised through the environment:
//!
//! - `RECMAML_MAX_PARAM_MB` (default 1024): the model's parameter vector (4 bytes per parameter)
//!   and each tensor a checkpoint holds, in MiB. A run needs a few times this (gradients, Adam
//!   moments, one copy per task of a meta-batch).
//! - `RECMAML_MAX_ITEMS` (default 1,000,000): the largest item id (+ 1) an episode or pairs file
//!   may use when no vocabulary (`vocab/item2id.json`) beside it says how many items there are.
//!
//! Fixed limits, far above what valid files hold: pickle nesting depth and objects
//! ([`MAX_PICKLE_DEPTH`], [`MAX_PICKLE_UNITS`]). (JSON needs none: the XuetangX reader skips
//! values of any depth without recursion, one byte of heap per level.)
/// Nesting depth of the values a checkpoint's pickle builds (a state dict has 4).
pub const MAX_PICKLE_DEPTH: usize = 64;
/// Objects plus string bytes a pickle may copy into and out of its memo (each other opcode builds
/// at most one object, so a small pickle cannot grow without bound).
pub const MAX_PICKLE_UNITS: usize = 1 << 22;

const DEFAULT_PARAM_MB: u64 = 1024;
const DEFAULT_ITEMS: u64 = 1_000_000;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|&v| v > 0)
        .unwrap_or(default)
}

/// The most bytes the parameter vector, or one checkpoint tensor, may take.
pub fn max_param_bytes() -> u64 {
    env_u64("RECMAML_MAX_PARAM_MB", DEFAULT_PARAM_MB).saturating_mul(1 << 20)
}

/// The most items a file without a vocabulary beside it may imply.
pub fn max_items() -> u64 {
    env_u64("RECMAML_MAX_ITEMS", DEFAULT_ITEMS)
}

/// How to raise the parameter limit, for error messages.
pub fn param_limit_text() -> String {
    format!(
        "the limit is {} MiB (raise it with RECMAML_MAX_PARAM_MB)",
        max_param_bytes() >> 20
    )
}

/// How to raise the item limit, for error messages.
pub fn items_limit_text() -> String {
    format!(
        "the limit without a vocabulary is {} items (put vocab/item2id.json beside the file, or \
         raise the limit with RECMAML_MAX_ITEMS)",
        max_items()
    )
}

/// `text` with every line longer than 160 characters cut to its first and last 60, so that a huge
/// value is not echoed whole into an error message.
pub fn elide_long_lines(text: &str) -> String {
    const KEEP: usize = 60;
    let mut out = String::with_capacity(text.len().min(4096));
    for (n, line) in text.split('\n').enumerate() {
        if n > 0 {
            out.push('\n');
        }
        let chars = line.chars().count();
        if chars <= 160 {
            out.push_str(line);
        } else {
            out.extend(line.chars().take(KEEP));
            out.push_str(&format!("…({} characters left out)…", chars - 2 * KEEP));
            out.extend(line.chars().skip(chars - KEEP));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lines_keep_both_ends() {
        let long = format!("a \"{}\" b", "x".repeat(10_000));
        let e = elide_long_lines(&format!("head\n{long}\ntail"));
        let lines: Vec<&str> = e.lines().collect();
        assert_eq!(lines[0], "head");
        assert_eq!(lines[2], "tail");
        assert!(lines[1].starts_with("a \"xxx") && lines[1].ends_with("xxx\" b"));
        assert!(
            lines[1].contains("(9886 characters left out)"),
            "{}",
            lines[1]
        );
        assert!(lines[1].chars().count() < 200);
        assert_eq!(elide_long_lines("short"), "short");
    }
}
