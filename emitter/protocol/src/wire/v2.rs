//! Wire format v2: the same batch as v1 ([`super::Batch`]), in a compact
//! binary encoding. Specified in `docs/wire-format.md`.
//!
//! Integers are LEB128 varints (signed ones zigzag'd first), strings a
//! varint length and UTF-8, and numbers decimals: a signed varint
//! significand and a signed varint power of ten. `123.4` takes three bytes
//! where v1 writes six characters and a separator, and a whole number
//! below 64 takes two; gzip still finds the repetition a batch has.
//!
//! ```text
//! batch  = str id, str ns, svarint t, dims, varint n, series*n, varint n, point*n
//! dims   = varint n, (str name, str value)*n
//! series = str name, u8 head, [str unit], [varint r], dims
//!          head: bits 0-1 kind (0 counter, 1 gauge, 2 distribution,
//!          3 statistic set), bit 2 unit present, bit 3 r present
//! point  = svarint ds, u8 flags, [svarint t], [num x], [vs], [num*n cs],
//!          [num*4 st], [str sv]
//!          series index = ds + the previous point's index + 1 (ds alone
//!          for the first point)
//!          flags: bit 0 t, 1 x, 2 vs, 3 cs, 4 st, 5 sv, 6 b, 7 b's value
//! num    = svarint significand, svarint exponent   (significand * 10^exponent)
//! ```
//!
//! `vs` is denser: its length is written doubled, plus one when every value
//! is written with the same exponent, which then follows once; each significand after
//! the first is written as its difference from the one before (wrapping).
//! The emitter sends a distribution's values ascending, so the differences
//! are small.
//!
//! ```text
//! vs     = varint 2n+1, svarint exponent, svarint significand*n   (one exponent)
//!        | varint 2n, (svarint significand, svarint exponent)*n
//! ```
//!
//! One file of about 700 lines: the encoder and the decoder of one format
//! are kept side by side, against the grammar above, so that a change to
//! one is seen next to the other; most of the length is the decoder naming
//! the field and byte of every way a body can be malformed.

use alloc::borrow::Cow;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use super::{Batch, Dimensions, Kind, Point, Series};
use crate::limits::MAX_DIMENSIONS;
use crate::number::{EXACT_INTEGERS as EXACT, whole};

/// The wire format version of this encoding.
pub const VERSION: u32 = 2;
/// The media type of a wire v2 batch (before compression).
pub const CONTENT_TYPE: &str = "application/vnd.edgepush.v2";

/// Exact powers of ten as f64 (10^22 is the largest).
const POWERS: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// Exponents beyond this are refused (f64 reaches 10^308, and down to 10^-324).
const MAX_EXPONENT: i64 = 400;

// Point flags.
const T: u8 = 1;
const X: u8 = 1 << 1;
const VS: u8 = 1 << 2;
const CS: u8 = 1 << 3;
const ST: u8 = 1 << 4;
const SV: u8 = 1 << 5;
const B: u8 = 1 << 6;
const B_TRUE: u8 = 1 << 7;

// Series head bits.
const UNIT: u8 = 1 << 2;
const RESOLUTION: u8 = 1 << 3;

/// Appends `v` as a LEB128 varint.
pub fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// How many bytes [`varint`] writes for `v`.
pub fn varint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

/// Appends `v` zigzag'd as a varint.
pub fn svarint(out: &mut Vec<u8>, v: i64) {
    varint(out, ((v << 1) ^ (v >> 63)) as u64);
}

/// How many bytes [`svarint`] writes for `v`.
pub fn svarint_len(v: i64) -> usize {
    varint_len(((v << 1) ^ (v >> 63)) as u64)
}

/// What a point writes for its series index `s`: the difference from the
/// index after the previous point's (`None` before the first point). Points
/// in series order write 0 (a new series) or -1 (the same series again):
/// one byte each, and runs of them compress to almost nothing.
pub fn series_delta(s: u32, previous: Option<u32>) -> i64 {
    i64::from(s) - previous.map_or(0, |p| i64::from(p) + 1)
}

/// Appends a string: its length, then its bytes.
pub fn string(out: &mut Vec<u8>, s: &str) {
    varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

/// Appends dimensions.
pub fn dimensions<'a>(out: &mut Vec<u8>, dims: impl ExactSizeIterator<Item = (&'a str, &'a str)>) {
    varint(out, dims.len() as u64);
    for (name, value) in dims {
        string(out, name);
        string(out, value);
    }
}

/// Appends a series definition.
pub fn series<'a>(
    out: &mut Vec<u8>,
    name: &str,
    kind: Kind,
    unit: Option<&str>,
    resolution: Option<u32>,
    dims: impl ExactSizeIterator<Item = (&'a str, &'a str)>,
) {
    series_head(out, name, kind, unit, resolution);
    dimensions(out, dims);
}

/// Appends a series definition but its dimensions: what v3 writes before
/// the series' set.
pub fn series_head(
    out: &mut Vec<u8>,
    name: &str,
    kind: Kind,
    unit: Option<&str>,
    resolution: Option<u32>,
) {
    string(out, name);
    let kind_bits = match kind {
        Kind::Counter => 0,
        Kind::Gauge => 1,
        Kind::Distribution => 2,
        Kind::Statistics => 3,
    };
    let head = kind_bits
        | if unit.is_some() { UNIT } else { 0 }
        | if resolution.is_some() { RESOLUTION } else { 0 };
    out.push(head);
    if let Some(unit) = unit {
        string(out, unit);
    }
    if let Some(r) = resolution {
        varint(out, u64::from(r));
    }
}

/// The significand and power of ten of a finite `v`, shortest first: whole
/// numbers below 2^53 as themselves, numbers with up to 15 decimals as a
/// scaled integer when that reads back exactly (the reader divides by the
/// same exact power of ten), anything else from the shortest decimal that
/// reads back to `v`.
pub fn decimal(v: f64) -> (i64, i64) {
    if let Some(i) = whole(v) {
        return (i, 0);
    }
    for (k, scale) in POWERS.iter().enumerate().take(16).skip(1) {
        let x = v * scale;
        if x.abs() >= EXACT {
            break;
        }
        if let Some(i) = whole(x)
            && x / scale == v
        {
            return (i, -(k as i64));
        }
    }
    zmij::Buffer::new()
        .format_finite(v)
        .parse::<Text>()
        .map(|t| (t.0, t.1))
        .unwrap_or((0, 0))
}

/// A decimal read from a formatter's text (`-1.25e-7`, `123.5`, `1e300`).
struct Text(i64, i64);

impl core::str::FromStr for Text {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        let (mantissa, exponent) = match s.find(['e', 'E']) {
            Some(i) => (&s[..i], s[i + 1..].parse::<i64>().map_err(|_| ())?),
            None => (s, 0),
        };
        let (negative, digits) = match mantissa.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, mantissa),
        };
        let mut significand: i64 = 0;
        let mut exponent = exponent;
        let mut fraction = false;
        for b in digits.bytes() {
            match b {
                b'.' if !fraction => fraction = true,
                b'0'..=b'9' => {
                    significand = significand
                        .checked_mul(10)
                        .and_then(|m| m.checked_add(i64::from(b - b'0')))
                        .ok_or(())?;
                    if fraction {
                        exponent -= 1;
                    }
                }
                _ => return Err(()),
            }
        }
        Ok(Text(
            if negative { -significand } else { significand },
            exponent,
        ))
    }
}

/// Appends a number.
pub fn number(out: &mut Vec<u8>, v: f64) {
    let (significand, exponent) = decimal(v);
    svarint(out, significand);
    svarint(out, exponent);
}

/// The f64 nearest to `significand * 10^exponent`.
pub fn from_decimal(significand: i64, exponent: i64) -> f64 {
    let m = significand as f64;
    if significand.unsigned_abs() <= 1 << 53 {
        if exponent == 0 {
            return m;
        }
        // One exact operand and one rounding: correctly rounded.
        if (-22..0).contains(&exponent) {
            return m / POWERS[(-exponent) as usize];
        }
        if (1..=22).contains(&exponent) {
            return m * POWERS[exponent as usize];
        }
    }
    // Rare: read the decimal's text, which core rounds correctly.
    let mut text = [0u8; 48];
    let mut len = 0;
    let mut int = itoa::Buffer::new();
    for part in [int.format(significand).as_bytes(), b"e"] {
        text[len..len + part.len()].copy_from_slice(part);
        len += part.len();
    }
    let part = int.format(exponent).as_bytes();
    text[len..len + part.len()].copy_from_slice(part);
    len += part.len();
    core::str::from_utf8(&text[..len])
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(f64::NAN)
}

/// Encodes a whole batch (the emitter writes the same bytes piece by
/// piece, measuring as it goes).
pub fn encode(batch: &Batch<'_>) -> Vec<u8> {
    encode_as(batch, Layout::Inline)
}

/// Where a batch writes its series' dimensions: each series its own (v2),
/// or a table of the batch's sets that series point into (v3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Layout {
    Inline,
    Sets,
}

pub(super) fn encode_as(batch: &Batch<'_>, layout: Layout) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + batch.series.len() * 32 + batch.points.len() * 16);
    string(&mut out, &batch.id);
    string(&mut out, &batch.ns);
    svarint(&mut out, batch.t);
    dimensions(&mut out, pairs(&batch.dims));
    // v3: each distinct set once, in the order series first use them.
    let mut sets: Vec<&Dimensions<'_>> = Vec::new();
    let mut set_of: Vec<usize> = Vec::with_capacity(batch.series.len());
    if layout == Layout::Sets {
        type Pairs<'b> = [(Cow<'b, str>, Cow<'b, str>)];
        let mut index: alloc::collections::BTreeMap<&Pairs<'_>, usize> =
            alloc::collections::BTreeMap::new();
        for s in &batch.series {
            let next = sets.len();
            let i = *index.entry(&s.d.0[..]).or_insert(next);
            if i == next {
                sets.push(&s.d);
            }
            set_of.push(i);
        }
        varint(&mut out, sets.len() as u64);
        for d in &sets {
            dimensions(&mut out, pairs(d));
        }
    }
    varint(&mut out, batch.series.len() as u64);
    let mut previous_set = 0;
    for (i, s) in batch.series.iter().enumerate() {
        series_head(&mut out, &s.n, s.k, s.u.as_deref(), s.r);
        match layout {
            Layout::Inline => dimensions(&mut out, pairs(&s.d)),
            Layout::Sets => {
                svarint(&mut out, set_of[i] as i64 - previous_set as i64);
                previous_set = set_of[i];
            }
        }
    }
    varint(&mut out, batch.points.len() as u64);
    let mut previous = None;
    for p in &batch.points {
        svarint(&mut out, series_delta(p.s, previous));
        previous = Some(p.s);
        point(&mut out, p);
    }
    out
}

fn pairs<'a>(d: &'a Dimensions<'_>) -> impl ExactSizeIterator<Item = (&'a str, &'a str)> {
    d.0.iter().map(|(n, v)| (n.as_ref(), v.as_ref()))
}

/// Appends a point after its series index: flags and fields.
pub fn point(out: &mut Vec<u8>, p: &Point) {
    let flags = flags(
        p.t,
        p.x.is_some(),
        p.vs.is_some(),
        p.cs.is_some(),
        p.st.is_some(),
    ) | if p.sv.is_some() { SV } else { 0 }
        | match p.b {
            Some(true) => B | B_TRUE,
            Some(false) => B,
            None => 0,
        };
    fields(
        out,
        flags,
        p.t,
        p.x,
        p.vs.as_deref(),
        p.cs.as_deref(),
        p.st.as_ref(),
        p.sv.as_deref(),
    );
}

/// Appends a point's flags and fields: `cs` only with `vs`, of its length
/// (the caller's promise; the reader checks).
#[allow(clippy::too_many_arguments)]
pub fn fields(
    out: &mut Vec<u8>,
    flags: u8,
    t: i64,
    x: Option<f64>,
    vs: Option<&[f64]>,
    cs: Option<&[f64]>,
    st: Option<&[f64; 4]>,
    sv: Option<&str>,
) {
    out.push(flags);
    if flags & T != 0 {
        svarint(out, t);
    }
    if let Some(x) = x {
        number(out, x);
    }
    if let Some(vs) = vs {
        values(out, vs);
        if flags & CS != 0
            && let Some(cs) = cs
        {
            for c in cs {
                number(out, *c);
            }
        }
    }
    if let Some(st) = st {
        for v in st {
            number(out, *v);
        }
    }
    if let Some(sv) = sv {
        string(out, sv);
    }
}

/// Appends a distribution's values (`vs`, see the module's description):
/// with one exponent, the smallest, when every significand scales to it
/// without overflow (the value each then stands for is the same number, so
/// it reads back the same f64).
fn values(out: &mut Vec<u8>, vs: &[f64]) {
    let start = out.len();
    let smallest = vs.iter().map(|v| decimal(*v).1).min().unwrap_or(0);
    varint(out, (vs.len() as u64) << 1 | 1);
    svarint(out, smallest);
    let mut previous = 0i64;
    for v in vs {
        let (significand, exponent) = decimal(*v);
        let scaled = u32::try_from(exponent - smallest)
            .ok()
            .and_then(|d| 10i64.checked_pow(d))
            .and_then(|scale| significand.checked_mul(scale));
        let Some(significand) = scaled else {
            // Too far apart for one exponent: each value with its own.
            out.truncate(start);
            varint(out, (vs.len() as u64) << 1);
            previous = 0;
            for v in vs {
                let (significand, exponent) = decimal(*v);
                svarint(out, significand.wrapping_sub(previous));
                svarint(out, exponent);
                previous = significand;
            }
            return;
        };
        svarint(out, significand.wrapping_sub(previous));
        previous = significand;
    }
}

/// The flags of a point with these fields present.
pub fn flags(t: i64, x: bool, vs: bool, cs: bool, st: bool) -> u8 {
    (if t != 0 { T } else { 0 })
        | if x { X } else { 0 }
        | if vs { VS } else { 0 }
        | if vs && cs { CS } else { 0 }
        | if st { ST } else { 0 }
}

/// Why a body is not a wire v2 batch: where, and what was wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeError {
    /// The byte offset in the body.
    pub offset: usize,
    /// The field being read, as wire v1 would name it (`points[3].vs`).
    pub field: String,
    /// What was wrong.
    pub reason: String,
    /// Whether the body broke a limit the caller set (wire v3's series
    /// count) rather than the encoding.
    pub over_limit: bool,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at byte {} ({})",
            self.reason, self.offset, self.field
        )
    }
}

/// A field of a batch: `At("points", Some(3), ".vs")` is `points[3].vs`.
#[derive(Clone, Copy)]
struct At(&'static str, Option<usize>, &'static str);

impl At {
    fn name(self) -> String {
        match self.1 {
            Some(i) => format!("{}[{i}]{}", self.0, self.2),
            None => self.0.to_string(),
        }
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

type Read<T> = Result<T, (usize, String)>;

impl<'a> Reader<'a> {
    fn fail<T>(&self, reason: impl Into<String>) -> Read<T> {
        Err((self.at, reason.into()))
    }

    fn byte(&mut self) -> Read<u8> {
        match self.bytes.get(self.at) {
            Some(b) => {
                self.at += 1;
                Ok(*b)
            }
            None => self.fail("the body ends early"),
        }
    }

    fn varint(&mut self) -> Read<u64> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            let bits = u64::from(b & 0x7f);
            if shift == 63 && bits > 1 {
                return self.fail("a varint is larger than 64 bits");
            }
            v |= bits << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        self.fail("a varint is longer than 10 bytes")
    }

    fn svarint(&mut self) -> Read<i64> {
        let v = self.varint()?;
        Ok((v >> 1) as i64 ^ -((v & 1) as i64))
    }

    /// A count of items that each take at least `min` bytes: never more
    /// than the rest of the body could hold, so no allocation outgrows it.
    fn count(&mut self, min: usize) -> Read<usize> {
        let n = self.varint()?;
        let left = (self.bytes.len() - self.at) / min;
        if n > left as u64 {
            return self.fail(format!(
                "{n} items announced, more than the rest of the body holds"
            ));
        }
        Ok(n as usize)
    }

    fn str(&mut self) -> Read<&'a str> {
        let len = self.varint()?;
        let start = self.at;
        let end = usize::try_from(len)
            .ok()
            .and_then(|len| start.checked_add(len))
            .filter(|end| *end <= self.bytes.len());
        let Some(end) = end else {
            return self.fail("a string runs past the end of the body");
        };
        match core::str::from_utf8(&self.bytes[start..end]) {
            Ok(s) => {
                self.at = end;
                Ok(s)
            }
            Err(_) => self.fail("a string is not UTF-8"),
        }
    }

    fn number(&mut self) -> Read<f64> {
        let significand = self.svarint()?;
        self.number_with(significand)
    }

    /// The rest of a number whose significand was read.
    fn number_with(&mut self, significand: i64) -> Read<f64> {
        let exponent = self.svarint()?;
        self.decimal(significand, exponent)
    }

    /// The length of a `vs` list and, if it has one, its common exponent.
    fn values_head(&mut self) -> Read<(usize, Option<i64>)> {
        let head = self.varint()?;
        let n = head >> 1;
        if n > (self.bytes.len() - self.at) as u64 {
            return self.fail(format!(
                "{n} values announced, more than the rest of the body holds"
            ));
        }
        let exponent = if head & 1 == 1 {
            Some(self.svarint()?)
        } else {
            None
        };
        Ok((n as usize, exponent))
    }

    fn decimal(&mut self, significand: i64, exponent: i64) -> Read<f64> {
        // `unsigned_abs`: the exponent is read from the body, and
        // `i64::MIN` has no `abs` (it wrapped to itself and passed).
        if exponent.unsigned_abs() > MAX_EXPONENT as u64 {
            return self.fail(format!("exponent {exponent} is out of range"));
        }
        let v = from_decimal(significand, exponent);
        if !v.is_finite() {
            return self.fail(format!("number {significand}e{exponent} is out of range"));
        }
        Ok(v)
    }

    fn numbers(&mut self, n: usize) -> Read<Vec<f64>> {
        let mut vs = Vec::with_capacity(n);
        for _ in 0..n {
            vs.push(self.number()?);
        }
        Ok(vs)
    }

    /// Dimensions, at most `most` of them. Repeated names are found by a
    /// scan while there are few, by a set past that (a hostile body's
    /// thousands of pairs cost n log n, not n squared).
    fn dimensions(&mut self, most: usize) -> Read<Dimensions<'a>> {
        const SCANNED: usize = 16;
        let n = self.count(2)?;
        if n > most {
            return self.fail(format!(
                "{n} dimensions, more than the {most} a set may have"
            ));
        }
        let mut pairs: Vec<(Cow<'a, str>, Cow<'a, str>)> = Vec::with_capacity(n);
        let mut seen: alloc::collections::BTreeSet<&'a str> = alloc::collections::BTreeSet::new();
        for _ in 0..n {
            let name = self.str()?;
            let value = self.str()?;
            let twice = if n <= SCANNED {
                pairs.iter().any(|(n, _)| n == name)
            } else {
                !seen.insert(name)
            };
            if twice {
                return self.fail(format!("dimension {name:?} appears twice"));
            }
            pairs.push((Cow::Borrowed(name), Cow::Borrowed(value)));
        }
        Ok(Dimensions(pairs))
    }
}

/// Decodes a wire v2 body (decompressed) into the batch it carries, with
/// `v` set to [`VERSION`]. Strings borrow from `bytes`. Checks the
/// encoding only; what the batch says is checked as for v1 (the receiver's
/// validation).
///
/// A series or point takes a few bytes of body and far more once decoded:
/// decode untrusted bodies with [`decode_within`].
pub fn decode(bytes: &[u8]) -> Result<Batch<'_>, DecodeError> {
    decode_within(bytes, usize::MAX, usize::MAX)
}

/// [`decode`], refusing a body of more than `max_series` series or
/// `max_points` points before making them (the error's `over_limit` is
/// then set, and its field is `series` or `points`).
pub fn decode_within(
    bytes: &[u8],
    max_series: usize,
    max_points: usize,
) -> Result<Batch<'_>, DecodeError> {
    decode_as(bytes, Layout::Inline, max_series, max_points)
}

/// Decodes in `layout`, refusing more than `max_series` series (and v3
/// sets) and `max_points` points before making them, and v3 sets of more
/// than [`MAX_DIMENSIONS`] pairs: a point costs two bytes of body and a
/// v3 series three and a copy of its set, so these bound what a small body
/// can make the decoder allocate.
pub(super) fn decode_as(
    bytes: &[u8],
    layout: Layout,
    max_series: usize,
    max_points: usize,
) -> Result<Batch<'_>, DecodeError> {
    let mut r = Reader { bytes, at: 0 };
    let mut over_limit = false;
    // Where the reader is, named only when something is wrong: no text is
    // made per series or point.
    let mut field = At("id", None, "");
    let mut read = || -> Read<Batch<'_>> {
        let id = r.str()?;
        field = At("ns", None, "");
        let ns = r.str()?;
        field = At("t", None, "");
        let t = r.svarint()?;
        field = At("dims", None, "");
        let dims = r.dimensions(usize::MAX)?;
        let mut sets = Vec::new();
        if layout == Layout::Sets {
            // Each series copies its set: sets are bounded as series are
            // (a series has at most MAX_DIMENSIONS), so a small body cannot
            // ask for series times a huge set.
            field = At("sets", None, "");
            let n = r.count(1)?;
            if n > max_series {
                over_limit = true;
                return r.fail(format!("{n} sets, more than the limit of {max_series}"));
            }
            sets.reserve(n);
            for j in 0..n {
                field = At("sets", Some(j), "");
                sets.push(r.dimensions(MAX_DIMENSIONS)?);
            }
        }
        field = At("series", None, "");
        let n = r.count(3)?;
        if n > max_series {
            over_limit = true;
            return r.fail(format!("{n} series, more than the limit of {max_series}"));
        }
        let mut previous_set = 0i128;
        let mut series = Vec::with_capacity(n);
        for i in 0..n {
            field = At("series", Some(i), "");
            let name = r.str()?;
            let head = r.byte()?;
            if head >> 4 != 0 {
                return r.fail(format!("unknown series flags {head:#04x}"));
            }
            let k = match head & 3 {
                0 => Kind::Counter,
                1 => Kind::Gauge,
                2 => Kind::Distribution,
                _ => Kind::Statistics,
            };
            let u = if head & UNIT != 0 {
                Some(Cow::Borrowed(r.str()?))
            } else {
                None
            };
            let res = if head & RESOLUTION != 0 {
                let v = r.varint()?;
                match u32::try_from(v) {
                    Ok(v) => Some(v),
                    Err(_) => return r.fail(format!("resolution {v} is out of range")),
                }
            } else {
                None
            };
            field = At("series", Some(i), ".d");
            let d = match layout {
                Layout::Inline => r.dimensions(usize::MAX)?,
                Layout::Sets => {
                    let set = previous_set + i128::from(r.svarint()?);
                    match usize::try_from(set).ok().and_then(|j| sets.get(j)) {
                        Some(d) => {
                            previous_set = set;
                            d.clone()
                        }
                        None => {
                            return r.fail(format!(
                                "dimension set {set} is not one of the batch's {}",
                                sets.len()
                            ));
                        }
                    }
                }
            };
            series.push(Series {
                n: Cow::Borrowed(name),
                k,
                u,
                d,
                r: res,
            });
        }
        field = At("points", None, "");
        let n = r.count(2)?;
        if n > max_points {
            over_limit = true;
            return r.fail(format!("{n} points, more than the limit of {max_points}"));
        }
        let mut points = Vec::with_capacity(n);
        let mut previous: Option<u32> = None;
        for i in 0..n {
            field = At("points", Some(i), "");
            let s = previous.map_or(0, |p| i128::from(p) + 1) + i128::from(r.svarint()?);
            let Ok(s) = u32::try_from(s) else {
                return r.fail(format!("series index {s} is out of range"));
            };
            previous = Some(s);
            let flags = r.byte()?;
            if flags & CS != 0 && flags & VS == 0 {
                return r.fail("cs without vs");
            }
            if flags & B_TRUE != 0 && flags & B == 0 {
                return r.fail("a boolean's value without the boolean");
            }
            let mut p = Point {
                s,
                ..Point::default()
            };
            if flags & T != 0 {
                field = At("points", Some(i), ".t");
                p.t = r.svarint()?;
            }
            if flags & X != 0 {
                field = At("points", Some(i), ".x");
                p.x = Some(r.number()?);
            }
            if flags & VS != 0 {
                field = At("points", Some(i), ".vs");
                let (n, one_exponent) = r.values_head()?;
                let mut vs = Vec::with_capacity(n);
                let mut previous = 0i64;
                if let Some(exponent) = one_exponent {
                    for _ in 0..n {
                        previous = previous.wrapping_add(r.svarint()?);
                        vs.push(r.decimal(previous, exponent)?);
                    }
                } else {
                    for _ in 0..n {
                        previous = previous.wrapping_add(r.svarint()?);
                        vs.push(r.number_with(previous)?);
                    }
                }
                p.vs = Some(vs);
                if flags & CS != 0 {
                    field = At("points", Some(i), ".cs");
                    p.cs = Some(r.numbers(n)?);
                }
            }
            if flags & ST != 0 {
                field = At("points", Some(i), ".st");
                p.st = Some([r.number()?, r.number()?, r.number()?, r.number()?]);
            }
            if flags & SV != 0 {
                field = At("points", Some(i), ".sv");
                p.sv = Some(r.str()?.into());
            }
            if flags & B != 0 {
                p.b = Some(flags & B_TRUE != 0);
            }
            points.push(p);
        }
        field = At("points", None, "");
        if r.at != r.bytes.len() {
            return r.fail(format!(
                "{} bytes follow the last point",
                r.bytes.len() - r.at
            ));
        }
        Ok(Batch {
            v: match layout {
                Layout::Inline => VERSION,
                Layout::Sets => super::v3::VERSION,
            },
            id: Cow::Borrowed(id),
            ns: Cow::Borrowed(ns),
            t,
            dims,
            series,
            points,
        })
    };
    let result = read();
    result.map_err(|(offset, reason)| DecodeError {
        offset,
        field: field.name(),
        reason,
        over_limit,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use proptest::prelude::*;

    /// Exponents far out of range are refused, the most negative one too
    /// (found by fuzzing with overflow checks on).
    #[test]
    fn exponents_out_of_range_are_refused_to_the_last() {
        let mut r = Reader { bytes: &[], at: 0 };
        for exponent in [i64::MIN, i64::MIN + 1, -401, 401, i64::MAX] {
            assert!(r.decimal(1, exponent).is_err(), "{exponent}");
        }
        assert_eq!(r.decimal(15, -1), Ok(1.5));
    }

    /// Wire v1's sample batch, with a gauge's every kind of point added.
    fn sample() -> Batch<'static> {
        let mut batch = super::super::tests::sample();
        batch.v = VERSION;
        batch.points[1].t = -5;
        batch.points[1].vs = Some(vec![1.5, 2.5, 1000.9]);
        batch.points[1].cs = Some(vec![3.0, 1.0, 2.0]);
        batch.series.push(Series {
            n: "état".into(),
            k: Kind::Gauge,
            u: None,
            d: Dimensions::default(),
            r: Some(60),
        });
        let point = |p: Point| Point { s: 2, ..p };
        batch.points.extend([
            Point {
                s: 1,
                st: Some([4.0, 10.25, 0.001, 7.0]),
                ..Point::default()
            },
            point(Point {
                x: Some(-0.5),
                st: Some([2.0, 1.5, -0.5, 2.0]),
                ..Point::default()
            }),
            point(Point {
                sv: Some("blue \"sky\"".into()),
                ..Point::default()
            }),
            point(Point {
                b: Some(false),
                ..Point::default()
            }),
            point(Point {
                t: 1,
                b: Some(true),
                ..Point::default()
            }),
        ]);
        batch
    }

    #[test]
    fn a_batch_decodes_to_what_was_encoded_and_is_smaller_than_v1() {
        let batch = sample();
        let bytes = encode(&batch);
        assert_eq!(decode(&bytes), Ok(batch.clone()));
        let json = serde_json::to_string(&batch).expect("json");
        assert!(
            bytes.len() * 2 < json.len(),
            "{} vs {}",
            bytes.len(),
            json.len()
        );
        let back = decode(&bytes).expect("decodes");
        assert!(matches!(back.series[0].n, Cow::Borrowed(_)), "names borrow");
    }

    #[test]
    fn numbers_take_few_bytes() {
        for (v, bytes) in [
            (0.0, 2),
            (1.0, 2),
            (-42.0, 2),
            (123.4, 3),
            (1000.9, 4),
            (0.001, 2),
            (1e300, 3),
        ] {
            let mut out = Vec::new();
            number(&mut out, v);
            assert_eq!(out.len(), bytes, "{v}");
        }
    }

    #[test]
    fn ascending_values_share_one_exponent_and_take_differences() {
        let mut out = Vec::new();
        values(&mut out, &[12.0, 12.5, 13.25]);
        // 3 values, one exponent (-2); 1200, +50, +75.
        assert_eq!(out, [7, 3, 0xe0, 0x12, 100, 150, 1]);
        let mut r = Reader { bytes: &out, at: 0 };
        assert_eq!(r.values_head(), Ok((3, Some(-2))));
        // Mixed magnitudes that do not scale to one exponent.
        let mixed = [1e-300, 2.5, 1e300];
        let batch = Batch {
            points: vec![Point {
                vs: Some(mixed.to_vec()),
                ..Point::default()
            }],
            ..sample()
        };
        assert_eq!(decode(&encode(&batch)), Ok(batch));
    }

    #[test]
    fn every_kind_of_number_reads_back_exactly() {
        for v in [
            0.0,
            -0.0,
            1.0,
            0.1,
            0.1 + 0.2,
            123.4,
            -2.5e-8,
            1e-300,
            5e-324,
            f64::MIN_POSITIVE,
            f64::MAX,
            f64::MIN,
            9_007_199_254_740_993.0,
            1e22,
            1e23,
            4.35,
            1000.9,
        ] {
            let (m, e) = decimal(v);
            assert_eq!(from_decimal(m, e), v + 0.0, "{v}: {m}e{e}");
        }
        assert_eq!(decimal(123.4), (1234, -1), "shortest");
        assert_eq!(decimal(1e300), (1, 300));
    }

    proptest! {
        #[test]
        fn any_finite_number_reads_back_exactly(bits in any::<u64>()) {
            let v = f64::from_bits(bits);
            prop_assume!(v.is_finite());
            let (m, e) = decimal(v);
            prop_assert_eq!(from_decimal(m, e).to_bits(), (v + 0.0).to_bits(), "{} -> {}e{}", v, m, e);
        }

        #[test]
        fn decimal_numbers_read_back_exactly(m in -10_000_000i64..10_000_000, k in 0i32..9) {
            let v = m as f64 / 10f64.powi(k);
            let (sig, e) = decimal(v);
            prop_assert_eq!(from_decimal(sig, e).to_bits(), (v + 0.0).to_bits());
        }

        #[test]
        fn any_batch_decodes_to_what_was_encoded(batch in batches()) {
            let bytes = encode(&batch);
            prop_assert_eq!(decode(&bytes), Ok(batch));
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode(&bytes);
            let _ = super::super::v3::decode(&bytes);
        }

        /// v3 carries any batch too, its series sharing sets or not.
        #[test]
        fn any_batch_decodes_to_what_was_encoded_in_v3(
            mut batch in batches(),
            shared in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
        ) {
            use super::super::v3;
            batch.v = v3::VERSION;
            // Some series take another's dimensions: sets used again.
            let n = batch.series.len();
            for (i, from) in shared.iter().enumerate() {
                if n > 0 {
                    let d = batch.series[from.index(n)].d.clone();
                    batch.series[i % n].d = d;
                }
            }
            let bytes = v3::encode(&batch);
            prop_assert_eq!(v3::decode(&bytes), Ok(batch.clone()));
            // v3 writes each set once: it is v2 less every repeated use
            // of a set, plus the table's count and each series' reference
            // (a signed difference from the previous series' set).
            let mut v2_batch = batch;
            v2_batch.v = VERSION;
            let size = |f: &dyn Fn(&mut Vec<u8>)| {
                let mut out = Vec::new();
                f(&mut out);
                out.len() as i64
            };
            let mut firsts: Vec<&Dimensions<'_>> = Vec::new();
            let (mut saved, mut references, mut previous) = (0i64, 0i64, 0i64);
            for s in &v2_batch.series {
                let i = match firsts.iter().position(|d| **d == s.d) {
                    Some(i) => {
                        saved += size(&|out| dimensions(out, pairs(&s.d)));
                        i
                    }
                    None => {
                        firsts.push(&s.d);
                        firsts.len() - 1
                    }
                } as i64;
                references += size(&|out| svarint(out, i - previous));
                previous = i;
            }
            let table = size(&|out| varint(out, firsts.len() as u64));
            prop_assert_eq!(
                bytes.len() as i64,
                encode(&v2_batch).len() as i64 - saved + table + references
            );
        }
    }

    #[test]
    fn v3_refuses_a_set_the_batch_does_not_have() {
        use super::super::v3;
        let mut batch = sample();
        batch.v = v3::VERSION;
        let good = v3::encode(&batch);
        assert_eq!(v3::decode(&good).map(|b| b.v), Ok(v3::VERSION));
        // id "a", ns "N", t 0, no dims, one set {k: v}, one series "s"
        // (a counter) pointing at set 1, no points.
        let body = [
            &[1, b'a', 1, b'N', 0, 0][..],
            &[1, 1, 1, b'k', 1, b'v'][..],
            &[1, 1, b's', 0, 2][..],
            &[0][..],
        ]
        .concat();
        let e = v3::decode(&body).expect_err("set 1 of 1");
        assert_eq!(e.field, "series[0].d");
        assert_eq!(e.reason, "dimension set 1 is not one of the batch's 1");
        // Pointing at set 0 (ds 0) it decodes, the set as the series'.
        let mut ok = body.clone();
        let at = ok.len() - 2;
        ok[at] = 0;
        let b = v3::decode(&ok).expect("set 0");
        assert_eq!(b.series[0].d.0, [("k".into(), "v".into())]);
        // A negative set.
        ok[at] = 1;
        let e = v3::decode(&ok).expect_err("set -1");
        assert_eq!(e.reason, "dimension set -1 is not one of the batch's 1");
        // More sets announced than the body could hold.
        let e = v3::decode(&[&[1, b'a', 1, b'N', 0, 0, 100][..]].concat()).expect_err("100 sets");
        assert_eq!(e.field, "sets");
        // A set larger than a series may have (each series would copy it),
        // refused before its pairs are read; more sets than series allowed.
        let mut big = vec![1, b'a', 1, b'N', 0, 0, 1, 31];
        for i in 0..31u8 {
            big.extend([1, b'a' + i % 26, 0]);
        }
        let e = v3::decode(&big).expect_err("31 pairs");
        assert_eq!((e.field.as_str(), e.offset), ("sets[0]", 8));
        assert_eq!(e.reason, "31 dimensions, more than the 30 a set may have");
        let e = v3::decode_within(&[1, b'a', 1, b'N', 0, 0, 3, 0, 0, 0, 0, 0], 2, 10)
            .expect_err("3 sets");
        assert!(e.over_limit && e.field == "sets", "{e:?}");
    }

    /// Series and points are counted against the caller's limits before
    /// anything is made for them: 100,000 two-byte points (a 200 KB body,
    /// 14 MB as points) are refused at their count.
    #[test]
    fn counts_past_the_limits_are_refused_before_they_are_made() {
        let mut body = vec![1, b'a', 1, b'N', 0, 0, 0];
        varint(&mut body, 100_000);
        body.extend(core::iter::repeat_n(0u8, 200_000));
        let e = decode_within(&body, 10, 1_000).expect_err("too many points");
        assert!(e.over_limit, "{e:?}");
        assert_eq!(
            (e.field.as_str(), e.reason.as_str()),
            ("points", "100000 points, more than the limit of 1000")
        );
        assert!(decode_within(&body, 10, 100_000).is_ok());
        let mut series = vec![1, b'a', 1, b'N', 0, 0, 3];
        series.extend([1, b's', 0, 0].repeat(3));
        series.push(0);
        let e = decode_within(&series, 2, 10).expect_err("3 series");
        assert!(e.over_limit && e.field == "series", "{e:?}");
        // Malformed bodies are not over a limit.
        assert!(!decode_within(&[1], 10, 10).expect_err("short").over_limit);
    }

    #[test]
    fn many_dimensions_are_read_in_n_log_n_and_repeats_found() {
        // 100,000 pairs with distinct names, then one repeated.
        let mut body = vec![1, b'a', 1, b'N', 0];
        varint(&mut body, 100_001);
        for i in 0..100_000u32 {
            string(&mut body, &format!("d{i}"));
            string(&mut body, "");
        }
        string(&mut body, "d77");
        string(&mut body, "");
        let e = decode(&body).expect_err("a repeat");
        assert_eq!(
            (e.field.as_str(), e.reason.as_str()),
            ("dims", "dimension \"d77\" appears twice")
        );
    }

    fn number_strategy() -> impl Strategy<Value = f64> {
        prop_oneof![
            any::<f64>().prop_filter("finite", |v| v.is_finite()),
            (-100_000i64..100_000).prop_map(|m| m as f64 / 10.0),
            (0u32..1000).prop_map(f64::from),
        ]
        .prop_map(|v| v + 0.0)
    }

    fn dims() -> impl Strategy<Value = Dimensions<'static>> {
        prop::collection::btree_map("[a-z]{1,6}", "\\PC{0,8}", 0..4)
            .prop_map(|m| Dimensions(m.into_iter().map(|(k, v)| (k.into(), v.into())).collect()))
    }

    fn batches() -> impl Strategy<Value = Batch<'static>> {
        let series = (
            "\\PC{1,12}",
            0u8..4,
            prop::option::of("[A-Za-z/]{1,12}"),
            prop::option::of(prop_oneof![Just(1u32), Just(60), any::<u32>()]),
            dims(),
        )
            .prop_map(|(n, k, u, r, d)| Series {
                n: n.into(),
                k: [
                    Kind::Counter,
                    Kind::Gauge,
                    Kind::Distribution,
                    Kind::Statistics,
                ][usize::from(k)],
                u: u.map(Into::into),
                d,
                r,
            });
        let point = (
            any::<u32>(),
            any::<i64>(),
            prop::option::of(number_strategy()),
            prop::option::of(prop::collection::vec(
                (number_strategy(), number_strategy()),
                0..5,
            )),
            any::<bool>(),
            prop::option::of([
                number_strategy(),
                number_strategy(),
                number_strategy(),
                number_strategy(),
            ]),
            prop::option::of("\\PC{0,10}"),
            prop::option::of(any::<bool>()),
        )
            .prop_map(|(s, t, x, vcs, cs, st, sv, b)| Point {
                s,
                t,
                x,
                vs: vcs.as_ref().map(|p| p.iter().map(|(v, _)| *v).collect()),
                cs: vcs
                    .filter(|_| cs)
                    .map(|p| p.iter().map(|(_, c)| *c).collect()),
                st,
                sv,
                b,
            });
        (
            "[0-9a-z-]{1,20}",
            "\\PC{1,20}",
            any::<i64>(),
            dims(),
            prop::collection::vec(series, 0..6),
            prop::collection::vec(point, 0..12),
        )
            .prop_map(|(id, ns, t, dims, series, points)| Batch {
                v: VERSION,
                id: id.into(),
                ns: ns.into(),
                t,
                dims,
                series,
                points,
            })
    }

    #[test]
    fn broken_bodies_are_refused_with_where_and_why() {
        let good = encode(&sample());
        let cases: Vec<(Vec<u8>, &str, &str)> = vec![
            (Vec::new(), "id", "the body ends early"),
            (
                good[..good.len() - 1].to_vec(),
                "points[6].t",
                "the body ends early",
            ),
            (
                [&good[..], &[0][..]].concat(),
                "points",
                "1 bytes follow the last point",
            ),
            (
                [&[0xff; 9][..], &[0x81, 0][..]].concat(),
                "id",
                "a varint is longer than 10 bytes",
            ),
            (
                [&[0xff; 9][..], &[0x7f][..]].concat(),
                "id",
                "a varint is larger than 64 bits",
            ),
            (
                vec![5, b'a'],
                "id",
                "a string runs past the end of the body",
            ),
            (vec![2, 0xc3, 0x28], "id", "a string is not UTF-8"),
            // id "a", ns "N", t 0, no dims, 200 series announced.
            (
                vec![1, b'a', 1, b'N', 0, 0, 0xc8, 1],
                "series",
                "200 items announced, more than the rest of the body holds",
            ),
            // ... one point whose flags say cs without vs.
            (
                vec![1, b'a', 1, b'N', 0, 0, 0, 1, 0, CS],
                "points[0]",
                "cs without vs",
            ),
            // ... one point with x = 1e999.
            (
                vec![1, b'a', 1, b'N', 0, 0, 0, 1, 0, X, 2, 0xce, 0x0f],
                "points[0].x",
                "exponent 999 is out of range",
            ),
            // ... one point with x = 1e400, beyond f64.
            (
                vec![1, b'a', 1, b'N', 0, 0, 0, 1, 0, X, 2, 0xa0, 0x06],
                "points[0].x",
                "number 1e400 is out of range",
            ),
            // ... one point naming series -1 (difference -1 from the start).
            (
                vec![1, b'a', 1, b'N', 0, 0, 0, 1, 1, 0],
                "points[0]",
                "series index -1 is out of range",
            ),
            // ... a second point past u32 (difference 2^32 from index 1).
            (
                vec![
                    1, b'a', 1, b'N', 0, 0, 0, 2, 0, 0, 0x80, 0x80, 0x80, 0x80, 0x20, 0,
                ],
                "points[1]",
                "series index 4294967297 is out of range",
            ),
            // ... a series with unknown head bits.
            (
                vec![1, b'a', 1, b'N', 0, 0, 1, 1, b'n', 0x10, 0, 0],
                "series[0]",
                "unknown series flags 0x10",
            ),
            // ... common dimensions with a name twice.
            (
                vec![
                    1, b'a', 1, b'N', 0, 2, 1, b'k', 1, b'v', 1, b'k', 1, b'w', 0, 0,
                ],
                "dims",
                "dimension \"k\" appears twice",
            ),
        ];
        for (bytes, field, reason) in cases {
            let err = decode(&bytes).expect_err(reason);
            assert_eq!(
                (err.field.as_str(), err.reason.as_str()),
                (field, reason),
                "{bytes:?}"
            );
        }
    }
}
