//! Configuration from named string settings: a Worker's vars and secrets
//! (and, natively, the same names as environment variables).
//!
//! | name | meaning |
//! | --- | --- |
//! | `EDGEPUSH_API_KEYS` (secret) | keys of the tenant `default`, which may write any namespace, comma-separated; with no tenants at all the receiver is open |
//! | `EDGEPUSH_TENANTS` (secret) | more tenants: a JSON array of [`TenantConfig`]s (`name`, `keys`, `namespaces`, `require_signature`, `requests_per_second`, `points_per_second`, `burst_seconds`, `limits`) |
//! | `EDGEPUSH_SIGNATURE_WINDOW_SECONDS` | how far a signature's time may be from the receiver's clock (default 300) |
//! | `EDGEPUSH_MAX_BODY_BYTES`, `EDGEPUSH_MAX_DECOMPRESSED_BYTES`, `EDGEPUSH_MAX_POINTS`, `EDGEPUSH_MAX_SERIES`, `EDGEPUSH_MAX_VALUES_PER_POINT`, `EDGEPUSH_MAX_DIMENSIONS`, `EDGEPUSH_MAX_DIMENSION_VALUE_BYTES` | the [`Limits`] |
//! | `CLOUDWATCH_REGION` | forward to CloudWatch in this region |
//! | `CLOUDWATCH_ENDPOINT` | CloudWatch endpoint override |
//! | `CLOUDWATCH_COMPRESS` | `false` sends bodies uncompressed (default: gzip) |
//! | `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN` (secrets) | CloudWatch credentials |
//! | `INFLUXDB_URL` | forward line protocol to this store |
//! | `INFLUXDB_DATABASE` (+ `INFLUXDB_USERNAME`, `INFLUXDB_PASSWORD`) | InfluxDB 1.x `/write` API |
//! | `INFLUXDB_ORG`, `INFLUXDB_BUCKET` (+ `INFLUXDB_TOKEN`) | InfluxDB 2.x/3.x `/api/v2/write` API |
//! | `INFLUXDB_STORE_STRINGS` | `false` refuses string values instead of writing them (for VictoriaMetrics) |
//! | `INFLUXDB_QUANTILES` | the quantile fields written for distributions, comma-separated in (0, 1] (default `0.5,0.9,0.99`: `p50`, `p90`, `p99`; empty: none) |
//! | `EDGEPUSH_FORMATS` | how other formats map to metrics: a JSON [`Formats`] (`namespace`, `line_protocol`, `otlp`) |

use crate::decode::Formats;
use crate::ingest::Ingest;
use crate::limits::Limits;
use crate::sink::{Sink, cloudwatch, influxdb};
use crate::tenant::{DEFAULT_SIGNATURE_WINDOW_SECONDS, TenantConfig, Tenants};

/// The ingest settings and sinks that `get` describes. An error names the
/// setting at fault.
pub fn from_settings(get: impl Fn(&str) -> Option<String>) -> Result<(Ingest, Vec<Sink>), String> {
    let get = |name: &str| {
        get(name)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let number = |name: &str, default: usize| -> Result<usize, String> {
        match get(name) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| format!("{name} must be a whole number, not {v:?}")),
        }
    };
    match get("EDGEPUSH_AGGREGATION").as_deref() {
        None | Some("false") => {}
        Some("true") => {
            return Err(
                "EDGEPUSH_AGGREGATION is true, but the Worker does not merge pushes yet \
                        (the native receiver does; Durable Objects are planned): unset it"
                    .into(),
            );
        }
        Some(other) => {
            return Err(format!(
                "EDGEPUSH_AGGREGATION is {other:?}, not true or false"
            ));
        }
    }
    let defaults = Limits::default();
    let limits = Limits {
        max_body_bytes: number("EDGEPUSH_MAX_BODY_BYTES", defaults.max_body_bytes)?,
        max_decompressed_bytes: number(
            "EDGEPUSH_MAX_DECOMPRESSED_BYTES",
            defaults.max_decompressed_bytes,
        )?,
        max_points: number("EDGEPUSH_MAX_POINTS", defaults.max_points)?,
        max_series: number("EDGEPUSH_MAX_SERIES", defaults.max_series)?,
        max_values_per_point: number(
            "EDGEPUSH_MAX_VALUES_PER_POINT",
            defaults.max_values_per_point,
        )?,
        max_dimensions: number("EDGEPUSH_MAX_DIMENSIONS", defaults.max_dimensions)?,
        max_dimension_value_bytes: number(
            "EDGEPUSH_MAX_DIMENSION_VALUE_BYTES",
            defaults.max_dimension_value_bytes,
        )?,
    };
    limits.check()?;
    let api_keys = get("EDGEPUSH_API_KEYS")
        .map(|keys| {
            keys.split(',')
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();

    let tenant_list: Vec<TenantConfig> = match get("EDGEPUSH_TENANTS") {
        None => Vec::new(),
        Some(json) => serde_json::from_slice(json.as_bytes())
            .map_err(|e| format!("EDGEPUSH_TENANTS is not a JSON array of tenants: {e}"))?,
    };
    let window = number(
        "EDGEPUSH_SIGNATURE_WINDOW_SECONDS",
        DEFAULT_SIGNATURE_WINDOW_SECONDS as usize,
    )? as u64;
    let tenants = Tenants::with_api_keys(api_keys, tenant_list, window)
        .map_err(|e| format!("EDGEPUSH_API_KEYS / EDGEPUSH_TENANTS: {e}"))?;

    let mut sinks = Vec::new();
    if let Some(region) = get("CLOUDWATCH_REGION") {
        let keys = cloudwatch::Keys {
            access_key_id: get("AWS_ACCESS_KEY_ID")
                .ok_or("CLOUDWATCH_REGION is set but AWS_ACCESS_KEY_ID is not")?,
            secret_access_key: get("AWS_SECRET_ACCESS_KEY")
                .ok_or("CLOUDWATCH_REGION is set but AWS_SECRET_ACCESS_KEY is not")?,
            session_token: get("AWS_SESSION_TOKEN"),
        };
        // A Worker signs AWS JSON itself: the SDK does not run there.
        let config = cloudwatch::Config {
            endpoint: get("CLOUDWATCH_ENDPOINT"),
            compress: get("CLOUDWATCH_COMPRESS").is_none_or(|v| v != "false"),
            protocol: cloudwatch::Protocol::Json,
            ..cloudwatch::Config::new(region)
        };
        sinks.push(Sink::CloudWatch(config, keys));
    }
    if let Some(url) = get("INFLUXDB_URL") {
        let store_strings = match get("INFLUXDB_STORE_STRINGS").as_deref() {
            None | Some("true") => true,
            Some("false") => false,
            Some(other) => {
                return Err(format!(
                    "INFLUXDB_STORE_STRINGS is {other:?}, not true or false"
                ));
            }
        };
        let quantiles = match get("INFLUXDB_QUANTILES") {
            Some(list) => {
                influxdb::Quantiles::parse(&list).map_err(|e| format!("INFLUXDB_QUANTILES: {e}"))?
            }
            None => influxdb::Quantiles::default(),
        };
        let target = match (
            get("INFLUXDB_DATABASE"),
            get("INFLUXDB_ORG"),
            get("INFLUXDB_BUCKET"),
        ) {
            (Some(database), None, None) => influxdb::Target::V1 {
                url,
                database,
                retention_policy: get("INFLUXDB_RETENTION_POLICY"),
                username: get("INFLUXDB_USERNAME"),
                password: get("INFLUXDB_PASSWORD"),
                store_strings,
                quantiles: quantiles.clone(),
            },
            (None, Some(org), Some(bucket)) => influxdb::Target::V2 {
                url,
                org,
                bucket,
                token: get("INFLUXDB_TOKEN"),
                store_strings,
                quantiles,
            },
            _ => {
                return Err("INFLUXDB_URL needs INFLUXDB_DATABASE (1.x API) or INFLUXDB_ORG and INFLUXDB_BUCKET (2.x API)".into());
            }
        };
        sinks.push(Sink::Influxdb(target));
    }
    if sinks.is_empty() {
        return Err("no sink configured: set CLOUDWATCH_REGION or INFLUXDB_URL".into());
    }
    let formats = match get("EDGEPUSH_FORMATS") {
        None => Formats::default(),
        Some(json) => serde_json::from_slice(json.as_bytes())
            .map_err(|e| format!("EDGEPUSH_FORMATS is not valid: {e}"))?,
    };
    Ok((
        Ingest {
            limits,
            tenants,
            formats,
        },
        sinks,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn settings(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn settings_describe_limits_keys_and_sinks() {
        let (ingest, sinks) = from_settings(settings(&[
            ("EDGEPUSH_API_KEYS", " k1, k2 ,,"),
            ("EDGEPUSH_MAX_POINTS", "50"),
            ("CLOUDWATCH_REGION", "eu-west-1"),
            ("CLOUDWATCH_ENDPOINT", "http://127.0.0.1:5000/"),
            ("AWS_ACCESS_KEY_ID", "AK"),
            ("AWS_SECRET_ACCESS_KEY", "SK"),
            ("INFLUXDB_URL", "http://127.0.0.1:8086"),
            ("INFLUXDB_ORG", "o"),
            ("INFLUXDB_BUCKET", "b"),
            ("INFLUXDB_STORE_STRINGS", "false"),
            ("INFLUXDB_QUANTILES", "0.5, 0.999"),
            (
                "EDGEPUSH_TENANTS",
                r#"[{"name":"shop","keys":["k3"],"namespaces":["Shop/*"],"points_per_second":100}]"#,
            ),
        ]))
        .expect("valid");
        let tenant = |key: &str| {
            let auth = format!("Bearer {key}");
            let caller = ingest
                .authenticate(
                    crate::ingest::Headers {
                        authorization: Some(&auth),
                        ..Default::default()
                    },
                    b"",
                    0,
                )
                .map_err(|e| e.message)?;
            Ok::<_, String>(ingest.tenants.name(&caller).to_string())
        };
        assert_eq!(tenant("k1").as_deref(), Ok("default"));
        assert_eq!(tenant("k2").as_deref(), Ok("default"));
        assert_eq!(tenant("k3").as_deref(), Ok("shop"));
        assert!(tenant("k4").is_err());
        assert_eq!(
            ingest.tenants.get(1).map(|t| t.points_per_second),
            Some(100)
        );
        assert_eq!(ingest.limits.max_points, 50);
        assert_eq!(ingest.limits.max_series, Limits::default().max_series);
        assert!(
            matches!(&sinks[0], Sink::CloudWatch(c, k) if c.region.as_deref() == Some("eu-west-1") && c.protocol == cloudwatch::Protocol::Json && k.access_key_id == "AK")
        );
        assert!(
            matches!(&sinks[1], Sink::Influxdb(influxdb::Target::V2 { bucket, store_strings: false, .. }) if bucket == "b")
        );
        let Sink::Influxdb(target) = &sinks[1] else {
            panic!("an InfluxDB sink");
        };
        assert_eq!(
            target.quantiles(),
            &influxdb::Quantiles::new(&[0.5, 0.999]).expect("valid")
        );
    }

    #[test]
    fn bad_settings_are_named() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[], "no sink configured"),
            (
                &[("EDGEPUSH_TENANTS", r#"{"name":"x"}"#)],
                "EDGEPUSH_TENANTS is not a JSON array",
            ),
            (
                &[(
                    "EDGEPUSH_TENANTS",
                    r#"[{"name":"x","keys":["k"],"namespaces":[]}]"#,
                )],
                "no namespaces",
            ),
            (&[("CLOUDWATCH_REGION", "r")], "AWS_ACCESS_KEY_ID"),
            (&[("INFLUXDB_URL", "u")], "INFLUXDB_DATABASE"),
            (
                &[
                    ("INFLUXDB_URL", "u"),
                    ("INFLUXDB_DATABASE", "d"),
                    ("INFLUXDB_STORE_STRINGS", "no"),
                ],
                "INFLUXDB_STORE_STRINGS is \"no\", not true or false",
            ),
            (
                &[
                    ("INFLUXDB_URL", "u"),
                    ("INFLUXDB_DATABASE", "d"),
                    ("INFLUXDB_QUANTILES", "0.5,95"),
                ],
                "INFLUXDB_QUANTILES: quantile 95 is not in (0, 1]",
            ),
            (
                &[
                    ("INFLUXDB_URL", "u"),
                    ("INFLUXDB_DATABASE", "d"),
                    ("EDGEPUSH_MAX_POINTS", "lots"),
                ],
                "EDGEPUSH_MAX_POINTS",
            ),
            (
                &[
                    ("INFLUXDB_URL", "u"),
                    ("INFLUXDB_DATABASE", "d"),
                    ("EDGEPUSH_AGGREGATION", "true"),
                ],
                "the Worker does not merge pushes yet",
            ),
            (
                &[
                    ("INFLUXDB_URL", "u"),
                    ("INFLUXDB_DATABASE", "d"),
                    ("EDGEPUSH_AGGREGATION", "yes"),
                ],
                "EDGEPUSH_AGGREGATION is \"yes\", not true or false",
            ),
        ];
        for (pairs, words) in cases {
            let err = from_settings(settings(pairs)).expect_err("refused");
            assert!(err.contains(words), "{err}");
        }
    }
}
