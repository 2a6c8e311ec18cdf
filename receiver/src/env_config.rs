//! Configuration from named string settings: a Worker's vars and secrets
//! (and, natively, the same names as environment variables).
//!
//! | name | meaning |
//! | --- | --- |
//! | `EDGEPUSH_API_KEYS` (secret) | keys of the tenant `default`, which may write any namespace, comma-separated |
//! | `EDGEPUSH_ALLOW_UNAUTHENTICATED` | `true` accepts pushes from anyone when there are no keys and no tenants (a gateway in front authenticates); without it such a Worker refuses every push, saying why |
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
//! | `EDGEPUSH_AGGREGATION` | `true` merges pushes per series and period before the sinks, on Durable Objects (default `false`; see the README) |
//! | `EDGEPUSH_AGGREGATION_FLUSH_SECONDS` | how long after its end a period goes out (default 10) |
//! | `EDGEPUSH_AGGREGATION_MAX_BYTES` | the most one aggregator holds, estimated, before it flushes early and answers 503 (default 32 MiB: a Durable Object has 128 MB) |
//! | `EDGEPUSH_AGGREGATION_SHARDS` | aggregators per namespace (default 1, at most 256): series are spread over them by a hash |
//! | `CLOUDWATCH_AGGREGATE`, `INFLUXDB_AGGREGATE` | `true` or `false`: whether that sink takes merged points (default: `EDGEPUSH_AGGREGATION`) |
//! | `EDGEPUSH_FORMATS` | how other formats map to metrics: a JSON [`Formats`] (`namespace`, `line_protocol`, `otlp`) |

use crate::aggregate::{self, MAX_SHARDS};
use crate::decode::Formats;
use crate::ingest::Ingest;
use crate::limits::Limits;
use crate::sink::{Sink, cloudwatch, influxdb};
use crate::tenant::{DEFAULT_SIGNATURE_WINDOW_SECONDS, TenantConfig, Tenants};

/// What a Worker runs with.
#[derive(Debug)]
pub struct Config {
    /// How pushes are checked and decoded.
    pub ingest: Ingest,
    /// Where points go.
    pub sinks: Vec<Sink>,
    /// Whether and when pushes are merged.
    pub aggregation: aggregate::Settings,
    /// Per sink (as [`Config::sinks`]): whether it takes merged points.
    pub aggregated: Vec<bool>,
    /// Aggregators per namespace.
    pub shards: u32,
}

/// The Worker's default bound on one aggregator: a Durable Object has
/// 128 MB of memory.
pub const DEFAULT_AGGREGATION_MAX_BYTES: usize = 32 << 20;

/// Why a Worker with no keys takes no pushes.
pub const OPEN: &str = "no EDGEPUSH_API_KEYS and no EDGEPUSH_TENANTS: anyone could push into \
    this receiver's sinks; set a key (wrangler secret put EDGEPUSH_API_KEYS), or \
    EDGEPUSH_ALLOW_UNAUTHENTICATED = \"true\" when a gateway in front authenticates";

/// The configuration that `get` describes. An error names the setting at
/// fault.
pub fn from_settings(get: impl Fn(&str) -> Option<String>) -> Result<Config, String> {
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
    let switch = |name: &str, default: bool| -> Result<bool, String> {
        match get(name).as_deref() {
            None => Ok(default),
            Some("true") => Ok(true),
            Some("false") => Ok(false),
            Some(other) => Err(format!("{name} is {other:?}, not true or false")),
        }
    };
    let aggregation = aggregate::Settings {
        enabled: switch("EDGEPUSH_AGGREGATION", false)?,
        flush_interval_seconds: number(
            "EDGEPUSH_AGGREGATION_FLUSH_SECONDS",
            aggregate::Settings::default().flush_interval_seconds as usize,
        )? as u64,
        max_bytes: number(
            "EDGEPUSH_AGGREGATION_MAX_BYTES",
            DEFAULT_AGGREGATION_MAX_BYTES,
        )?,
    };
    aggregation.check().map_err(|e| {
        e.replace(
            "aggregation.flush_interval_seconds",
            "EDGEPUSH_AGGREGATION_FLUSH_SECONDS",
        )
        .replace("aggregation.max_bytes", "EDGEPUSH_AGGREGATION_MAX_BYTES")
    })?;
    let shards = number("EDGEPUSH_AGGREGATION_SHARDS", 1)?;
    let shards = u32::try_from(shards)
        .ok()
        .filter(|n| (1..=MAX_SHARDS).contains(n))
        .ok_or_else(|| {
            format!("EDGEPUSH_AGGREGATION_SHARDS must be between 1 and {MAX_SHARDS}, not {shards}")
        })?;
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
    let api_keys: Vec<String> = get("EDGEPUSH_API_KEYS")
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
    if api_keys.is_empty()
        && tenant_list.is_empty()
        && !switch("EDGEPUSH_ALLOW_UNAUTHENTICATED", false)?
    {
        return Err(OPEN.into());
    }
    let tenants = Tenants::with_api_keys(api_keys, tenant_list, window)
        .map_err(|e| format!("EDGEPUSH_API_KEYS / EDGEPUSH_TENANTS: {e}"))?;

    let (mut sinks, mut aggregated) = (Vec::new(), Vec::new());
    if let Some(region) = get("CLOUDWATCH_REGION") {
        let keys = cloudwatch::Keys {
            access_key_id: get("AWS_ACCESS_KEY_ID")
                .ok_or("CLOUDWATCH_REGION is set but AWS_ACCESS_KEY_ID is not")?,
            secret_access_key: get("AWS_SECRET_ACCESS_KEY")
                .ok_or("CLOUDWATCH_REGION is set but AWS_SECRET_ACCESS_KEY is not")?,
            session_token: get("AWS_SESSION_TOKEN"),
        };
        // A Worker signs AWS JSON itself: the SDK does not run there.
        let endpoint = get("CLOUDWATCH_ENDPOINT");
        if let Some(url) = &endpoint {
            crate::sink::check_url("CLOUDWATCH_ENDPOINT", url)?;
        }
        let config = cloudwatch::Config {
            endpoint,
            compress: get("CLOUDWATCH_COMPRESS").is_none_or(|v| v != "false"),
            protocol: cloudwatch::Protocol::Json,
            ..cloudwatch::Config::new(region)
        };
        sinks.push(Sink::CloudWatch(config, keys));
        aggregated.push(switch("CLOUDWATCH_AGGREGATE", aggregation.enabled)?);
    }
    if let Some(url) = get("INFLUXDB_URL") {
        crate::sink::check_url("INFLUXDB_URL", &url)?;
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
        aggregated.push(switch("INFLUXDB_AGGREGATE", aggregation.enabled)?);
    }
    if sinks.is_empty() {
        return Err("no sink configured: set CLOUDWATCH_REGION or INFLUXDB_URL".into());
    }
    let formats = match get("EDGEPUSH_FORMATS") {
        None => Formats::default(),
        Some(json) => serde_json::from_slice(json.as_bytes())
            .map_err(|e| format!("EDGEPUSH_FORMATS is not valid: {e}"))?,
    };
    Ok(Config {
        ingest: Ingest {
            limits,
            tenants,
            formats,
        },
        sinks,
        aggregation,
        aggregated,
        shards,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// `pairs` as settings; an open receiver unless they say otherwise.
    fn settings(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let mut map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        map.entry("EDGEPUSH_ALLOW_UNAUTHENTICATED".into())
            .or_insert_with(|| "true".into());
        move |k| map.get(k).cloned()
    }

    #[test]
    fn a_receiver_without_keys_takes_pushes_only_when_allowed() {
        let sink = [
            ("INFLUXDB_URL", "http://influx.test"),
            ("INFLUXDB_DATABASE", "d"),
        ];
        for closed in ["false", ""] {
            let mut pairs = sink.to_vec();
            pairs.push(("EDGEPUSH_ALLOW_UNAUTHENTICATED", closed));
            let err = from_settings(settings(&pairs)).expect_err("open and not allowed");
            assert_eq!(err, OPEN);
        }
        let mut keyed = sink.to_vec();
        keyed.extend([
            ("EDGEPUSH_ALLOW_UNAUTHENTICATED", "false"),
            ("EDGEPUSH_API_KEYS", "k"),
        ]);
        assert!(from_settings(settings(&keyed)).is_ok());
        let tenants = r#"[{"name":"t","keys":["k"],"namespaces":["*"]}]"#;
        let mut with_tenants = sink.to_vec();
        with_tenants.extend([
            ("EDGEPUSH_ALLOW_UNAUTHENTICATED", "false"),
            ("EDGEPUSH_TENANTS", tenants),
        ]);
        assert!(from_settings(settings(&with_tenants)).is_ok());
        assert!(from_settings(settings(&sink)).is_ok(), "allowed");
        let mut typo = sink.to_vec();
        typo.push(("EDGEPUSH_ALLOW_UNAUTHENTICATED", "yes"));
        let err = from_settings(settings(&typo)).expect_err("not a switch");
        assert!(err.contains("EDGEPUSH_ALLOW_UNAUTHENTICATED"), "{err}");
    }

    #[test]
    fn settings_describe_limits_keys_and_sinks() {
        let Config { ingest, sinks, .. } = from_settings(settings(&[
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
    fn aggregation_is_off_by_default_and_each_sink_may_say_otherwise() {
        let both = [
            ("CLOUDWATCH_REGION", "r"),
            ("AWS_ACCESS_KEY_ID", "a"),
            ("AWS_SECRET_ACCESS_KEY", "s"),
            ("INFLUXDB_URL", "http://influx.test"),
            ("INFLUXDB_DATABASE", "d"),
        ];
        let config = from_settings(settings(&both)).expect("valid");
        assert!(!config.aggregation.enabled);
        assert_eq!(config.aggregated, [false, false]);
        assert_eq!(config.shards, 1);
        assert_eq!(config.aggregation.max_bytes, DEFAULT_AGGREGATION_MAX_BYTES);
        let on = [
            &both[..],
            &[
                ("EDGEPUSH_AGGREGATION", "true"),
                ("EDGEPUSH_AGGREGATION_FLUSH_SECONDS", "2"),
                ("EDGEPUSH_AGGREGATION_SHARDS", "4"),
                ("INFLUXDB_AGGREGATE", "false"),
            ],
        ]
        .concat();
        let config = from_settings(settings(&on)).expect("valid");
        assert!(config.aggregation.enabled);
        assert_eq!(config.aggregation.flush_interval_seconds, 2);
        assert_eq!(config.aggregated, [true, false]);
        assert_eq!(config.shards, 4);
        let one = [&both[..], &[("CLOUDWATCH_AGGREGATE", "true")]].concat();
        assert_eq!(
            from_settings(settings(&one)).expect("valid").aggregated,
            [true, false]
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
            (
                &[("INFLUXDB_URL", "http://influx.test")],
                "INFLUXDB_DATABASE",
            ),
            (
                &[
                    ("INFLUXDB_URL", "influx.test:8086"),
                    ("INFLUXDB_DATABASE", "d"),
                ],
                "INFLUXDB_URL is \"influx.test:8086\": it must start with http:// or https://",
            ),
            (
                &[
                    ("CLOUDWATCH_REGION", "eu-west-1"),
                    ("CLOUDWATCH_ENDPOINT", "http://"),
                    ("AWS_ACCESS_KEY_ID", "a"),
                    ("AWS_SECRET_ACCESS_KEY", "s"),
                ],
                "CLOUDWATCH_ENDPOINT is \"http://\": it names no host",
            ),
            (
                &[
                    ("INFLUXDB_URL", "http://influx.test"),
                    ("INFLUXDB_DATABASE", "d"),
                    ("INFLUXDB_STORE_STRINGS", "no"),
                ],
                "INFLUXDB_STORE_STRINGS is \"no\", not true or false",
            ),
            (
                &[
                    ("INFLUXDB_URL", "http://influx.test"),
                    ("INFLUXDB_DATABASE", "d"),
                    ("INFLUXDB_QUANTILES", "0.5,95"),
                ],
                "INFLUXDB_QUANTILES: quantile 95 is not in (0, 1]",
            ),
            (
                &[
                    ("INFLUXDB_URL", "http://influx.test"),
                    ("INFLUXDB_DATABASE", "d"),
                    ("EDGEPUSH_MAX_POINTS", "lots"),
                ],
                "EDGEPUSH_MAX_POINTS",
            ),
            (
                &[
                    ("INFLUXDB_URL", "http://influx.test"),
                    ("INFLUXDB_DATABASE", "d"),
                    ("EDGEPUSH_AGGREGATION", "true"),
                    ("EDGEPUSH_AGGREGATION_FLUSH_SECONDS", "0"),
                ],
                "EDGEPUSH_AGGREGATION_FLUSH_SECONDS must be between 1 and 3600, not 0",
            ),
            (
                &[
                    ("INFLUXDB_URL", "http://influx.test"),
                    ("INFLUXDB_DATABASE", "d"),
                    ("EDGEPUSH_AGGREGATION_SHARDS", "0"),
                ],
                "EDGEPUSH_AGGREGATION_SHARDS must be between 1 and 256, not 0",
            ),
            (
                &[
                    ("INFLUXDB_URL", "http://influx.test"),
                    ("INFLUXDB_DATABASE", "d"),
                    ("EDGEPUSH_AGGREGATION_MAX_BYTES", "1000"),
                ],
                "EDGEPUSH_AGGREGATION_MAX_BYTES must be at least 1 MiB",
            ),
            (
                &[
                    ("INFLUXDB_URL", "http://influx.test"),
                    ("INFLUXDB_DATABASE", "d"),
                    ("INFLUXDB_AGGREGATE", "on"),
                ],
                "INFLUXDB_AGGREGATE is \"on\", not true or false",
            ),
            (
                &[
                    ("INFLUXDB_URL", "http://influx.test"),
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
