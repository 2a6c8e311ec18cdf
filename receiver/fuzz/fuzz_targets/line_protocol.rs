//! Line protocol into its decoder: the first line is the write's query
//! string (`db=...&precision=...`, v1 or v2 by its first byte), the rest the
//! body. Any bytes give a batch with every bad line named, or a 4xx; never
//! a panic, and what is accepted obeys the limits. What is accepted, the
//! line-protocol sink writes so that InfluxDB's parser reads it back: one
//! line per point, strings and booleans as they came.
#![no_main]

use edgepush_receiver::decode::line_protocol::{self, Mapping, Params};
use edgepush_receiver::model::Value;
use edgepush_receiver::sink;
use edgepush_receiver_fuzz::{NOW, check, limits};
use influxdb_line_protocol::FieldValue;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (query, body) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&b""[..], data),
    };
    let v2 = query.first().is_some_and(|b| b % 2 == 1);
    let query = String::from_utf8_lossy(query);
    let params = match Params::from_query(v2, Some(&query)) {
        Ok(p) => p,
        Err(e) => {
            assert!((400..500).contains(&e.status), "{e}");
            return;
        }
    };
    let limits = limits();
    let decoded = line_protocol::decode(body, &params, &Mapping::default(), None, NOW, &limits);
    if let Ok(d) = &decoded {
        let mut text = String::new();
        sink::influxdb::encode(&d.batch, &mut text);
        let lines: Vec<_> = influxdb_line_protocol::parse_lines(&text)
            .map(|l| l.expect("the sink's line parses"))
            .collect();
        assert_eq!(lines.len(), d.batch.points.len(), "{text}");
        for (line, point) in lines.iter().zip(&d.batch.points) {
            let written = &line.field_set[0].1;
            match &point.value {
                Value::Text(s) => assert_eq!(written, &FieldValue::String(s.as_str().into())),
                Value::Boolean(b) => assert_eq!(written, &FieldValue::Boolean(*b)),
                _ => assert!(matches!(written, FieldValue::F64(_)), "{text}"),
            }
        }
    }
    check(decoded, &limits);
});
