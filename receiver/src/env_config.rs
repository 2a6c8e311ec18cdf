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
//! | `EDGEPUSH_CLOUDWATCH_REGION` | forward to CloudWatch in this region |
//! | `EDGEPUSH_CLOUDWATCH_ENDPOINT` | CloudWatch endpoint override |
//! | `EDGEPUSH_CLOUDWATCH_COMPRESS` | `false` sends bodies uncompressed (default: gzip) |
//! | `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN` (secrets) | CloudWatch credentials |
//! | `EDGEPUSH_INFLUXDB_URL` | forward line protocol to this store |
//! | `EDGEPUSH_INFLUXDB_DATABASE` (+ `EDGEPUSH_INFLUXDB_USERNAME`, `EDGEPUSH_INFLUXDB_RETENTION_POLICY`, secret `EDGEPUSH_INFLUXDB_PASSWORD`) | InfluxDB 1.x `/write` API |
//! | `EDGEPUSH_INFLUXDB_ORG`, `EDGEPUSH_INFLUXDB_BUCKET` (+ secret `EDGEPUSH_INFLUXDB_TOKEN`) | InfluxDB 2.x/3.x `/api/v2/write` API |
//! | `EDGEPUSH_INFLUXDB_STORE_STRINGS` | `false` refuses string values instead of writing them (for VictoriaMetrics) |
//! | `EDGEPUSH_INFLUXDB_QUANTILES` | the quantile fields written for distributions, comma-separated in (0, 1] (default `0.5,0.9,0.99`: `p50`, `p90`, `p99`; `,` for none) |
//! | `EDGEPUSH_AGGREGATION` | `true` merges pushes per series and period before the sinks, on Durable Objects (default `false`; see the README) |
//! | `EDGEPUSH_AGGREGATION_FLUSH_SECONDS` | how long after its end a period goes out (default 10) |
//! | `EDGEPUSH_AGGREGATION_MAX_BYTES` | the most one aggregator holds, estimated, before it flushes early and answers 503 (default 32 MiB: a Durable Object has 128 MB) |
//! | `EDGEPUSH_AGGREGATION_SHARDS` | aggregators per namespace (default 1, at most 256): series are spread over them by a hash |
//! | `EDGEPUSH_CLOUDWATCH_AGGREGATE`, `EDGEPUSH_INFLUXDB_AGGREGATE` | `true` or `false`: whether that sink takes merged points (default: `EDGEPUSH_AGGREGATION`) |
//! | `EDGEPUSH_FORMATS` | how other formats map to metrics: a JSON [`Formats`] (`namespace`, `line_protocol`, `otlp`) |
//!
//! The sink settings had no `EDGEPUSH_` prefix before (`CLOUDWATCH_REGION`,
//! `INFLUXDB_URL`, ...): a Worker still reads those names, and says which
//! to rename ([`Config::renamed`]). The native receiver reads the same
//! names from its environment ([`influxdb_from_settings`]).

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
    /// Settings found under an old name, each with the name to use instead.
    pub renamed: Vec<String>,
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
    let renamed = core::cell::RefCell::new(Vec::new());
    let get = |name: &str| {
        let found = |name: &str| {
            get(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        // The sinks' settings before they had the prefix.
        let old = name
            .strip_prefix("EDGEPUSH_")
            .filter(|n| n.starts_with("CLOUDWATCH_") || n.starts_with("INFLUXDB_"));
        match (found(name), old, old.and_then(found)) {
            (Some(value), Some(old), Some(_)) => {
                renamed
                    .borrow_mut()
                    .push(format!("{old} is ignored: {name} is set; remove {old}"));
                Some(value)
            }
            (None, Some(old), Some(value)) => {
                renamed
                    .borrow_mut()
                    .push(format!("{old} is read as {name}: rename it"));
                Some(value)
            }
            (value, _, _) => value,
        }
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
    if let Some(region) = get("EDGEPUSH_CLOUDWATCH_REGION") {
        let keys = cloudwatch::Keys {
            access_key_id: get("AWS_ACCESS_KEY_ID")
                .ok_or("EDGEPUSH_CLOUDWATCH_REGION is set but AWS_ACCESS_KEY_ID is not")?,
            secret_access_key: get("AWS_SECRET_ACCESS_KEY")
                .ok_or("EDGEPUSH_CLOUDWATCH_REGION is set but AWS_SECRET_ACCESS_KEY is not")?,
            session_token: get("AWS_SESSION_TOKEN"),
        };
        // A Worker signs AWS JSON itself: the SDK does not run there.
        let endpoint = get("EDGEPUSH_CLOUDWATCH_ENDPOINT");
        if let Some(url) = &endpoint {
            crate::sink::check_url("EDGEPUSH_CLOUDWATCH_ENDPOINT", url)?;
        }
        let config = cloudwatch::Config {
            endpoint,
            compress: get("EDGEPUSH_CLOUDWATCH_COMPRESS").is_none_or(|v| v != "false"),
            protocol: cloudwatch::Protocol::Json,
            ..cloudwatch::Config::new(region)
        };
        sinks.push(Sink::CloudWatch(config, keys));
        aggregated.push(switch(
            "EDGEPUSH_CLOUDWATCH_AGGREGATE",
            aggregation.enabled,
        )?);
    }
    if let Some(target) = influxdb_from_settings(get)? {
        sinks.push(Sink::Influxdb(target));
        aggregated.push(switch("EDGEPUSH_INFLUXDB_AGGREGATE", aggregation.enabled)?);
    }
    if sinks.is_empty() {
        return Err(
            "no sink configured: set EDGEPUSH_CLOUDWATCH_REGION or EDGEPUSH_INFLUXDB_URL".into(),
        );
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
        renamed: renamed.into_inner(),
    })
}

/// The line-protocol sink that `get` describes (`EDGEPUSH_INFLUXDB_URL` and
/// the settings beside it, in the table above), if any: on both hosts, the
/// same names. An error names the setting at fault.
pub fn influxdb_from_settings(
    get: impl Fn(&str) -> Option<String>,
) -> Result<Option<influxdb::Target>, String> {
    let Some(url) = get("EDGEPUSH_INFLUXDB_URL") else {
        return Ok(None);
    };
    crate::sink::check_url("EDGEPUSH_INFLUXDB_URL", &url)?;
    let store_strings = match get("EDGEPUSH_INFLUXDB_STORE_STRINGS").as_deref() {
        None | Some("true") => true,
        Some("false") => false,
        Some(other) => {
            return Err(format!(
                "EDGEPUSH_INFLUXDB_STORE_STRINGS is {other:?}, not true or false"
            ));
        }
    };
    let quantiles = match get("EDGEPUSH_INFLUXDB_QUANTILES") {
        Some(list) => influxdb::Quantiles::parse(&list)
            .map_err(|e| format!("EDGEPUSH_INFLUXDB_QUANTILES: {e}"))?,
        None => influxdb::Quantiles::default(),
    };
    let target = match (
        get("EDGEPUSH_INFLUXDB_DATABASE"),
        get("EDGEPUSH_INFLUXDB_ORG"),
        get("EDGEPUSH_INFLUXDB_BUCKET"),
    ) {
        (Some(database), None, None) => influxdb::Target::V1 {
            url,
            database,
            retention_policy: get("EDGEPUSH_INFLUXDB_RETENTION_POLICY"),
            username: get("EDGEPUSH_INFLUXDB_USERNAME"),
            password: get("EDGEPUSH_INFLUXDB_PASSWORD"),
            store_strings,
            quantiles,
        },
        (None, Some(org), Some(bucket)) => influxdb::Target::V2 {
            url,
            org,
            bucket,
            token: get("EDGEPUSH_INFLUXDB_TOKEN"),
            store_strings,
            quantiles,
        },
        _ => {
            return Err(
                "EDGEPUSH_INFLUXDB_URL needs EDGEPUSH_INFLUXDB_DATABASE (1.x API) or \
                 EDGEPUSH_INFLUXDB_ORG and EDGEPUSH_INFLUXDB_BUCKET (2.x API)"
                    .into(),
            );
        }
    };
    Ok(Some(target))
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
            ("EDGEPUSH_INFLUXDB_URL", "http://influx.test"),
            ("EDGEPUSH_INFLUXDB_DATABASE", "d"),
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
            ("EDGEPUSH_CLOUDWATCH_REGION", "eu-west-1"),
            ("EDGEPUSH_CLOUDWATCH_ENDPOINT", "http://127.0.0.1:5000/"),
            ("AWS_ACCESS_KEY_ID", "AK"),
            ("AWS_SECRET_ACCESS_KEY", "SK"),
            ("EDGEPUSH_INFLUXDB_URL", "http://127.0.0.1:8086"),
            ("EDGEPUSH_INFLUXDB_ORG", "o"),
            ("EDGEPUSH_INFLUXDB_BUCKET", "b"),
            ("EDGEPUSH_INFLUXDB_STORE_STRINGS", "false"),
            ("EDGEPUSH_INFLUXDB_QUANTILES", "0.5, 0.999"),
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
            ("EDGEPUSH_CLOUDWATCH_REGION", "r"),
            ("AWS_ACCESS_KEY_ID", "a"),
            ("AWS_SECRET_ACCESS_KEY", "s"),
            ("EDGEPUSH_INFLUXDB_URL", "http://influx.test"),
            ("EDGEPUSH_INFLUXDB_DATABASE", "d"),
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
                ("EDGEPUSH_INFLUXDB_AGGREGATE", "false"),
            ],
        ]
        .concat();
        let config = from_settings(settings(&on)).expect("valid");
        assert!(config.aggregation.enabled);
        assert_eq!(config.aggregation.flush_interval_seconds, 2);
        assert_eq!(config.aggregated, [true, false]);
        assert_eq!(config.shards, 4);
        let one = [&both[..], &[("EDGEPUSH_CLOUDWATCH_AGGREGATE", "true")]].concat();
        assert_eq!(
            from_settings(settings(&one)).expect("valid").aggregated,
            [true, false]
        );
    }

    #[test]
    fn old_sink_setting_names_are_read_and_named_for_renaming() {
        let config = from_settings(settings(&[
            ("INFLUXDB_URL", "http://influx.test"),
            ("INFLUXDB_DATABASE", "d"),
            ("EDGEPUSH_INFLUXDB_USERNAME", "u"),
        ]))
        .expect("config");
        assert!(matches!(
            &config.sinks[..],
            [Sink::Influxdb(influxdb::Target::V1 { url, database, username: Some(u), .. })]
                if url == "http://influx.test" && database == "d" && u == "u"
        ));
        assert_eq!(
            config.renamed,
            [
                "INFLUXDB_URL is read as EDGEPUSH_INFLUXDB_URL: rename it",
                "INFLUXDB_DATABASE is read as EDGEPUSH_INFLUXDB_DATABASE: rename it",
            ]
        );
        // The new name wins over the old one, which is said to be ignored.
        let config = from_settings(settings(&[
            ("INFLUXDB_URL", "http://old.test"),
            ("EDGEPUSH_INFLUXDB_URL", "http://new.test"),
            ("EDGEPUSH_INFLUXDB_DATABASE", "d"),
        ]))
        .expect("config");
        assert!(
            matches!(&config.sinks[..], [Sink::Influxdb(influxdb::Target::V1 { url, .. })] if url == "http://new.test")
        );
        assert_eq!(
            config.renamed,
            ["INFLUXDB_URL is ignored: EDGEPUSH_INFLUXDB_URL is set; remove INFLUXDB_URL"]
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
            (&[("EDGEPUSH_CLOUDWATCH_REGION", "r")], "AWS_ACCESS_KEY_ID"),
            (
                &[("EDGEPUSH_INFLUXDB_URL", "http://influx.test")],
                "EDGEPUSH_INFLUXDB_DATABASE",
            ),
            (
                &[
                    ("EDGEPUSH_INFLUXDB_URL", "influx.test:8086"),
                    ("EDGEPUSH_INFLUXDB_DATABASE", "d"),
                ],
                "EDGEPUSH_INFLUXDB_URL is \"influx.test:8086\": it must start with http:// or https://",
            ),
            (
                &[
                    ("EDGEPUSH_CLOUDWATCH_REGION", "eu-west-1"),
                    ("EDGEPUSH_CLOUDWATCH_ENDPOINT", "http://"),
                    ("AWS_ACCESS_KEY_ID", "a"),
                    ("AWS_SECRET_ACCESS_KEY", "s"),
                ],
                "EDGEPUSH_CLOUDWATCH_ENDPOINT is \"http://\": it names no host",
            ),
            (
                &[
                    ("EDGEPUSH_INFLUXDB_URL", "http://influx.test"),
                    ("EDGEPUSH_INFLUXDB_DATABASE", "d"),
                    ("EDGEPUSH_INFLUXDB_STORE_STRINGS", "no"),
                ],
                "EDGEPUSH_INFLUXDB_STORE_STRINGS is \"no\", not true or false",
            ),
            (
                &[
                    ("EDGEPUSH_INFLUXDB_URL", "http://influx.test"),
                    ("EDGEPUSH_INFLUXDB_DATABASE", "d"),
                    ("EDGEPUSH_INFLUXDB_QUANTILES", "0.5,95"),
                ],
                "EDGEPUSH_INFLUXDB_QUANTILES: quantile 95 is not in (0, 1]",
            ),
            (
                &[
                    ("EDGEPUSH_INFLUXDB_URL", "http://influx.test"),
                    ("EDGEPUSH_INFLUXDB_DATABASE", "d"),
                    ("EDGEPUSH_MAX_POINTS", "lots"),
                ],
                "EDGEPUSH_MAX_POINTS",
            ),
            (
                &[
                    ("EDGEPUSH_INFLUXDB_URL", "http://influx.test"),
                    ("EDGEPUSH_INFLUXDB_DATABASE", "d"),
                    ("EDGEPUSH_AGGREGATION", "true"),
                    ("EDGEPUSH_AGGREGATION_FLUSH_SECONDS", "0"),
                ],
                "EDGEPUSH_AGGREGATION_FLUSH_SECONDS must be between 1 and 3600, not 0",
            ),
            (
                &[
                    ("EDGEPUSH_INFLUXDB_URL", "http://influx.test"),
                    ("EDGEPUSH_INFLUXDB_DATABASE", "d"),
                    ("EDGEPUSH_AGGREGATION_SHARDS", "0"),
                ],
                "EDGEPUSH_AGGREGATION_SHARDS must be between 1 and 256, not 0",
            ),
            (
                &[
                    ("EDGEPUSH_INFLUXDB_URL", "http://influx.test"),
                    ("EDGEPUSH_INFLUXDB_DATABASE", "d"),
                    ("EDGEPUSH_AGGREGATION_MAX_BYTES", "1000"),
                ],
                "EDGEPUSH_AGGREGATION_MAX_BYTES must be at least 1 MiB",
            ),
            (
                &[
                    ("EDGEPUSH_INFLUXDB_URL", "http://influx.test"),
                    ("EDGEPUSH_INFLUXDB_DATABASE", "d"),
                    ("EDGEPUSH_INFLUXDB_AGGREGATE", "on"),
                ],
                "EDGEPUSH_INFLUXDB_AGGREGATE is \"on\", not true or false",
            ),
            (
                &[
                    ("EDGEPUSH_INFLUXDB_URL", "http://influx.test"),
                    ("EDGEPUSH_INFLUXDB_DATABASE", "d"),
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
