use super::proto::*;
use super::*;

const NOW: i64 = 1_700_000_000_000;
const NANOS: u64 = NOW as u64 * 1_000_000;

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
    }
}

fn number(v: f64, attrs: Vec<KeyValue>) -> NumberDataPoint {
    NumberDataPoint {
        attributes: attrs,
        time_unix_nano: NANOS,
        value: Some(number_data_point::Value::AsDouble(v)),
    }
}

fn export(metrics: Vec<Metric>) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![kv("service.name", "shop"), kv("host.name", "h1")],
            }),
            scope_metrics: vec![ScopeMetrics {
                scope: None,
                metrics,
            }],
        }],
    }
}

fn sum(name: &str, temporality: i32, monotonic: bool, points: Vec<NumberDataPoint>) -> Metric {
    Metric {
        name: name.into(),
        unit: "1".into(),
        data: Some(metric::Data::Sum(Sum {
            data_points: points,
            aggregation_temporality: temporality,
            is_monotonic: monotonic,
        })),
    }
}

fn histogram(temporality: i32, point: HistogramDataPoint) -> Metric {
    Metric {
        name: "latency".into(),
        unit: "ms".into(),
        data: Some(metric::Data::Histogram(Histogram {
            data_points: vec![point],
            aggregation_temporality: temporality,
        })),
    }
}

/// 6 observations in (-inf, 5], (5, 10], (10, 20] and above, from 2 to 18.
fn latency() -> HistogramDataPoint {
    HistogramDataPoint {
        time_unix_nano: NANOS,
        count: 6,
        sum: Some(60.0),
        bucket_counts: vec![1, 2, 3, 0],
        explicit_bounds: vec![5.0, 10.0, 20.0],
        min: Some(2.0),
        max: Some(18.0),
        ..HistogramDataPoint::default()
    }
}

fn decode_proto(request: &ExportMetricsServiceRequest) -> Decoded {
    decode(
        &request.encode_to_vec(),
        Encoding::Protobuf,
        "Otel",
        &Mapping::default(),
        NOW,
        &Limits::default(),
    )
    .expect("decoded")
}

#[test]
fn each_kind_maps_as_documented() {
    let request = export(vec![
        sum(
            "orders",
            TEMPORALITY_DELTA,
            true,
            vec![number(3.0, vec![kv("shop", "eu")])],
        ),
        sum(
            "queue",
            TEMPORALITY_CUMULATIVE,
            false,
            vec![number(-2.0, vec![])],
        ),
        Metric {
            name: "temp".into(),
            unit: "%".into(),
            data: Some(metric::Data::Gauge(Gauge {
                data_points: vec![number(21.5, vec![])],
            })),
        },
        histogram(TEMPORALITY_DELTA, latency()),
        Metric {
            name: "size".into(),
            unit: "By".into(),
            data: Some(metric::Data::ExponentialHistogram(ExponentialHistogram {
                data_points: vec![ExponentialHistogramDataPoint {
                    time_unix_nano: NANOS,
                    count: 4,
                    scale: 0,
                    zero_count: 1,
                    positive: Some(Buckets {
                        offset: 1,
                        bucket_counts: vec![2, 1],
                    }),
                    ..ExponentialHistogramDataPoint::default()
                }],
                aggregation_temporality: TEMPORALITY_DELTA,
            })),
        },
    ]);
    let d = decode_proto(&request);
    assert!(d.rejected.is_empty(), "{:?}", d.rejected);
    let b = &d.batch;
    let series = |i: usize| &b.series[b.points[i].series];
    assert_eq!(series(0).name, "orders");
    assert_eq!(series(0).kind, Kind::Counter);
    assert_eq!(series(0).unit, Unit::Count);
    // service.name is allowed by default; host.name is not.
    assert_eq!(
        series(0).dimensions,
        vec![
            ("service.name".into(), "shop".into()),
            ("shop".into(), "eu".into())
        ]
    );
    assert_eq!(b.points[0].value, Value::Counter(3.0));
    assert_eq!(b.points[0].timestamp_ms, NOW);
    assert_eq!(series(1).kind, Kind::Gauge);
    assert_eq!(
        b.points[1].value,
        Value::Gauge {
            last: -2.0,
            stats: None
        }
    );
    assert_eq!(series(2).unit, Unit::Percent);
    assert_eq!(series(3).unit, Unit::Milliseconds);
    assert_eq!(
        b.points[3].value,
        Value::Distribution {
            values: vec![2.0, 7.5, 15.0],
            counts: vec![1.0, 2.0, 3.0]
        }
    );
    // Base 2: buckets (2,4] and (4,8] at their middles, zero bucket at 0.
    assert_eq!(
        b.points[4].value,
        Value::Distribution {
            values: vec![0.0, 3.0, 6.0],
            counts: vec![1.0, 2.0, 1.0]
        }
    );
    assert!(b.id.starts_with("otlp-"));
    assert_eq!(d.indices, vec![0, 1, 2, 3, 4]);
}

#[test]
fn json_reads_as_protobuf_does() {
    let json = format!(
        r#"{{"resourceMetrics":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"shop"}}}}]}},
        "scopeMetrics":[{{"scope":{{"name":"s"}},"metrics":[
          {{"name":"orders","unit":"1","sum":{{"aggregationTemporality":1,"isMonotonic":true,
            "dataPoints":[{{"asInt":"3","timeUnixNano":"{NANOS}","attributes":[{{"key":"n","value":{{"intValue":"7"}}}}]}}]}}}},
          {{"name":"latency","unit":"ms","histogram":{{"aggregationTemporality":"AGGREGATION_TEMPORALITY_DELTA",
            "dataPoints":[{{"timeUnixNano":{NANOS},"count":"6","sum":60,"bucketCounts":["1","2","3","0"],
              "explicitBounds":[5,10,20],"min":2,"max":18,"exemplars":[]}}]}}}}
        ]}}]}}]}}"#
    );
    let d = decode(
        json.as_bytes(),
        Encoding::Json,
        "Otel",
        &Mapping::default(),
        NOW,
        &Limits::default(),
    )
    .expect("decoded");
    assert!(d.rejected.is_empty(), "{:?}", d.rejected);
    let request = export(vec![
        sum(
            "orders",
            TEMPORALITY_DELTA,
            true,
            vec![NumberDataPoint {
                attributes: vec![KeyValue {
                    key: "n".into(),
                    value: Some(AnyValue {
                        value: Some(any_value::Value::IntValue(7)),
                    }),
                }],
                time_unix_nano: NANOS,
                value: Some(number_data_point::Value::AsInt(3)),
            }],
        ),
        histogram(TEMPORALITY_DELTA, latency()),
    ]);
    let p = decode_proto(&request);
    assert_eq!(d.batch.series, p.batch.series);
    assert_eq!(d.batch.points, p.batch.points);
    // The same export twice has the same id: an exporter's retry is recognised.
    assert_eq!(p.batch.id, decode_proto(&request).batch.id);
}

/// Hostile exports: each bad data point is refused with its path and
/// reason, the good one beside it is kept.
#[test]
fn hostile_points_are_refused_one_by_one() {
    let many: Vec<KeyValue> = (0..40).map(|i| kv(&format!("a{i}"), "v")).collect();
    let list = KeyValue {
        key: "list".into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::ArrayValue(ArrayValue::default())),
        }),
    };
    let bad_hist = |p: HistogramDataPoint| {
        histogram(
            TEMPORALITY_DELTA,
            HistogramDataPoint {
                time_unix_nano: NANOS,
                ..p
            },
        )
    };
    let cases: Vec<(Metric, &str, &str)> = vec![
        (
            sum("c", TEMPORALITY_CUMULATIVE, true, vec![number(5.0, vec![])]),
            "sum.dataPoints[0]",
            "delta temporality",
        ),
        (
            sum("c", TEMPORALITY_DELTA, true, vec![number(f64::NAN, vec![])]),
            "sum.dataPoints[0].value",
            "NaN",
        ),
        (
            sum(
                "c",
                TEMPORALITY_DELTA,
                true,
                vec![number(f64::INFINITY, vec![])],
            ),
            "sum.dataPoints[0].value",
            "NaN or infinite",
        ),
        (
            sum("c", 0, true, vec![number(1.0, vec![])]),
            "sum.aggregationTemporality",
            "not set",
        ),
        (
            sum("c", TEMPORALITY_DELTA, true, vec![number(1.0, many)]),
            "sum.dataPoints[0].dimensions",
            "more than the 30",
        ),
        (
            sum("c", TEMPORALITY_DELTA, true, vec![number(1.0, vec![list])]),
            "sum.dataPoints[0].attributes.list",
            "not a string",
        ),
        (
            sum(
                "c",
                TEMPORALITY_DELTA,
                true,
                vec![NumberDataPoint {
                    time_unix_nano: 0,
                    ..number(1.0, vec![])
                }],
            ),
            "sum.dataPoints[0].timeUnixNano",
            "not set",
        ),
        (
            sum(
                "c",
                TEMPORALITY_DELTA,
                true,
                vec![NumberDataPoint {
                    value: None,
                    ..number(1.0, vec![])
                }],
            ),
            "sum.dataPoints[0]",
            "no value",
        ),
        (
            sum("", TEMPORALITY_DELTA, true, vec![number(1.0, vec![])]),
            "sum.dataPoints[0].name",
            "empty",
        ),
        (
            histogram(
                TEMPORALITY_CUMULATIVE,
                HistogramDataPoint {
                    count: 1,
                    bucket_counts: vec![1],
                    time_unix_nano: NANOS,
                    ..Default::default()
                },
            ),
            "histogram.dataPoints[0]",
            "delta temporality",
        ),
        (
            bad_hist(HistogramDataPoint {
                count: 2,
                bucket_counts: vec![1, 1],
                ..Default::default()
            }),
            "histogram.dataPoints[0]",
            "one more count than bounds",
        ),
        (
            bad_hist(HistogramDataPoint {
                count: 5,
                bucket_counts: vec![1, 1],
                explicit_bounds: vec![1.0],
                ..Default::default()
            }),
            "histogram.dataPoints[0]",
            "add up to 2",
        ),
        (
            bad_hist(HistogramDataPoint {
                count: 2,
                bucket_counts: vec![1, 0, 1],
                explicit_bounds: vec![2.0, 1.0],
                ..Default::default()
            }),
            "histogram.dataPoints[0]",
            "increasing",
        ),
        (
            bad_hist(HistogramDataPoint {
                count: 2,
                sum: Some(1.0),
                ..Default::default()
            }),
            "histogram.dataPoints[0]",
            "needs sum, min and max",
        ),
        (
            Metric {
                name: "e".into(),
                unit: String::new(),
                data: Some(metric::Data::ExponentialHistogram(ExponentialHistogram {
                    data_points: vec![ExponentialHistogramDataPoint {
                        time_unix_nano: NANOS,
                        count: 1,
                        scale: 40,
                        zero_count: 1,
                        ..Default::default()
                    }],
                    aggregation_temporality: TEMPORALITY_DELTA,
                })),
            },
            "exponentialHistogram.dataPoints[0]",
            "scale 40",
        ),
        (
            Metric {
                name: "none".into(),
                unit: String::new(),
                data: None,
            },
            "metrics[0]",
            "no data",
        ),
    ];
    for (metric, field, reason) in cases {
        let good = sum("good", TEMPORALITY_DELTA, true, vec![number(1.0, vec![])]);
        let d = decode_proto(&export(vec![metric, good]));
        assert_eq!(d.batch.points.len(), 1, "{field}: the good point stays");
        let r = d
            .rejected
            .first()
            .unwrap_or_else(|| panic!("{field}: not refused"));
        assert!(r.field.ends_with(field), "{field}: {r:?}");
        assert!(r.reason.contains(reason), "{field}: {r:?}");
    }
}

#[test]
fn undecodable_exports_and_answers() {
    let e = decode(
        b"\xff\xff\xff",
        Encoding::Protobuf,
        "Otel",
        &Mapping::default(),
        NOW,
        &Limits::default(),
    )
    .expect_err("protobuf");
    assert_eq!((e.status, e.error), (400, "invalid_protobuf"));
    let e = decode(
        b"{\"resourceMetrics\":7}",
        Encoding::Json,
        "Otel",
        &Mapping::default(),
        NOW,
        &Limits::default(),
    )
    .expect_err("json");
    assert_eq!((e.status, e.error), (400, "invalid_json"));
    let ok = ExportMetricsServiceResponse::decode(&response(Encoding::Protobuf, 0, "")[..])
        .expect("decodes");
    assert_eq!(ok.partial_success, None);
    let partial = ExportMetricsServiceResponse::decode(&response(Encoding::Protobuf, 2, "why")[..])
        .expect("decodes");
    assert_eq!(
        partial.partial_success.map(|p| p.rejected_data_points),
        Some(2)
    );
    assert_eq!(
        String::from_utf8(response(Encoding::Json, 1, "why")).expect("utf-8"),
        r#"{"partialSuccess":{"rejectedDataPoints":1,"errorMessage":"why"}}"#
    );
    let bad = Error::new(400, "invalid_json", "bad").field("body");
    assert_eq!(
        Status::decode(&status(Encoding::Protobuf, &bad)[..]).map(|s| s.code),
        Ok(3)
    );
    let json: serde_json::Value =
        serde_json::from_slice(&status(Encoding::Json, &bad)).expect("json");
    assert_eq!((&json["code"], &json["field"]), (&3.into(), &"body".into()));
    assert_eq!(unit("{request}"), Unit::Count);
    assert_eq!(unit("furlongs"), Unit::None);
}

/// The fuzzing seeds are valid exports, so fuzzing starts from inputs that
/// reach every mapping.
#[test]
fn fuzz_seeds_decode() {
    let far = 1_700_000_000_000;
    for (seed, points) in [
        (&include_bytes!("../../../fuzz/seeds/otlp/export.pb")[..], 3),
        (
            &include_bytes!("../../../fuzz/seeds/otlp/export.json")[..],
            3,
        ),
    ] {
        let encoding = if seed[0] % 2 == 0 {
            Encoding::Protobuf
        } else {
            Encoding::Json
        };
        let d = decode(
            &seed[1..],
            encoding,
            "Fuzz",
            &Mapping::default(),
            far,
            &Limits::default(),
        )
        .expect("seed decodes");
        assert!(d.rejected.is_empty(), "{:?}", d.rejected);
        assert_eq!(d.batch.points.len(), points);
    }
}

/// The oneofs read by hand: every `AnyValue` and data-point form in both
/// spellings, unknown fields skipped, an escaped key, the last member given
/// winning, and a wrong type refused with the place.
#[test]
fn json_oneofs_read_every_form() {
    let any = |json: &str| {
        serde_json::from_str::<AnyValue>(json)
            .map(|a| a.value)
            .map_err(|e| e.to_string())
    };
    use any_value::Value as V;
    assert_eq!(
        any(r#"{"stringValue":"s"}"#),
        Ok(Some(V::StringValue("s".into())))
    );
    assert_eq!(
        any(r#"{"string_value":"s"}"#),
        Ok(Some(V::StringValue("s".into())))
    );
    assert_eq!(any(r#"{"bool_value":true}"#), Ok(Some(V::BoolValue(true))));
    assert_eq!(any(r#"{"intValue":"-9"}"#), Ok(Some(V::IntValue(-9))));
    assert_eq!(any(r#"{"int_value":12}"#), Ok(Some(V::IntValue(12))));
    assert_eq!(
        any(r#"{"doubleValue":"NaN"}"#).map(|v| matches!(v, Some(V::DoubleValue(d)) if d.is_nan())),
        Ok(true)
    );
    assert_eq!(
        any(r#"{"double_value":1.5}"#),
        Ok(Some(V::DoubleValue(1.5)))
    );
    assert_eq!(
        any(r#"{"bytesValue":"aGk="}"#),
        Ok(Some(V::BytesValue(b"hi".to_vec())))
    );
    assert_eq!(
        any(r#"{"arrayValue":{"values":[{"intValue":1}]}}"#),
        Ok(Some(V::ArrayValue(ArrayValue {
            values: vec![AnyValue {
                value: Some(V::IntValue(1))
            }]
        })))
    );
    assert_eq!(
        any(r#"{"kvlist_value":{"values":[{"key":"k","value":{"boolValue":false}}]}}"#),
        Ok(Some(V::KvlistValue(KeyValueList {
            values: vec![KeyValue {
                key: "k".into(),
                value: Some(AnyValue {
                    value: Some(V::BoolValue(false))
                })
            }]
        })))
    );
    assert_eq!(
        any(r#"{"future":{"x":[1,2]},"str\u0069ngValue":"e"}"#),
        Ok(Some(V::StringValue("e".into())))
    );
    assert_eq!(any(r#"{}"#), Ok(None));
    assert_eq!(
        any(r#"{"intValue":1,"stringValue":"last"}"#),
        Ok(Some(V::StringValue("last".into())))
    );
    for (bad, says) in [
        (r#"{"intValue":1.5}"#, "is not an integer"),
        (r#"{"intValue":"x"}"#, "\"x\" is not an integer"),
        (r#"{"bytesValue":"%%"}"#, "Invalid"),
        (r#"[1]"#, "an AnyValue object"),
    ] {
        let e = any(bad).expect_err(bad);
        assert!(e.contains(says), "{bad}: {e}");
    }

    let point =
        |json: &str| serde_json::from_str::<NumberDataPoint>(json).map_err(|e| e.to_string());
    assert_eq!(
        point(r#"{"as_double":"-Infinity","time_unix_nano":"5","flags":1,"exemplars":[]}"#)
            .map(|p| (p.value, p.time_unix_nano)),
        Ok((
            Some(number_data_point::Value::AsDouble(f64::NEG_INFINITY)),
            5
        ))
    );
    assert_eq!(
        point(r#"{"asInt":"9007199254740993"}"#).map(|p| p.value),
        Ok(Some(number_data_point::Value::AsInt(9_007_199_254_740_993)))
    );
    assert!(point(r#"{"timeUnixNano":-1}"#).is_err());

    let metric = |json: &str| serde_json::from_str::<Metric>(json).map_err(|e| e.to_string());
    let m = metric(r#"{"name":"q","description":"d","unit":"By","exponential_histogram":{"aggregation_temporality":"AGGREGATION_TEMPORALITY_DELTA","data_points":[]},"metadata":[]}"#)
        .expect("metric");
    assert_eq!((m.name.as_str(), m.unit.as_str()), ("q", "By"));
    assert!(
        matches!(m.data, Some(metric::Data::ExponentialHistogram(ref h)) if h.aggregation_temporality == TEMPORALITY_DELTA),
        "{:?}",
        m.data.is_some()
    );
    assert!(metric(r#"{"name":"q"}"#).is_ok_and(|m| m.data.is_none()));
    assert!(metric(r#"{"gauge":7}"#).is_err());
}
