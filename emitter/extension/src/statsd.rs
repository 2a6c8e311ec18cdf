//! StatsD and DogStatsD datagrams, as the StatsD clients of Python, Node.js,
//! Java, Go and .NET functions send them over UDP: one metric per line,
//!
//! ```text
//! <name>:<value>[:<value>...]|<type>[|@<sample rate>][|#<tag>[:<value>],...][|c:<container>][|T<unix seconds>]
//! ```
//!
//! with the types `c` (counter), `g` (gauge), `ms` (timer), `h`
//! (histogram), `d` (distribution) and `s` (set). Several values in one
//! line are DogStatsD 1.1's packing (not for sets, whose whole value is the
//! member); the container field (DogStatsD 1.2, the client's `c:` value) is
//! kept as written, the timestamp (1.3) read as Unix seconds. As the
//! DogStatsD agent does, sections this reader does not know are skipped,
//! and so are empty packed values and empty tags.
//! Events (`_e{...}`) and service checks (`_sc|...`) are not metrics: they
//! are refused as such, by name.
//!
//! Sans-IO: [`parse`] reads a datagram and borrows from it; what a line
//! means for an emitter (sampling, gauge signs, tags as dimensions) is the
//! caller's.

use core::fmt;

/// A metric's type, as its line says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Type {
    /// `c`: add the value (divided by the sample rate).
    Counter,
    /// `g`: the current value; a value written with a sign (`+3`, `-2`) is
    /// a change to it in the original StatsD ([`Line::signed`]).
    Gauge,
    /// `ms`: a duration in milliseconds.
    Timer,
    /// `h`: a value of a distribution (DogStatsD).
    Histogram,
    /// `d`: a value of a distribution (DogStatsD).
    Distribution,
    /// `s`: a member; the metric is how many distinct members an interval saw.
    Set,
}

impl Type {
    /// The type named `code`.
    fn from_code(code: &str) -> Option<Type> {
        Some(match code {
            "c" => Type::Counter,
            "g" => Type::Gauge,
            "ms" => Type::Timer,
            "h" => Type::Histogram,
            "d" => Type::Distribution,
            "s" => Type::Set,
            _ => return None,
        })
    }

    /// Its code in a line.
    pub fn code(self) -> &'static str {
        match self {
            Type::Counter => "c",
            Type::Gauge => "g",
            Type::Timer => "ms",
            Type::Histogram => "h",
            Type::Distribution => "d",
            Type::Set => "s",
        }
    }
}

/// One metric line.
#[derive(Clone, Debug, PartialEq)]
pub struct Line<'a> {
    /// The metric's name.
    pub name: &'a str,
    /// Its type.
    pub kind: Type,
    /// Its values (one, or several packed): numbers, finite. Empty for a set.
    pub values: Vec<f64>,
    /// A set's member.
    pub member: Option<&'a str>,
    /// Whether the (first) value was written with a sign, `+` or `-`: for
    /// a gauge in the original StatsD, a change rather than a value.
    pub signed: bool,
    /// The sample rate, in (0, 1] (1 unless the line says).
    pub sample_rate: f64,
    /// Tags in order: `name:value` or a bare `name`.
    pub tags: Vec<(&'a str, Option<&'a str>)>,
    /// The container field as the client wrote it (DogStatsD 1.2).
    pub container: Option<&'a str>,
    /// The time, Unix seconds (DogStatsD 1.3).
    pub timestamp: Option<i64>,
}

/// Why a line was not read, with its number in the datagram (from 1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineError {
    /// The line's number in the datagram, counting from 1.
    pub line: usize,
    /// What is wrong with it.
    pub reason: Reason,
}

/// What is wrong with a line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reason {
    /// A DogStatsD event or service check: not a metric.
    NotAMetric(&'static str),
    /// Bytes that are not UTF-8.
    NotUtf8,
    /// No `:` between the name and the value(s).
    NoValue,
    /// An empty name.
    EmptyName,
    /// No `|` and type after the value(s).
    NoType,
    /// A type this reader does not know.
    UnknownType(String),
    /// A value that is not a finite number.
    BadValue(String),
    /// A set without a member.
    BadMember,
    /// A sample rate outside (0, 1] (or so small its inverse overflows).
    BadSampleRate(String),
    /// A timestamp that is not whole seconds after 1970 (digits only).
    BadTimestamp(String),
    /// A tag with a value and no name (`#:v`).
    EmptyTag,
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: ", self.line)?;
        match &self.reason {
            Reason::NotAMetric(what) => write!(f, "a DogStatsD {what}, not a metric"),
            Reason::NotUtf8 => write!(f, "not UTF-8"),
            Reason::NoValue => write!(f, "no ':' between the name and the value"),
            Reason::EmptyName => write!(f, "an empty metric name"),
            Reason::NoType => write!(f, "no '|' and type after the value"),
            Reason::UnknownType(t) => {
                write!(f, "type {t:?} is none of c, g, ms, h, d, s")
            }
            Reason::BadValue(v) => write!(f, "value {v:?} is not a finite number"),
            Reason::BadMember => write!(f, "a set takes a member"),
            Reason::BadSampleRate(r) => write!(f, "sample rate {r:?} is not in (0, 1]"),
            Reason::BadTimestamp(t) => write!(f, "timestamp {t:?} is not whole Unix seconds"),
            Reason::EmptyTag => write!(f, "a tag with no name"),
        }
    }
}

impl core::error::Error for LineError {}

/// Every line of `datagram` (separated by `\n`; a `\r` before it and empty
/// lines are ignored), read or refused, in order.
pub fn parse(datagram: &[u8]) -> impl Iterator<Item = Result<Line<'_>, LineError>> {
    datagram
        .split(|&b| b == b'\n')
        .enumerate()
        .map(|(i, line)| (i + 1, line.strip_suffix(b"\r").unwrap_or(line)))
        .filter(|(_, line)| !line.is_empty())
        .map(|(number, line)| {
            parse_line(line).map_err(|reason| LineError {
                line: number,
                reason,
            })
        })
}

fn parse_line(bytes: &[u8]) -> Result<Line<'_>, Reason> {
    let text = core::str::from_utf8(bytes).map_err(|_| Reason::NotUtf8)?;
    if text.starts_with("_e{") {
        return Err(Reason::NotAMetric("event"));
    }
    if text.starts_with("_sc|") {
        return Err(Reason::NotAMetric("service check"));
    }
    // Sections first, then the name from the values at the first ':' of
    // the first section, as the DogStatsD agent reads them.
    let mut sections = text.split('|');
    let head = sections.next().unwrap_or_default();
    let (name, values) = head.split_once(':').ok_or(Reason::NoValue)?;
    if name.is_empty() {
        return Err(Reason::EmptyName);
    }
    let code = sections.next().ok_or(Reason::NoType)?;
    let kind = Type::from_code(code).ok_or_else(|| Reason::UnknownType(code.into()))?;
    let mut line = Line {
        name,
        kind,
        values: Vec::new(),
        member: None,
        signed: values.starts_with(['+', '-']),
        sample_rate: 1.0,
        tags: Vec::new(),
        container: None,
        timestamp: None,
    };
    if kind == Type::Set {
        // The whole value is the member, ':' and all (user:42, IPv6).
        if values.is_empty() {
            return Err(Reason::BadMember);
        }
        line.member = Some(values);
        line.signed = false;
    } else {
        // Packed values; empty ones (`1::2`, `1:2:`) are skipped.
        for value in values.split(':').filter(|v| !v.is_empty()) {
            match value.parse::<f64>() {
                Ok(v) if v.is_finite() => line.values.push(v),
                _ => return Err(Reason::BadValue(value.into())),
            }
        }
        if line.values.is_empty() {
            return Err(Reason::BadValue(values.into()));
        }
    }
    for section in sections {
        if let Some(rate) = section.strip_prefix('@') {
            // A rate so small that 1 / rate is infinite weighs nothing.
            line.sample_rate = match rate.parse::<f64>() {
                Ok(r) if r > 0.0 && r <= 1.0 && (1.0 / r).is_finite() => r,
                _ => return Err(Reason::BadSampleRate(rate.into())),
            };
        } else if let Some(tags) = section.strip_prefix('#') {
            // Empty tags (`#`, `#a,,b`, `#a,`) are skipped.
            for tag in tags.split(',').filter(|t| !t.is_empty()) {
                let (tag_name, value) = match tag.split_once(':') {
                    Some((n, v)) => (n, Some(v)),
                    None => (tag, None),
                };
                if tag_name.is_empty() {
                    return Err(Reason::EmptyTag);
                }
                line.tags.push((tag_name, value));
            }
        } else if let Some(container) = section.strip_prefix("c:") {
            line.container = Some(container);
        } else if let Some(seconds) = section.strip_prefix('T') {
            line.timestamp = Some(
                seconds
                    .parse::<i64>()
                    .ok()
                    .filter(|t| *t > 0 && seconds.bytes().all(|b| b.is_ascii_digit()))
                    .ok_or_else(|| Reason::BadTimestamp(seconds.into()))?,
            );
        }
        // Other sections (later protocol versions) are skipped.
    }
    Ok(line)
}

#[cfg(test)]
mod tests;
