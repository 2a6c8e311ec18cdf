//! The line-protocol grammar as InfluxData's reference decoder
//! (`github.com/influxdata/line-protocol/v2`) reads it, checked against its
//! public corpus (`receiver/tests/line_protocol_corpus.rs`):
//!
//! ```text
//! measurement[,tag=value...] field=value[,field=value...] [timestamp]
//! ```
//!
//! - Leading spaces, empty lines and `#` comment lines are skipped; lines
//!   end with `\n` or `\r\n`.
//! - Measurements stop at `,`, space and control characters; tag keys, tag
//!   values and field keys also at `=`. A backslash escapes what would stop
//!   its part (`\,` `\ ` in measurements, `\,` `\=` `\ ` elsewhere); before
//!   anything else it is kept as written (`\\` stays two backslashes).
//! - Field values: `"string"` (`\"`, `\\`, `\n`, `\r`, `\t` unescaped; raw
//!   newlines allowed), booleans (`t`, `T`, `true`, `True`, `TRUE` and the
//!   same of false), integers `1i`, unsigned `1u`, floats otherwise (`1`,
//!   `1.`, `.5`, `-1e3`). One or more spaces between sections, trailing
//!   spaces allowed.
//! - An optional integer timestamp (its unit is the write's precision).
//!
//! The parser reads one entry (usually one line) at a time: a bad entry is
//! an error naming its line and column, and the next entry is read after
//! the line it broke on.

use std::borrow::Cow;

/// One entry: a measurement, its tags, fields and optional timestamp.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry<'a> {
    /// The line (counted from 0) where the entry starts.
    pub line: usize,
    /// The measurement, unescaped.
    pub measurement: Cow<'a, str>,
    /// Tags in the order written, unescaped.
    pub tags: Vec<(Cow<'a, str>, Cow<'a, str>)>,
    /// Fields in the order written, keys unescaped.
    pub fields: Vec<(Cow<'a, str>, Field<'a>)>,
    /// The timestamp as written, in the write's precision.
    pub timestamp: Option<i64>,
}

/// A field's value.
#[derive(Clone, Debug, PartialEq)]
pub enum Field<'a> {
    /// `1`, `1.5`, `-1e3`: a finite float, or an infinity when the text
    /// overflows (the receiver refuses it by rule, naming the field).
    Float(f64),
    /// `1i`.
    Int(i64),
    /// `1u`.
    UInt(u64),
    /// `t`, `true`, `F`, ...
    Bool(bool),
    /// `"text"`, unescaped.
    String(Cow<'a, str>),
}

/// Why an entry could not be read, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyntaxError {
    /// The line (counted from 0) where the entry starts.
    pub line: usize,
    /// The line (counted from 1) and column (in bytes, from 1) of the
    /// fault, as an editor shows them.
    pub at: (usize, usize),
    /// What is wrong.
    pub message: String,
}

impl core::fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "at {}:{}: {}", self.at.0, self.at.1, self.message)
    }
}

/// The entries of `text`, in order.
pub fn entries(text: &str) -> Entries<'_> {
    Entries {
        text,
        at: 0,
        line: 0,
        line_start: 0,
    }
}

/// An iterator over the entries of a body; see [`entries`].
#[derive(Clone, Debug)]
pub struct Entries<'a> {
    text: &'a str,
    at: usize,
    /// The line of `at`, from 0, and the offset where that line starts.
    line: usize,
    line_start: usize,
}

/// What stops a part of an entry.
#[derive(Clone, Copy)]
enum Part {
    Measurement,
    TagKey,
    TagValue,
    FieldKey,
}

impl Part {
    fn stops(self, b: u8) -> bool {
        let control = b < 0x20 || b == 0x7f;
        match self {
            Part::Measurement => control || b == b',' || b == b' ',
            _ => control || b == b',' || b == b' ' || b == b'=',
        }
    }

    /// Whether `\` before `b` escapes it.
    fn escapes(self, b: u8) -> bool {
        match self {
            Part::Measurement => b == b',' || b == b' ',
            _ => b == b',' || b == b' ' || b == b'=',
        }
    }
}

type Parsed<T> = Result<T, SyntaxError>;

impl<'a> Iterator for Entries<'a> {
    type Item = Parsed<Entry<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        self.skip_blank_lines()?;
        let line = self.line;
        let entry = self.entry(line);
        if entry.is_err() {
            // Read on after the line the entry broke on.
            match memchr::memchr(b'\n', &self.bytes()[self.at..]) {
                Some(i) => {
                    self.at += i + 1;
                    self.newline();
                }
                None => self.at = self.text.len(),
            }
        }
        Some(entry)
    }
}

impl<'a> Entries<'a> {
    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    fn peek(&self) -> Option<u8> {
        self.bytes().get(self.at).copied()
    }

    fn newline(&mut self) {
        self.line += 1;
        self.line_start = self.at;
    }

    fn error<T>(&self, line: usize, message: impl Into<String>) -> Parsed<T> {
        Err(SyntaxError {
            line,
            at: (self.line + 1, self.at - self.line_start + 1),
            message: message.into(),
        })
    }

    fn skip_spaces(&mut self) {
        while self.peek() == Some(b' ') {
            self.at += 1;
        }
    }

    /// Takes a line end (`\n`, `\r\n`, or `\r` at the end of the body) or
    /// the end of the body; false (taking nothing) otherwise.
    fn end_of_line(&mut self) -> bool {
        match self.peek() {
            None => true,
            Some(b'\n') => {
                self.at += 1;
                self.newline();
                true
            }
            Some(b'\r') => match self.bytes().get(self.at + 1) {
                None => {
                    self.at += 1;
                    true
                }
                Some(b'\n') => {
                    self.at += 2;
                    self.newline();
                    true
                }
                Some(_) => false,
            },
            Some(_) => false,
        }
    }

    /// Skips leading spaces, empty lines and comment lines; `None` at the
    /// end of the body.
    fn skip_blank_lines(&mut self) -> Option<()> {
        loop {
            let start = self.at;
            self.skip_spaces();
            match self.peek()? {
                b'#' => {
                    while self.peek().is_some_and(|b| b >= 0x20 && b != 0x7f) {
                        self.at += 1;
                    }
                    if !self.end_of_line() {
                        // A control character in a comment: the line is an
                        // entry, and a bad one.
                        self.at = start;
                        return Some(());
                    }
                }
                b'\n' | b'\r' => {
                    if !self.end_of_line() {
                        return Some(());
                    }
                }
                _ => return Some(()),
            }
        }
    }

    /// Takes a part up to the first byte that stops it, unescaping.
    fn part(&mut self, part: Part) -> Cow<'a, str> {
        let bytes = self.bytes();
        let start = self.at;
        let mut owned: Option<String> = None;
        let mut copied = start;
        while let Some(&b) = bytes.get(self.at) {
            if b == b'\\' {
                match bytes.get(self.at + 1) {
                    Some(&next) if part.escapes(next) => {
                        let s = owned.get_or_insert_with(String::new);
                        s.push_str(&self.text[copied..self.at]);
                        s.push(char::from(next));
                        self.at += 2;
                        copied = self.at;
                    }
                    // A backslash before anything else is itself.
                    _ => self.at += 1,
                }
                continue;
            }
            if part.stops(b) {
                break;
            }
            self.at += 1;
        }
        match owned {
            Some(mut s) => {
                s.push_str(&self.text[copied..self.at]);
                Cow::Owned(s)
            }
            None => Cow::Borrowed(&self.text[start..self.at]),
        }
    }

    /// After a measurement or tag: a comma must lead to another tag.
    fn tag_comma(&mut self, line: usize) -> Parsed<()> {
        if self.peek() == Some(b',') {
            self.at += 1;
            match self.peek() {
                None => {
                    return self.error(line, "expected tag key after comma, found end of input");
                }
                Some(b' ' | b'\r' | b'\n') => {
                    return self.error(line, "expected tag key after comma, found white space");
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    fn found(&self) -> String {
        match self.text[self.at..].chars().next() {
            Some(c) => format!("{c:?}"),
            None => "end of input".into(),
        }
    }

    fn entry(&mut self, line: usize) -> Parsed<Entry<'a>> {
        let measurement = self.part(Part::Measurement);
        if measurement.is_empty() {
            return self.error(
                line,
                format!("expected a measurement name, found {}", self.found()),
            );
        }
        if measurement.starts_with('#') {
            return self.error(line, "a comment line holds a control character");
        }
        self.tag_comma(line)?;
        let mut tags = Vec::new();
        loop {
            if self.peek() == Some(b' ') {
                self.skip_spaces();
                break;
            }
            let key = self.part(Part::TagKey);
            if key.is_empty() {
                return self.error(
                    line,
                    format!("expected a tag or field, found {}", self.found()),
                );
            }
            if self.peek() != Some(b'=') {
                return self.error(
                    line,
                    format!("expected '=' after tag key {key:?}, found {}", self.found()),
                );
            }
            self.at += 1;
            let value = self.part(Part::TagValue);
            if value.is_empty() {
                return self.error(line, format!("expected a value for tag {key:?}"));
            }
            tags.push((key, value));
            if self.peek().is_none() {
                return self.error(line, "expected a field, found end of input");
            }
            self.tag_comma(line)?;
        }
        let mut fields = Vec::new();
        loop {
            let key = self.part(Part::FieldKey);
            if key.is_empty() {
                return self.error(
                    line,
                    format!("expected a field key, found {}", self.found()),
                );
            }
            if self.peek() != Some(b'=') {
                return self.error(
                    line,
                    format!(
                        "expected '=' after field key {key:?}, found {}",
                        self.found()
                    ),
                );
            }
            self.at += 1;
            let value = self.value(line, &key)?;
            fields.push((key, value));
            match self.peek() {
                None => return Ok(Entry::new(line, measurement, tags, fields, None)),
                Some(b',') => self.at += 1,
                Some(b' ' | b'\r' | b'\n') => {
                    self.skip_spaces();
                    if self.end_of_line() {
                        return Ok(Entry::new(line, measurement, tags, fields, None));
                    }
                    break;
                }
                Some(_) => {
                    return self.error(
                        line,
                        format!(
                            "unexpected {} after field {:?}",
                            self.found(),
                            fields[fields.len() - 1].0
                        ),
                    );
                }
            }
        }
        let start = self.at;
        while self.peek().is_some_and(|b| b == b'-' || b.is_ascii_digit()) {
            self.at += 1;
        }
        let digits = &self.text[start..self.at];
        let timestamp = if digits.is_empty() {
            None
        } else {
            match digits.parse::<i64>() {
                Ok(t) => Some(t),
                Err(_) => {
                    self.at = start;
                    return self.error(
                        line,
                        format!("timestamp {digits:?} is not an integer within 64 bits"),
                    );
                }
            }
        };
        if self
            .peek()
            .is_some_and(|b| !matches!(b, b' ' | b'\r' | b'\n'))
        {
            return self.error(
                line,
                format!("unexpected {} in the timestamp", self.found()),
            );
        }
        self.skip_spaces();
        if !self.end_of_line() {
            return self.error(
                line,
                format!("unexpected {} after the timestamp", self.found()),
            );
        }
        Ok(Entry::new(line, measurement, tags, fields, timestamp))
    }

    /// A field's value, after its `=`.
    fn value(&mut self, line: usize, key: &str) -> Parsed<Field<'a>> {
        match self.peek() {
            None => self.error(
                line,
                format!("expected a value for field {key:?}, found end of input"),
            ),
            Some(b'"') => {
                self.at += 1;
                self.string(line, key)
            }
            Some(b' ' | b',') => self.error(line, format!("missing a value for field {key:?}")),
            Some(first) => {
                let start = self.at;
                while self
                    .peek()
                    .is_some_and(|b| !matches!(b, b',' | b' ' | b'\r' | b'\n'))
                {
                    self.at += 1;
                }
                let raw = &self.text[start..self.at];
                let value = match first {
                    b't' | b'T' | b'f' | b'F' => match raw {
                        "t" | "T" | "true" | "True" | "TRUE" => Some(Field::Bool(true)),
                        "f" | "F" | "false" | "False" | "FALSE" => Some(Field::Bool(false)),
                        _ => None,
                    },
                    b'-' | b'.' | b'0'..=b'9' => number(raw),
                    _ => None,
                };
                match value {
                    Some(v) => Ok(v),
                    None => {
                        self.at = start;
                        self.error(
                            line,
                            format!("field {key:?} has a value of no type: {raw:?}"),
                        )
                    }
                }
            }
        }
    }

    /// A string field's text after its opening quote, through the closing
    /// one.
    fn string(&mut self, line: usize, key: &str) -> Parsed<Field<'a>> {
        let bytes = self.bytes();
        let start = self.at;
        let mut owned: Option<String> = None;
        let mut copied = start;
        loop {
            let Some(&b) = bytes.get(self.at) else {
                return self.error(
                    line,
                    format!("expected the closing quote of field {key:?}, found end of input"),
                );
            };
            match b {
                b'"' => break,
                b'\\' => {
                    let unescaped = match bytes.get(self.at + 1) {
                        Some(b'\\') => Some('\\'),
                        Some(b'"') => Some('"'),
                        Some(b'n') => Some('\n'),
                        Some(b'r') => Some('\r'),
                        Some(b't') => Some('\t'),
                        _ => None,
                    };
                    match unescaped {
                        Some(c) => {
                            let s = owned.get_or_insert_with(String::new);
                            s.push_str(&self.text[copied..self.at]);
                            s.push(c);
                            self.at += 2;
                            copied = self.at;
                        }
                        None => self.at += 1,
                    }
                }
                b'\n' => {
                    self.at += 1;
                    self.newline();
                }
                _ => self.at += 1,
            }
        }
        let text = match owned {
            Some(mut s) => {
                s.push_str(&self.text[copied..self.at]);
                Cow::Owned(s)
            }
            None => Cow::Borrowed(&self.text[start..self.at]),
        };
        self.at += 1;
        Ok(Field::String(text))
    }
}

impl<'a> Entry<'a> {
    fn new(
        line: usize,
        measurement: Cow<'a, str>,
        tags: Vec<(Cow<'a, str>, Cow<'a, str>)>,
        fields: Vec<(Cow<'a, str>, Field<'a>)>,
        timestamp: Option<i64>,
    ) -> Self {
        Entry {
            line,
            measurement,
            tags,
            fields,
            timestamp,
        }
    }
}

/// A number field: `1i`, `1u` or a float in decimal.
fn number(raw: &str) -> Option<Field<'static>> {
    if let Some(int) = raw.strip_suffix('i') {
        return int.parse().ok().map(Field::Int);
    }
    if let Some(uint) = raw.strip_suffix('u') {
        // `+` is never the first character here; u64's parser takes none
        // after a `-`.
        return uint.parse().ok().map(Field::UInt);
    }
    // Decimal: no `inf` or `nan` (neither can start a value but after a
    // `-`, and neither is a number line protocol carries). Underscores
    // between digits are read as the reference reads them (`1_000.5`).
    // Hexadecimal floats (`0x1p4`), which the reference also reads, are
    // refused: no line-protocol writer sends them.
    let digits = raw.strip_prefix('-').unwrap_or(raw);
    if !digits
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-' | b'_'))
    {
        return None;
    }
    if digits.contains('_') {
        if !underscores_between_digits(digits) {
            return None;
        }
        return raw.replace('_', "").parse().ok().map(Field::Float);
    }
    raw.parse().ok().map(Field::Float)
}

/// Whether every `_` in `s` stands between two digits.
fn underscores_between_digits(s: &str) -> bool {
    let b = s.as_bytes();
    b.iter().enumerate().all(|(i, c)| {
        *c != b'_'
            || (i > 0 && b[i - 1].is_ascii_digit() && b.get(i + 1).is_some_and(u8::is_ascii_digit))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Parsed<Entry<'_>> {
        let mut all = entries(text);
        let first = all.next().expect("an entry");
        assert!(all.next().is_none(), "{text:?} holds one entry");
        first
    }

    #[test]
    fn reads_every_part() {
        let e = one("cpu\\ load,host=a\\,b,z\\==1 v=1.,s=\"x\\\"y\\\\z\\n\",i=-3i,u=4u,b=TRUE 1600000000000000000  ")
            .expect("parsed");
        assert_eq!(e.measurement, "cpu load");
        assert_eq!(
            e.tags,
            vec![("host".into(), "a,b".into()), ("z=".into(), "1".into())]
        );
        assert_eq!(
            e.fields,
            vec![
                ("v".into(), Field::Float(1.0)),
                ("s".into(), Field::String("x\"y\\z\n".into())),
                ("i".into(), Field::Int(-3)),
                ("u".into(), Field::UInt(4)),
                ("b".into(), Field::Bool(true)),
            ]
        );
        assert_eq!(e.timestamp, Some(1_600_000_000_000_000_000));
        // Unescaped parts only are copied.
        assert!(matches!(
            one("m,t=v f=1").expect("parsed").tags[0].1,
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn backslashes_before_other_bytes_are_kept() {
        let e = one("m\\=,t=a\\\\b f\\x=\"a\\b\"").expect("parsed");
        assert_eq!(e.measurement, "m\\=");
        assert_eq!(e.tags, vec![("t".into(), "a\\\\b".into())]);
        assert_eq!(
            e.fields,
            vec![("f\\x".into(), Field::String("a\\b".into()))]
        );
        // A backslash, then an escaped space: the tag value runs on.
        let e = one("m,t=a\\\\  f=1").expect("parsed");
        assert_eq!(e.tags, vec![("t".into(), "a\\ ".into())]);
        assert!(
            one("m,t=a\\ f=1").is_err(),
            "an escaped space leaves no fields"
        );
    }

    #[test]
    fn floats_as_written() {
        for (text, v) in [
            ("1.", 1.0),
            (".5", 0.5),
            ("-.5e1", -5.0),
            ("1E+2", 100.0),
            ("007", 7.0),
        ] {
            let line = format!("m f={text}");
            let e = one(&line).expect(text);
            assert_eq!(e.fields[0].1, Field::Float(v), "{text}");
        }
        for bad in [
            ".", "-", "1..2", "1e", "-inf", "-nan", "0x10", "1__0", "1_.5", "1._5", "1e_5", "1_0i",
            "1.5i", "-1u", "1ii",
        ] {
            assert!(one(&format!("m f={bad}")).is_err(), "{bad}");
        }
        // Overflow reads as infinity: the receiver refuses it by rule.
        assert_eq!(
            one("m f=1e400").expect("read").fields[0].1,
            Field::Float(f64::INFINITY)
        );
    }

    #[test]
    fn lines_comments_and_errors() {
        let text =
            "# c\n\n  m f=1\r\nbad\nm f=\"a\nb\" 5\n   \n n f=t\nm f=1 99999999999999999999\nm f=1";
        let all: Vec<_> = entries(text).collect();
        assert_eq!(all.len(), 6, "{all:?}");
        assert_eq!(all[0].as_ref().expect("m").line, 2);
        let bad = all[1].as_ref().expect_err("bad");
        assert_eq!((bad.line, bad.at), (3, (4, 4)));
        let multi = all[2].as_ref().expect("multi-line string");
        assert_eq!((multi.line, multi.timestamp), (4, Some(5)));
        assert_eq!(all[3].as_ref().expect("n").line, 7);
        // A fault found at the end of a line leaves the next line whole.
        assert_eq!(all[4].as_ref().expect_err("timestamp").line, 8);
        assert_eq!(all[5].as_ref().expect("last").line, 9);
        for bad in [
            "\tm f=1",
            "m",
            "m ",
            "m,",
            "m, f=1",
            "m,t f=1",
            "m,t= f=1",
            "m,=v f=1",
            "m f",
            "m f=",
            "m f= 1",
            "m f=1,",
            "m f=1, g=2",
            "m f=\"a",
            "m f=\"a\"b",
            "m f=1 12a",
            "m f=1 1 2",
            "m f=1 99999999999999999999",
            "m f=1\r2",
            "# a\tb",
        ] {
            assert!(one(bad).is_err(), "{bad:?}");
        }
    }
}
