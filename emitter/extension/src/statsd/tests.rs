use proptest::prelude::*;

use super::*;

fn one(datagram: &str) -> Result<Line<'_>, Reason> {
    let mut lines = parse(datagram.as_bytes());
    let first = lines.next().expect("a line");
    assert!(lines.next().is_none(), "one line in {datagram:?}");
    first.map_err(|e| e.reason)
}

fn line<'a>(name: &'a str, kind: Type, values: &[f64]) -> Line<'a> {
    Line {
        name,
        kind,
        values: values.to_vec(),
        member: None,
        signed: false,
        sample_rate: 1.0,
        tags: Vec::new(),
        container: None,
        timestamp: None,
    }
}

#[test]
fn the_protocol_s_examples_read_as_documented() {
    assert_eq!(
        one("page.views:1|c"),
        Ok(line("page.views", Type::Counter, &[1.0]))
    );
    assert_eq!(
        one("fuel.level:0.5|g"),
        Ok(line("fuel.level", Type::Gauge, &[0.5]))
    );
    assert_eq!(
        one("song.length:240|h|@0.5"),
        Ok(Line {
            sample_rate: 0.5,
            ..line("song.length", Type::Histogram, &[240.0])
        })
    );
    assert_eq!(
        one("users.uniques:1234|s"),
        Ok(Line {
            member: Some("1234"),
            ..line("users.uniques", Type::Set, &[])
        })
    );
    assert_eq!(
        one("users.online:1|c|@0.5|#country:china,beta"),
        Ok(Line {
            sample_rate: 0.5,
            tags: vec![("country", Some("china")), ("beta", None)],
            ..line("users.online", Type::Counter, &[1.0])
        })
    );
    // 1.1: packed values; 1.2: a container; 1.3: a timestamp.
    assert_eq!(
        one("latency:1:2.5:3|d|#route:/a|c:abc123|T1700000000"),
        Ok(Line {
            tags: vec![("route", Some("/a"))],
            container: Some("abc123"),
            timestamp: Some(1_700_000_000),
            ..line("latency", Type::Distribution, &[1.0, 2.5, 3.0])
        })
    );
    assert_eq!(one("t:320|ms"), Ok(line("t", Type::Timer, &[320.0])));
    // The original StatsD's gauge changes.
    assert_eq!(
        one("gaugor:-10|g"),
        Ok(Line {
            signed: true,
            ..line("gaugor", Type::Gauge, &[-10.0])
        })
    );
    assert_eq!(
        one("gaugor:+4|g"),
        Ok(Line {
            signed: true,
            ..line("gaugor", Type::Gauge, &[4.0])
        })
    );
    // As the agent reads them: empty packed values and empty tags are
    // skipped, a set's member keeps its ':'.
    assert_eq!(
        one("d:21::22:|d|#,a,"),
        Ok(Line {
            tags: vec![("a", None)],
            ..line("d", Type::Distribution, &[21.0, 22.0])
        })
    );
    assert_eq!(
        one("u:user:42|s|#"),
        Ok(Line {
            member: Some("user:42"),
            ..line("u", Type::Set, &[])
        })
    );
    // A tag value may hold ':'; an unknown section is skipped.
    assert_eq!(
        one("hits:2|c|#url:http://x:80/|e:future"),
        Ok(Line {
            tags: vec![("url", Some("http://x:80/"))],
            ..line("hits", Type::Counter, &[2.0])
        })
    );
}

#[test]
fn a_datagram_holds_lines_and_each_refusal_names_its_line() {
    let datagram = b"a:1|c\r\n\nb:x|c\n_e{5,4}:title|text\n_sc|db|0\nc:1|q\nd\xff:1|c\ne:1|g";
    let read: Vec<Result<&str, (usize, Reason)>> = parse(datagram)
        .map(|r| r.map(|l| l.name).map_err(|e| (e.line, e.reason)))
        .collect();
    assert_eq!(
        read,
        vec![
            Ok("a"),
            Err((3, Reason::BadValue("x".into()))),
            Err((4, Reason::NotAMetric("event"))),
            Err((5, Reason::NotAMetric("service check"))),
            Err((6, Reason::UnknownType("q".into()))),
            Err((7, Reason::NotUtf8)),
            Ok("e"),
        ]
    );
}

#[test]
fn bad_lines_are_refused_by_reason() {
    for (text, reason) in [
        ("novalue", Reason::NoValue),
        (":1|c", Reason::EmptyName),
        ("a:1", Reason::NoType),
        ("a:1|", Reason::UnknownType(String::new())),
        ("a:|c", Reason::BadValue(String::new())),
        ("a:::|d", Reason::BadValue("::".into())),
        ("a:NaN|g", Reason::BadValue("NaN".into())),
        ("a:inf|g", Reason::BadValue("inf".into())),
        ("a:1e999|g", Reason::BadValue("1e999".into())),
        ("a:|s", Reason::BadMember),
        ("a:1|c|@0", Reason::BadSampleRate("0".into())),
        ("a:1|c|@1.5", Reason::BadSampleRate("1.5".into())),
        ("a:1|c|@-0.5", Reason::BadSampleRate("-0.5".into())),
        ("a:1|c|@", Reason::BadSampleRate(String::new())),
        ("a:1|c|@1e-320", Reason::BadSampleRate("1e-320".into())),
        ("a:1|c|T1.5", Reason::BadTimestamp("1.5".into())),
        ("a:1|c|T0", Reason::BadTimestamp("0".into())),
        ("a:1|c|T-5", Reason::BadTimestamp("-5".into())),
        ("a:1|c|T+5", Reason::BadTimestamp("+5".into())),
        ("a:1|c|#:v", Reason::EmptyTag),
        // Split at '|' first: no value in the first section.
        ("page.views|c|#env:prod", Reason::NoValue),
    ] {
        assert_eq!(one(text), Err(reason), "{text:?}");
    }
    let e = LineError {
        line: 3,
        reason: Reason::BadSampleRate("2".into()),
    };
    assert_eq!(e.to_string(), r#"line 3: sample rate "2" is not in (0, 1]"#);
}

/// How a client may write a line: the sign and form of numbers, the
/// order of the optional sections.
#[derive(Clone, Copy, Debug)]
struct Style {
    plus: bool,
    whole_without_fraction: bool,
    rotate: usize,
}

/// A line as a client writes it, in `style`.
fn write(l: &Line<'_>, style: Style) -> String {
    let number = |v: f64| {
        let text = if style.whole_without_fraction && v.fract() == 0.0 && v.abs() < 1e15 {
            // -0.0 keeps its sign.
            format!(
                "{}{}",
                if v.is_sign_negative() { "-" } else { "" },
                (v as i64).abs()
            )
        } else {
            format!("{v:?}")
        };
        if style.plus && !text.starts_with('-') {
            format!("+{text}")
        } else {
            text
        }
    };
    let mut out = format!("{}:", l.name);
    match l.member {
        Some(member) => out.push_str(member),
        None => {
            let values: Vec<String> = l.values.iter().map(|v| number(*v)).collect();
            out.push_str(&values.join(":"));
        }
    }
    out.push('|');
    out.push_str(l.kind.code());
    let mut sections = Vec::new();
    if l.sample_rate != 1.0 {
        sections.push(format!("@{:?}", l.sample_rate));
    }
    if !l.tags.is_empty() {
        let tags: Vec<String> = l
            .tags
            .iter()
            .map(|(n, v)| match v {
                Some(v) => format!("{n}:{v}"),
                None => (*n).to_string(),
            })
            .collect();
        sections.push(format!("#{}", tags.join(",")));
    }
    if let Some(c) = l.container {
        sections.push(format!("c:{c}"));
    }
    if let Some(t) = l.timestamp {
        sections.push(format!("T{t}"));
    }
    let n = sections.len().max(1);
    sections.rotate_left(style.rotate % n);
    for section in sections {
        out.push('|');
        out.push_str(&section);
    }
    out
}

/// Names, members and tags as clients write them: no `:`, `|`, `,`, `#`,
/// `@` or line break where they would end the part.
fn word() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9_.\\-/ éü✓]{1,12}"
}

proptest! {
    /// Whatever a client writes is read back as written, in any style.
    #[test]
    fn a_written_line_reads_back(
        name in word(),
        kind in prop::sample::select(vec![Type::Counter, Type::Gauge, Type::Timer, Type::Histogram, Type::Distribution, Type::Set]),
        values in prop::collection::vec(
            prop::num::f64::POSITIVE | prop::num::f64::NEGATIVE | prop::num::f64::NORMAL
                | prop::num::f64::ZERO | prop::num::f64::SUBNORMAL,
            1..4,
        ),
        member in "[a-zA-Z0-9_.:/ ]{1,12}",
        style in (any::<bool>(), any::<bool>(), 0usize..4).prop_map(|(plus, whole_without_fraction, rotate)| Style { plus, whole_without_fraction, rotate }),
        rate in prop::option::of(0.0001f64..=1.0),
        tags in prop::collection::vec((word(), prop::option::of("[a-zA-Z0-9_.:/ ]{0,10}")), 0..4),
        container in prop::option::of("[a-f0-9]{1,16}"),
        timestamp in prop::option::of(1i64..4_000_000_000),
    ) {
        let set = kind == Type::Set;
        let expected = Line {
            name: &name,
            kind,
            values: if set { Vec::new() } else { values.clone() },
            member: set.then_some(member.as_str()),
            signed: !set && (style.plus || values[0].is_sign_negative()),
            sample_rate: rate.unwrap_or(1.0),
            tags: tags.iter().map(|(n, v)| (n.as_str(), v.as_deref())).collect(),
            container: container.as_deref(),
            timestamp,
        };
        let text = write(&expected, style);
        let read = one(&text);
        prop_assert_eq!(read, Ok(expected), "{}", text);
    }

    /// Any bytes, most of them the protocol's own characters: lines are
    /// read or refused, never a panic, and what is read keeps its bounds.
    #[test]
    fn any_bytes_are_read_or_refused(
        text in "[a-z0-9:|@#,.+\\-cgmshdTe_{}\r\n]{0,80}",
        bytes in prop::collection::vec(any::<u8>(), 0..80),
    ) {
        let mut datagram = text.into_bytes();
        datagram.extend_from_slice(&bytes);
        for l in parse(&datagram).flatten() {
            prop_assert!(l.values.iter().all(|v| v.is_finite()));
            prop_assert!(l.sample_rate > 0.0 && l.sample_rate <= 1.0);
        }
    }
}
