//! A small pull scanner for JSON over any `Read`, holding one fixed-size buffer: enough to walk
//! a multi-gigabyte document value by value without building it. It tracks the line and byte
//! offset for error messages.

use crate::error::{Error, Result};
use memchr::memchr3;
use std::io::Read;
use std::path::{Path, PathBuf};

const BUF: usize = 1 << 20;

/// The UTF-8 byte order mark, accepted (and skipped) at the start of a text input.
pub const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// A streaming JSON scanner.
pub struct Scanner<R> {
    reader: R,
    path: PathBuf,
    buf: Box<[u8]>,
    pos: usize,
    end: usize,
    /// Bytes of the input before `buf[0]`.
    base: u64,
    line: usize,
}

impl<R: Read> Scanner<R> {
    /// A scanner over `reader`; `path` names the input in errors.
    pub fn new(reader: R, path: &Path) -> Self {
        Scanner {
            reader,
            path: path.to_path_buf(),
            buf: vec![0; BUF].into_boxed_slice(),
            pos: 0,
            end: 0,
            base: 0,
            line: 1,
        }
    }

    /// A scanner over `reader` positioned at byte `base` of the input, on line `line`.
    pub fn resume(reader: R, path: &Path, base: u64, line: usize) -> Self {
        Scanner {
            base,
            line,
            ..Scanner::new(reader, path)
        }
    }

    /// The current line (1-based).
    pub fn line(&self) -> usize {
        self.line
    }

    /// Bytes consumed so far.
    pub fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    /// Skips a UTF-8 byte order mark at the start of the input, if there is one.
    pub fn skip_bom(&mut self) -> Result<()> {
        if self.offset() == 0 && self.pos == self.end {
            self.fill()?;
        }
        if self.offset() == 0 && self.buf[self.pos..self.end].starts_with(UTF8_BOM) {
            self.pos += UTF8_BOM.len();
        }
        Ok(())
    }

    /// An error at the current position; `field` names what was being read.
    pub fn error(&self, field: Option<&str>, msg: impl std::fmt::Display) -> Error {
        Error::data(
            &self.path,
            Some(self.line),
            field,
            format!("line {}, byte {}: {msg}", self.line, self.offset()),
        )
    }

    /// Refills the buffer; `false` at the end of the input.
    #[cold]
    fn fill(&mut self) -> Result<bool> {
        self.base += self.end as u64;
        self.pos = 0;
        self.end = 0;
        loop {
            match self.reader.read(&mut self.buf) {
                Ok(n) => {
                    self.end = n;
                    return Ok(n > 0);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::io(&self.path, e)),
            }
        }
    }

    /// The next byte that is not whitespace, not consumed; `None` at the end.
    #[inline]
    pub fn peek(&mut self) -> Result<Option<u8>> {
        loop {
            while self.pos < self.end {
                let c = self.buf[self.pos];
                match c {
                    b' ' | b'\t' | b'\r' => self.pos += 1,
                    b'\n' => {
                        self.line += 1;
                        self.pos += 1;
                    }
                    _ => return Ok(Some(c)),
                }
            }
            if !self.fill()? {
                return Ok(None);
            }
        }
    }

    /// Consumes the byte `c` (after whitespace) or fails naming `what` was expected.
    #[inline]
    pub fn expect(&mut self, c: u8, what: &str) -> Result<()> {
        match self.peek()? {
            Some(got) if got == c => {
                self.pos += 1;
                Ok(())
            }
            Some(got) => Err(self.error(
                None,
                format!("expected {what} (`{}`), found `{}`", c as char, got as char),
            )),
            None => Err(self.error(
                None,
                format!(
                    "expected {what} (`{}`), found the end of the input",
                    c as char
                ),
            )),
        }
    }

    /// Inside an array or object: before each element, consumes the separating comma (not
    /// before the first) and returns `true`, or consumes `close` and returns `false`.
    #[inline]
    pub fn more(&mut self, close: u8, first: &mut bool) -> Result<bool> {
        match self.peek()? {
            Some(c) if c == close => {
                self.pos += 1;
                Ok(false)
            }
            Some(b',') if !*first => {
                self.pos += 1;
                Ok(true)
            }
            _ if *first => {
                *first = false;
                Ok(true)
            }
            Some(c) => Err(self.error(
                None,
                format!("expected `,` or `{}`, found `{}`", close as char, c as char),
            )),
            None => Err(self.error(
                None,
                format!(
                    "expected `,` or `{}`, found the end of the input",
                    close as char
                ),
            )),
        }
    }

    /// Reads a string into `out` (replacing its content), decoding escapes.
    pub fn string(&mut self, out: &mut Vec<u8>) -> Result<()> {
        self.expect(b'"', "a string")?;
        out.clear();
        loop {
            let chunk = &self.buf[self.pos..self.end];
            match memchr3(b'"', b'\\', b'\n', chunk) {
                Some(p) => {
                    out.extend_from_slice(&chunk[..p]);
                    let c = chunk[p];
                    self.pos += p + 1;
                    match c {
                        b'"' => return Ok(()),
                        b'\\' => self.escape(out)?,
                        _ => return Err(self.error(None, "newline inside a string")),
                    }
                }
                None => {
                    out.extend_from_slice(chunk);
                    self.pos = self.end;
                    if !self.fill()? {
                        return Err(self.error(None, "unterminated string"));
                    }
                }
            }
        }
    }

    fn raw_byte(&mut self) -> Result<u8> {
        if self.pos == self.end && !self.fill()? {
            return Err(self.error(None, "unexpected end of the input"));
        }
        let c = self.buf[self.pos];
        self.pos += 1;
        Ok(c)
    }

    fn hex4(&mut self) -> Result<u32> {
        let mut v = 0;
        for _ in 0..4 {
            let c = self.raw_byte()?;
            let d = (c as char)
                .to_digit(16)
                .ok_or_else(|| self.error(None, "bad \\u escape"))?;
            v = v * 16 + d;
        }
        Ok(v)
    }

    fn escape(&mut self, out: &mut Vec<u8>) -> Result<()> {
        let c = self.raw_byte()?;
        let simple = match c {
            b'"' => b'"',
            b'\\' => b'\\',
            b'/' => b'/',
            b'b' => 8,
            b'f' => 12,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'u' => {
                let mut cp = self.hex4()?;
                if (0xD800..0xDC00).contains(&cp) {
                    if self.raw_byte()? != b'\\' || self.raw_byte()? != b'u' {
                        return Err(self.error(None, "unpaired surrogate in \\u escape"));
                    }
                    let lo = self.hex4()?;
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo.wrapping_sub(0xDC00) & 0x3FF);
                }
                let ch = char::from_u32(cp).unwrap_or(char::REPLACEMENT_CHARACTER);
                let mut tmp = [0u8; 4];
                out.extend_from_slice(ch.encode_utf8(&mut tmp).as_bytes());
                return Ok(());
            }
            other => {
                return Err(self.error(None, format!("bad escape `\\{}`", other as char)));
            }
        };
        out.push(simple);
        Ok(())
    }

    /// Reads a number, `true`, `false` or `null` as its raw bytes into `out`.
    pub fn scalar(&mut self, out: &mut Vec<u8>) -> Result<()> {
        out.clear();
        match self.peek()? {
            None => return Err(self.error(None, "expected a value, found the end of the input")),
            Some(c) if !(c.is_ascii_alphanumeric() || matches!(c, b'-' | b'+' | b'.')) => {
                return Err(self.error(None, format!("expected a value, found `{}`", c as char)))
            }
            Some(_) => {}
        }
        loop {
            while self.pos < self.end {
                let c = self.buf[self.pos];
                if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'+' | b'.') {
                    out.push(c);
                    self.pos += 1;
                } else {
                    return self.check_scalar(out);
                }
            }
            if !self.fill()? {
                return self.check_scalar(out);
            }
        }
    }

    fn check_scalar(&self, out: &[u8]) -> Result<()> {
        let ok = matches!(out, b"true" | b"false" | b"null")
            || (!out.is_empty()
                && std::str::from_utf8(out)
                    .ok()
                    .and_then(|s| s.parse::<f64>().ok())
                    .is_some());
        if ok {
            Ok(())
        } else {
            Err(self.error(
                None,
                format!("invalid JSON value `{}`", String::from_utf8_lossy(out)),
            ))
        }
    }

    /// Skips one whole value of any kind, nested to any depth: the closers of the open arrays and
    /// objects are kept on a heap stack (one byte each), not the call stack, so a deeply nested
    /// value cannot overflow it.
    pub fn skip_value(&mut self, scratch: &mut Vec<u8>) -> Result<()> {
        let mut open: Vec<u8> = Vec::new();
        loop {
            // A value starts here: read it whole, or open its container and go to its first
            // element.
            let done = match self.peek()? {
                Some(b'"') => {
                    self.string(scratch)?;
                    true
                }
                Some(c @ (b'[' | b'{')) => {
                    self.pos += 1;
                    let close = if c == b'[' { b']' } else { b'}' };
                    let mut first = true;
                    if self.more(close, &mut first)? {
                        open.push(close);
                        if close == b'}' {
                            self.key(scratch)?;
                        }
                        false
                    } else {
                        true
                    }
                }
                _ => {
                    self.scalar(scratch)?;
                    true
                }
            };
            if !done {
                continue;
            }
            // A value ended: close the containers it ends, or go to the next element.
            loop {
                let Some(&close) = open.last() else {
                    return Ok(());
                };
                let mut first = false;
                if self.more(close, &mut first)? {
                    if close == b'}' {
                        self.key(scratch)?;
                    }
                    break;
                }
                open.pop();
            }
        }
    }

    /// An object member's key and its colon.
    fn key(&mut self, scratch: &mut Vec<u8>) -> Result<()> {
        self.string(scratch)?;
        self.expect(b':', "a colon")
    }

    /// The bytes read from the input but not yet scanned (possibly empty: the buffer is refilled
    /// only by the other methods). With [`advance`](Self::advance), a caller can match a common
    /// layout directly and fall back to the other methods when it does not match.
    #[inline]
    pub fn window(&self) -> &[u8] {
        &self.buf[self.pos..self.end]
    }

    /// Marks the first `n` bytes of [`window`](Self::window) scanned; they must hold no newline.
    #[inline]
    pub fn advance(&mut self, n: usize) {
        debug_assert!(!self.window()[..n].contains(&b'\n'));
        self.pos += n;
    }

    /// Fails unless only whitespace is left.
    pub fn end(&mut self) -> Result<()> {
        match self.peek()? {
            None => Ok(()),
            Some(c) => Err(self.error(
                None,
                format!("unexpected `{}` after the end of the document", c as char),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(s: &str) -> Scanner<&[u8]> {
        Scanner::new(s.as_bytes(), Path::new("t.json"))
    }

    #[test]
    fn strings_escapes_and_skips() {
        let mut s = scan(r#" ["a\"b\u00e9\ud83d\ude00", {"x": [1, -2.5e3, true, null]}, "z"] "#);
        let mut out = Vec::new();
        s.expect(b'[', "array").unwrap();
        let mut first = true;
        assert!(s.more(b']', &mut first).unwrap());
        s.string(&mut out).unwrap();
        assert_eq!(String::from_utf8(out.clone()).unwrap(), "a\"bé😀");
        assert!(s.more(b']', &mut first).unwrap());
        s.skip_value(&mut out).unwrap();
        assert!(s.more(b']', &mut first).unwrap());
        s.string(&mut out).unwrap();
        assert_eq!(out, b"z");
        assert!(!s.more(b']', &mut first).unwrap());
        s.end().unwrap();
    }

    #[test]
    fn skips_nested_and_empty_containers() {
        let mut s = scan(r#"[[], {}, [[[]]], {"a": {"b": [{}, "]"]}, "c": 1}] 7"#);
        let mut out = Vec::new();
        s.skip_value(&mut out).unwrap();
        s.scalar(&mut out).unwrap();
        assert_eq!(out, b"7");
        s.end().unwrap();
        for (text, what) in [
            ("[1 2]", "expected `,` or `]`, found `2`"),
            ("[1}", "expected `,` or `]`, found `}`"),
            (r#"{"a": 1]"#, "expected `,` or `}`, found `]`"),
            (r#"{"a" 1}"#, "expected a colon (`:`), found `1`"),
            ("{1: 2}", "expected a string (`\"`), found `1`"),
            ("[1,]", "expected a value, found `]`"),
            ("[[", "expected a value, found the end of the input"),
        ] {
            let e = scan(text).skip_value(&mut out).unwrap_err().to_string();
            assert!(e.contains(what), "{text}: {e}");
        }
    }

    #[test]
    fn errors_name_line() {
        let mut s = scan("[\n\"a\"\n\"b\"]");
        s.expect(b'[', "array").unwrap();
        let mut first = true;
        let mut out = Vec::new();
        assert!(s.more(b']', &mut first).unwrap());
        s.string(&mut out).unwrap();
        let e = s.more(b']', &mut first).unwrap_err().to_string();
        assert!(
            e.contains("row 3") && e.contains("expected `,` or `]`"),
            "{e}"
        );
        let mut s = scan("[1, tru]");
        let mut first = true;
        s.expect(b'[', "array").unwrap();
        assert!(s.more(b']', &mut first).unwrap());
        s.skip_value(&mut out).unwrap();
        assert!(s.more(b']', &mut first).unwrap());
        let e = s.skip_value(&mut out).unwrap_err().to_string();
        assert!(e.contains("invalid JSON value `tru`"), "{e}");
    }
}
