//! The bad-input table, shared by every receiver under test (native and
//! workerd): each request gets a clear 4xx JSON error naming the field and
//! the reason, and a mixed batch is accepted in part, said explicitly.
//!
//! The receiver under test must have `max_body_bytes = 262144` and
//! `max_decompressed_bytes = 1048576`.

use crate::{Influx, gzip, post};

/// The wire v1 media type.
pub const V1: &str = "application/vnd.edgepush.v1+json";

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A wire v1 batch around `series` and `points`.
pub fn batch(id: &str, series: &str, points: &str) -> String {
    format!(
        r#"{{"v":1,"id":"{id}","ns":"Bad","t":{},"series":[{series}],"points":[{points}]}}"#,
        now_ms()
    )
}

struct Case {
    name: &'static str,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    status: u16,
    error: &'static str,
    /// The field the answer must name, or a rejected point's field.
    field: Option<&'static str>,
    /// Words the message must contain.
    words: &'static str,
}

/// The wire v2 encoding of a wire v1 JSON batch.
pub fn v2(json: &str) -> Vec<u8> {
    let batch: edgepush::wire::Batch<'_> = serde_json::from_str(json).expect("a v1 batch");
    edgepush::wire::v2::encode(&batch)
}

fn gz_v2() -> Vec<(&'static str, String)> {
    vec![
        ("content-type", edgepush::wire::v2::CONTENT_TYPE.into()),
        ("content-encoding", "gzip".into()),
    ]
}

fn gz_v1() -> Vec<(&'static str, String)> {
    vec![
        ("content-type", V1.into()),
        ("content-encoding", "gzip".into()),
    ]
}

/// Sends every bad request of the table, then a batch with good and bad
/// points, to `url` (the receiver's `/v1/metrics`) and checks each answer.
/// Afterwards the sink must hold exactly one point: `kept` = 5.
pub fn check_refusals(url: &str) {
    let good = batch("ok-1", r#"{"n":"fine","k":"c"}"#, r#"{"s":0,"x":1}"#);
    let gz_good = gzip(good.as_bytes());
    let bomb = gzip(&vec![b' '; 64 << 20]);
    assert!(
        bomb.len() < 256 * 1024,
        "the bomb is a small body: {}",
        bomb.len()
    );
    let wide: Vec<String> = (0..31).map(|i| format!(r#""d{i}":"v""#)).collect();

    let cases = vec![
        Case {
            name: "truncated gzip",
            headers: gz_v1(),
            body: gz_good[..gz_good.len() / 2].to_vec(),
            status: 400,
            error: "invalid_gzip",
            field: Some("body"),
            words: "not valid gzip",
        },
        Case {
            name: "gzip followed by bytes that are not gzip",
            headers: gz_v1(),
            body: [&gz_good[..], b"trailing"].concat(),
            status: 400,
            error: "invalid_gzip",
            field: Some("body"),
            words: "not valid gzip",
        },
        Case {
            name: "gzip bomb",
            headers: gz_v1(),
            body: bomb,
            status: 413,
            error: "body_too_large",
            field: Some("body"),
            words: "larger than 1048576 bytes once decompressed",
        },
        Case {
            name: "wrong content type",
            headers: vec![("content-type", "text/csv".into())],
            body: good.clone().into_bytes(),
            status: 415,
            error: "unsupported_media_type",
            field: Some("content-type"),
            words: "application/vnd.edgepush.v1+json",
        },
        Case {
            name: "an edgepush batch sent as OTLP/JSON",
            headers: vec![("content-type", "application/json".into())],
            body: good.clone().into_bytes(),
            status: 400,
            error: "invalid_json",
            field: Some("body"),
            words: "not an OTLP/JSON export: unknown field `v`",
        },
        Case {
            name: "unknown encoding",
            headers: vec![
                ("content-type", V1.into()),
                ("content-encoding", "br".into()),
            ],
            body: good.clone().into_bytes(),
            status: 415,
            error: "unsupported_encoding",
            field: Some("content-encoding"),
            words: "\"br\"",
        },
        Case {
            name: "unknown wire version (media type)",
            headers: vec![("content-type", "application/vnd.edgepush.v9+json".into())],
            body: good.clone().into_bytes(),
            status: 415,
            error: "unsupported_version",
            field: Some("content-type"),
            words: "wire version 9",
        },
        Case {
            name: "unknown wire version (body)",
            headers: gz_v1(),
            body: gzip(good.replace(r#""v":1"#, r#""v":2"#).as_bytes()),
            status: 400,
            error: "unsupported_version",
            field: Some("v"),
            words: "version 2",
        },
        Case {
            name: "a v2 body sent as v3",
            headers: vec![("content-type", edgepush::wire::v3::CONTENT_TYPE.into())],
            body: v2(&good),
            status: 400,
            error: "invalid_body",
            field: Some("sets[0]"),
            words: "not a wire v3 batch",
        },
        Case {
            name: "unknown wire version (binary media type)",
            headers: vec![("content-type", "application/vnd.edgepush.v4".into())],
            body: v2(&good),
            status: 415,
            error: "unsupported_version",
            field: Some("content-type"),
            words: "wire version 4",
        },
        Case {
            name: "wire v2 body cut short",
            headers: gz_v2(),
            body: {
                let full = v2(&good);
                gzip(&full[..full.len() - 1])
            },
            status: 400,
            error: "invalid_body",
            field: Some("points[0].x"),
            words: "not a wire v2 batch: the body ends early",
        },
        Case {
            name: "wire v1 JSON sent as wire v2",
            headers: gz_v2(),
            body: gz_good.clone(),
            status: 400,
            error: "invalid_body",
            field: Some("id"),
            words: "not a wire v2 batch",
        },
        Case {
            name: "wire v2 value beyond CloudWatch's range",
            headers: gz_v2(),
            body: gzip(&v2(&batch(
                "big2",
                r#"{"n":"m","k":"g"}"#,
                r#"{"s":0,"x":1e200}"#,
            ))),
            status: 400,
            error: "invalid_points",
            field: Some("points[0].x"),
            words: "outside -2^360..2^360",
        },
        Case {
            name: "NaN",
            headers: gz_v1(),
            body: gzip(batch("nan", r#"{"n":"m","k":"g"}"#, r#"{"s":0,"x":NaN}"#).as_bytes()),
            status: 400,
            error: "invalid_json",
            field: Some("points[0].x"),
            words: "expected value",
        },
        Case {
            name: "infinity",
            headers: gz_v1(),
            body: gzip(batch("inf", r#"{"n":"m","k":"g"}"#, r#"{"s":0,"x":-1e400}"#).as_bytes()),
            status: 400,
            error: "invalid_json",
            field: Some("points[0].x"),
            words: "number out of range",
        },
        Case {
            name: "value beyond CloudWatch's range",
            headers: gz_v1(),
            body: gzip(batch("big", r#"{"n":"m","k":"g"}"#, r#"{"s":0,"x":1e200}"#).as_bytes()),
            status: 400,
            error: "invalid_points",
            field: Some("points[0].x"),
            words: "outside -2^360..2^360",
        },
        Case {
            name: "empty dimension value",
            headers: gz_v1(),
            body: gzip(
                batch(
                    "empty",
                    r#"{"n":"m","k":"c","d":{"route":""}}"#,
                    r#"{"s":0,"x":1}"#,
                )
                .as_bytes(),
            ),
            status: 400,
            error: "invalid_points",
            field: Some("series[0].d.route"),
            words: "dimension value is empty",
        },
        Case {
            name: "backslash that line protocol would read as an escape",
            headers: gz_v1(),
            body: gzip(
                batch(
                    "bs",
                    r#"{"n":"m","k":"c","d":{"path":"C:\\dir\\"}}"#,
                    r#"{"s":0,"x":1}"#,
                )
                .as_bytes(),
            ),
            status: 400,
            error: "invalid_points",
            field: Some("series[0].d.path"),
            words: "backslash",
        },
        Case {
            name: "31 dimensions",
            headers: gz_v1(),
            body: gzip(
                batch(
                    "wide",
                    &format!(r#"{{"n":"m","k":"c","d":{{{}}}}}"#, wide.join(",")),
                    r#"{"s":0,"x":1}"#,
                )
                .as_bytes(),
            ),
            status: 400,
            error: "invalid_points",
            field: Some("series[0].d"),
            words: "31 dimensions",
        },
        Case {
            name: "not JSON",
            headers: vec![("content-type", V1.into())],
            body: b"orders,route=/buy value=1".to_vec(),
            status: 400,
            error: "invalid_json",
            field: None,
            words: "expected value",
        },
        Case {
            name: "invalid UTF-8 in a metric name",
            headers: gz_v1(),
            body: gzip(
                &[
                    &br#"{"v":1,"id":"utf","ns":"Bad","t":0,"series":[{"n":"bad"#[..],
                    &[0xff, 0xfe],
                    &br#"","k":"c"}],"points":[{"s":0,"x":1}]}"#[..],
                ]
                .concat(),
            ),
            status: 400,
            error: "invalid_json",
            field: Some("series[0].n"),
            words: "invalid unicode code point",
        },
    ];

    for case in &cases {
        let headers: Vec<(&str, &str)> =
            case.headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (status, answer) = post(url, &headers, &case.body);
        let name = case.name;
        assert_eq!(status, case.status, "{name}: {answer}");
        assert_eq!(answer["error"], case.error, "{name}: {answer}");
        let message = answer["message"].as_str().unwrap_or_default();
        if case.error == "invalid_points" {
            // Every point refused: each is listed with its field and reason.
            assert_eq!(answer["accepted"], 0, "{name}: {answer}");
            let first = &answer["rejected"][0];
            assert_eq!(first["field"].as_str(), case.field, "{name}: {answer}");
            assert!(
                first["reason"]
                    .as_str()
                    .unwrap_or_default()
                    .contains(case.words),
                "{name}: {answer}"
            );
        } else {
            assert_eq!(answer["field"].as_str(), case.field, "{name}: {answer}");
            assert!(message.contains(case.words), "{name}: {answer}");
        }
    }

    // A body declared larger than the limit is refused from its headers,
    // before a byte of it is read. (Sent by hand: a client still writing a
    // large body would see the connection close under it.)
    let (status, answer) =
        crate::post_headers_only(url, &[("content-type", V1), ("content-length", "307200")]);
    assert_eq!(status, 413, "{answer}");
    assert_eq!(answer["error"], "body_too_large");
    assert!(
        answer["message"]
            .as_str()
            .unwrap_or_default()
            .contains("larger than 262144 bytes"),
        "{answer}"
    );

    // A batch with good and bad points: the good ones are accepted, the bad
    // ones named, and the answer says it was partial.
    let mixed = batch(
        "mixed",
        r#"{"n":"kept","k":"c"},{"n":"dropped","k":"c","d":{"x":""}}"#,
        r#"{"s":0,"x":5},{"s":1,"x":1},{"s":0,"t":1,"x":1e300}"#,
    );
    let headers = [("content-type", V1), ("content-encoding", "gzip")];
    let (status, answer) = post(url, &headers, &gzip(mixed.as_bytes()));
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["accepted"], 1);
    assert_eq!(answer["rejected_count"], 2);
    assert_eq!(answer["partial"], true);
    let fields: Vec<&str> = answer["rejected"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["field"].as_str())
        .collect();
    assert_eq!(fields, ["series[1].d.x", "points[2].x"]);
}

/// After [`check_refusals`]: the sink holds only the good point of the mixed
/// batch (`kept` = 5), nothing that was refused.
pub fn assert_only_kept_arrived(influx: &Influx) {
    let measurements: Vec<serde_json::Value> = influx
        .rows("SHOW MEASUREMENTS")
        .into_iter()
        .map(|r| r["name"].clone())
        .collect();
    assert_eq!(measurements, [serde_json::Value::from("kept")]);
    let rows = influx.rows(r#"SELECT * FROM "kept""#);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["value"].as_f64(), Some(5.0));
}
