//! Native configuration: a TOML file, flags and environment variables.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use serde::Deserialize;

use edgepush_receiver::ingest::Ingest;
use edgepush_receiver::limits::Limits;
use edgepush_receiver::tenant::{DEFAULT_SIGNATURE_WINDOW_SECONDS, TenantConfig, Tenants};
use edgepush_receiver::{aggregate, env_config};
use std::sync::Arc;

use crate::cloudwatch::AwsCloudWatch;
use crate::sink::NativeSink;
use edgepush_receiver::decode::Formats;
use edgepush_receiver::sink::{Retry, Sink, cloudwatch, influxdb};

/// Settings of the native receiver. With none at all it listens on
/// `127.0.0.1:8787` and writes line protocol to standard output.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Keys of the tenant `default`, which may write any namespace. With no
    /// keys and no tenants the receiver is open (local use).
    pub api_keys: Vec<String>,
    /// Tenants: keys, allowed namespaces, rates and limits.
    pub tenants: Vec<TenantConfig>,
    /// Accept pushes without a key on an address other hosts can reach
    /// (when something in front authenticates). Without it, a receiver with
    /// no keys and no tenants listens on loopback only.
    pub allow_unauthenticated: bool,
    /// How far a signature's time may be from the receiver's clock.
    pub signature_window_seconds: u64,
    /// How many recent signatures are remembered to refuse replays; when
    /// full, signed requests are answered 503 until some expire.
    pub replay_capacity: usize,
    /// How long a client may take to send a request's headers, and then its
    /// body (slow clients are cut off with a 408).
    pub read_timeout_seconds: u64,
    /// Most connections open at once; more wait to be accepted.
    pub max_connections: usize,
    /// Bounds on one request.
    pub limits: Limits,
    /// How pushes in other formats than wire v1 map to metrics.
    pub formats: Formats,
    /// Where batches go; none means standard output.
    pub sinks: Vec<SinkEntry>,
    /// Merging pushes per series and period before the sinks.
    pub aggregation: aggregate::Settings,
    /// How long a delivered batch id is remembered, so that a retry of it is
    /// acknowledged without being forwarded again (0 turns this off).
    pub dedupe_seconds: u64,
    /// How many batch ids are remembered at most.
    pub dedupe_capacity: usize,
    /// Where batches a sink cannot take wait until it recovers (one
    /// directory per sink); none means such a push is answered 503 and the
    /// emitter keeps the batch.
    pub spool_dir: Option<PathBuf>,
    /// The most bytes one sink's spool holds.
    pub spool_max_bytes: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8787)),
            api_keys: Vec::new(),
            tenants: Vec::new(),
            allow_unauthenticated: false,
            signature_window_seconds: DEFAULT_SIGNATURE_WINDOW_SECONDS,
            replay_capacity: 200_000,
            read_timeout_seconds: 10,
            max_connections: 4096,
            limits: Limits::default(),
            formats: Formats::default(),
            sinks: Vec::new(),
            aggregation: aggregate::Settings::default(),
            dedupe_seconds: 900,
            dedupe_capacity: 100_000,
            spool_dir: None,
            spool_max_bytes: 1 << 30,
        }
    }
}

/// Command line of `edgepush-receiver`. Flags override the file.
#[derive(Clone, Debug, Parser)]
#[command(
    name = "edgepush-receiver",
    version,
    about = "Receives edgepush batches and forwards them to CloudWatch and line-protocol stores."
)]
pub struct Args {
    /// TOML configuration file.
    #[arg(long, env = "EDGEPUSH_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8787].
    #[arg(long, env = "EDGEPUSH_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Accepted bearer keys, comma-separated.
    #[arg(long, env = "EDGEPUSH_API_KEYS", value_delimiter = ',')]
    pub api_key: Vec<String>,
    /// Accept pushes without a key on a non-loopback address (when a proxy
    /// in front authenticates).
    #[arg(long, env = "EDGEPUSH_ALLOW_UNAUTHENTICATED")]
    pub allow_unauthenticated: bool,
    /// Forward to CloudWatch in this region (credentials from AWS_* variables).
    #[arg(long, env = "EDGEPUSH_CLOUDWATCH_REGION")]
    pub cloudwatch_region: Option<String>,
    /// CloudWatch endpoint override (an emulator, a VPC endpoint).
    #[arg(
        long,
        env = "EDGEPUSH_CLOUDWATCH_ENDPOINT",
        requires = "cloudwatch_region"
    )]
    pub cloudwatch_endpoint: Option<String>,
    /// How to send to CloudWatch: through the AWS SDK, or as signed AWS JSON
    /// (for endpoints that do not speak the SDK's protocol).
    #[arg(
        long,
        env = "EDGEPUSH_CLOUDWATCH_PROTOCOL",
        requires = "cloudwatch_region",
        value_parser = ["sdk", "json"]
    )]
    pub cloudwatch_protocol: Option<String>,
    /// Forward line protocol to this InfluxDB-compatible URL: with
    /// --influxdb-database (1.x API, VictoriaMetrics), or with
    /// EDGEPUSH_INFLUXDB_ORG and EDGEPUSH_INFLUXDB_BUCKET (2.x/3.x API). The
    /// other EDGEPUSH_INFLUXDB_* settings are read from the environment, as
    /// a Worker reads them (docs/deploy-cloudflare.md has the table).
    #[arg(long, env = "EDGEPUSH_INFLUXDB_URL")]
    pub influxdb_url: Option<String>,
    /// Database for --influxdb-url (1.x API).
    #[arg(long, env = "EDGEPUSH_INFLUXDB_DATABASE")]
    pub influxdb_database: Option<String>,
    /// Also write line protocol to standard output.
    #[arg(long)]
    pub stdout: bool,
    /// Spool batches a sink cannot take to this directory, and deliver them
    /// when it recovers (also across restarts).
    #[arg(long, env = "EDGEPUSH_SPOOL_DIR")]
    pub spool_dir: Option<PathBuf>,
    /// Merge pushes per series and period before the sinks (`true` or
    /// `false`; overrides `[aggregation] enabled`).
    #[arg(long, env = "EDGEPUSH_AGGREGATION")]
    pub aggregation: Option<bool>,
    /// Seconds between flushes of merged points (overrides
    /// `[aggregation] flush_interval_seconds`).
    #[arg(long, env = "EDGEPUSH_AGGREGATION_FLUSH_SECONDS")]
    pub aggregation_flush_seconds: Option<u64>,
}

impl Args {
    /// The configuration these arguments describe.
    pub fn config(&self) -> Result<Config, String> {
        let mut config = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?
            }
            None => Config::default(),
        };
        if let Some(listen) = self.listen {
            config.listen = listen;
        }
        config.allow_unauthenticated |= self.allow_unauthenticated;
        if let Some(dir) = &self.spool_dir {
            config.spool_dir = Some(dir.clone());
        }
        if let Some(enabled) = self.aggregation {
            config.aggregation.enabled = enabled;
        }
        if let Some(seconds) = self.aggregation_flush_seconds {
            config.aggregation.flush_interval_seconds = seconds;
        }
        config
            .api_keys
            .extend(self.api_key.iter().filter(|k| !k.is_empty()).cloned());
        // Secrets may also come from files (EDGEPUSH_API_KEYS_FILE, ...):
        // container and systemd credentials.
        if let Some(keys) = file_setting("EDGEPUSH_API_KEYS")? {
            config.api_keys.extend(
                keys.split([',', '\n'])
                    .map(str::trim)
                    .filter(|k| !k.is_empty())
                    .map(String::from),
            );
        }
        if let Some(json) = env_setting("EDGEPUSH_TENANTS")? {
            let tenants: Vec<TenantConfig> = serde_json::from_str(&json)
                .map_err(|e| format!("EDGEPUSH_TENANTS is not a JSON array of tenants: {e}"))?;
            config.tenants.extend(tenants);
        }
        if let Some(region) = &self.cloudwatch_region {
            config.sinks.push(SinkEntry::from(SinkConfig::Cloudwatch(
                cloudwatch::Config {
                    endpoint: self.cloudwatch_endpoint.clone(),
                    protocol: match self.cloudwatch_protocol.as_deref() {
                        Some("json") => cloudwatch::Protocol::Json,
                        _ => cloudwatch::Protocol::Sdk,
                    },
                    ..cloudwatch::Config::new(region.clone())
                },
            )));
        }
        // The Worker's names, read from the environment (or <NAME>_FILE);
        // the first file that cannot be read is the error.
        let unreadable = std::cell::RefCell::new(None);
        let influxdb = env_config::influxdb_from_settings(|name| match name {
            "EDGEPUSH_INFLUXDB_URL" => self.influxdb_url.clone(),
            "EDGEPUSH_INFLUXDB_DATABASE" => self.influxdb_database.clone(),
            other => env_setting(other).unwrap_or_else(|e| {
                unreadable.borrow_mut().get_or_insert(e);
                None
            }),
        });
        if let Some(e) = unreadable.into_inner() {
            return Err(e);
        }
        let influxdb = influxdb?;
        if let Some(target) = influxdb {
            config
                .sinks
                .push(SinkEntry::from(SinkConfig::Influxdb(target)));
        }
        if self.stdout && !config.sinks.iter().any(|e| e.sink == SinkConfig::Stdout) {
            config.sinks.push(SinkConfig::Stdout.into());
        }
        Ok(config)
    }
}

/// Setting `name` from the environment: its value, or the contents of the
/// file `<name>_FILE` names (trimmed), for secrets kept in files. The same
/// names as a Worker's settings (`edgepush_receiver::env_config`).
pub fn env_setting(name: &str) -> Result<Option<String>, String> {
    match std::env::var(name) {
        Ok(value) if !value.trim().is_empty() => Ok(Some(value.trim().to_string())),
        _ => file_setting(name),
    }
}

/// The contents of the file `<name>_FILE` names, trimmed, if it is set; an
/// error names the variable and the file when it cannot be read.
fn file_setting(name: &str) -> Result<Option<String>, String> {
    let variable = format!("{name}_FILE");
    let Some(path) = std::env::var_os(&variable).filter(|p| !p.is_empty()) else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("{variable}: cannot read {}: {e}", path.to_string_lossy()))?;
    Ok(Some(text.trim().to_string()).filter(|t| !t.is_empty()))
}

impl Config {
    /// Whether anyone who can reach the receiver may push: no keys, no
    /// tenants.
    pub fn open(&self) -> bool {
        self.api_keys.is_empty() && self.tenants.is_empty()
    }

    /// The ingest half these settings describe: limits and tenants (the
    /// error names the tenant at fault). An open receiver on an address
    /// other hosts can reach is refused unless `allow_unauthenticated` says
    /// so: anyone could push into its sinks (and bill its CloudWatch).
    pub fn ingest(&self) -> Result<Ingest, String> {
        if self.open() && !self.listen.ip().is_loopback() && !self.allow_unauthenticated {
            return Err(format!(
                "refusing to listen on {} with no api_keys and no tenants: anyone who can \
                 reach it could push into its sinks; set api_keys (--api-key, \
                 EDGEPUSH_API_KEYS) or tenants, or allow_unauthenticated = true \
                 (--allow-unauthenticated, EDGEPUSH_ALLOW_UNAUTHENTICATED=true) when a \
                 proxy in front authenticates",
                self.listen
            ));
        }
        self.limits.check()?;
        self.aggregation.check()?;
        for tenant in &self.tenants {
            if let Some(limits) = &tenant.limits {
                limits
                    .check()
                    .map_err(|e| format!("tenant {:?}: {e}", tenant.name))?;
            }
        }
        let tenants = Tenants::with_api_keys(
            self.api_keys.clone(),
            self.tenants.clone(),
            self.signature_window_seconds,
        )
        .map_err(|e| format!("tenants: {e}"))?;
        Ok(Ingest {
            limits: self.limits.clone(),
            tenants,
            formats: self.formats.clone(),
        })
    }
}

impl Config {
    /// The sinks' settings, in order (none configured: standard output).
    pub fn sink_configs(&self) -> Vec<SinkConfig> {
        if self.sinks.is_empty() {
            return vec![SinkConfig::Stdout];
        }
        self.sinks.iter().map(|e| e.sink.clone()).collect()
    }

    /// Indices (into [`Config::sink_configs`]) of the sinks that take
    /// merged points: those whose `aggregate` says so, else all of them when
    /// `[aggregation] enabled`.
    pub fn aggregated_sinks(&self) -> Vec<usize> {
        if self.sinks.is_empty() {
            return if self.aggregation.enabled {
                vec![0]
            } else {
                Vec::new()
            };
        }
        self.sinks
            .iter()
            .enumerate()
            .filter(|(_, e)| e.aggregate.unwrap_or(self.aggregation.enabled))
            .map(|(i, _)| i)
            .collect()
    }
}

/// One `[[sinks]]` entry: the sink, and whether it takes merged points.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct SinkEntry {
    /// The sink.
    #[serde(flatten)]
    pub sink: SinkConfig,
    /// Whether this sink takes merged points (default: `[aggregation]
    /// enabled`).
    #[serde(default)]
    pub aggregate: Option<bool>,
}

impl From<SinkConfig> for SinkEntry {
    fn from(sink: SinkConfig) -> Self {
        SinkEntry {
            sink,
            aggregate: None,
        }
    }
}

/// A sink as configured.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SinkConfig {
    /// Line protocol on standard output (the embedded default).
    Stdout,
    /// CloudWatch `PutMetricData`.
    Cloudwatch(cloudwatch::Config),
    /// An InfluxDB-compatible line-protocol store.
    Influxdb(influxdb::Target),
}

/// Resolves sink settings into sinks. CloudWatch's region, endpoint and
/// credentials come from the AWS SDK's chains unless set in the sink
/// ([`AwsCloudWatch::connect`]); `retry` also becomes the SDK's retry
/// settings. No sinks configured means standard output.
pub async fn sinks(configs: &[SinkConfig], retry: Retry) -> Result<Vec<NativeSink>, String> {
    if configs.is_empty() {
        return Ok(vec![NativeSink::Stdout]);
    }
    let mut sinks = Vec::with_capacity(configs.len());
    for (i, config) in configs.iter().enumerate() {
        match config {
            SinkConfig::Influxdb(
                influxdb::Target::V1 { url, .. } | influxdb::Target::V2 { url, .. },
            ) => edgepush_receiver::sink::check_url(&format!("sinks[{i}].url"), url)?,
            SinkConfig::Cloudwatch(cloudwatch::Config {
                endpoint: Some(url),
                ..
            }) => edgepush_receiver::sink::check_url(&format!("sinks[{i}].endpoint"), url)?,
            _ => {}
        }
        sinks.push(match config {
            SinkConfig::Stdout => NativeSink::Stdout,
            SinkConfig::Influxdb(target) => Sink::Influxdb(target.clone()).into(),
            SinkConfig::Cloudwatch(cw) => {
                NativeSink::Aws(Arc::new(AwsCloudWatch::connect(cw, retry).await?))
            }
        });
    }
    Ok(sinks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_open_receiver_listens_on_loopback_only_unless_allowed() {
        let open = |listen: &str| Config {
            listen: listen.parse().expect("address"),
            ..Config::default()
        };
        for loopback in ["127.0.0.1:8787", "[::1]:8787"] {
            assert!(open(loopback).ingest().is_ok(), "{loopback}");
        }
        for public in ["0.0.0.0:8787", "[::]:8787", "10.0.0.5:8787"] {
            let e = open(public).ingest().expect_err("refused");
            assert!(e.contains("allow_unauthenticated"), "{e}");
            assert!(e.contains(public), "{e}");
            let allowed = Config {
                allow_unauthenticated: true,
                ..open(public)
            };
            assert!(allowed.ingest().is_ok(), "{public} allowed");
            let keyed = Config {
                api_keys: vec!["k".into()],
                ..open(public)
            };
            assert!(keyed.ingest().is_ok(), "{public} with a key");
        }
        let args = Args::parse_from([
            "edgepush-receiver",
            "--listen",
            "0.0.0.0:1",
            "--allow-unauthenticated",
        ]);
        assert!(args.config().expect("config").allow_unauthenticated);
    }

    #[tokio::test]
    async fn no_configuration_means_local_stdout() {
        let args = Args::parse_from(["edgepush-receiver"]);
        let config = args.config().expect("config");
        assert_eq!(config, Config::default());
        assert_eq!(config.listen.to_string(), "127.0.0.1:8787");
        let sinks = sinks(&config.sink_configs(), Retry::default())
            .await
            .expect("sinks");
        assert!(matches!(sinks[..], [NativeSink::Stdout]));
        assert!(config.aggregated_sinks().is_empty(), "off by default");
    }

    #[tokio::test]
    async fn file_and_flags_combine() {
        let dir = std::env::temp_dir().join(format!("edgepush-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("receiver.toml");
        std::fs::write(
            &path,
            r#"
listen = "127.0.0.1:9000"
api_keys = ["k1"]
[limits]
max_points = 50
[[sinks]]
type = "influxdb"
api = "v2"
url = "http://127.0.0.1:8086"
org = "o"
bucket = "b"
"#,
        )
        .expect("write");
        let args = Args::parse_from([
            "edgepush-receiver",
            "--config",
            path.to_str().expect("utf-8"),
            "--api-key",
            "k2,k3",
            "--cloudwatch-region",
            "us-east-1",
            "--cloudwatch-endpoint",
            "http://127.0.0.1:5000",
        ]);
        let config = args.config().expect("config");
        assert_eq!(config.listen.port(), 9000);
        assert_eq!(config.api_keys, ["k1", "k2", "k3"]);
        assert_eq!(config.limits.max_points, 50);
        assert_eq!(config.limits.max_series, Limits::default().max_series);
        assert_eq!(config.sinks.len(), 2);
        assert!(
            matches!(&config.sinks[1].sink, SinkConfig::Cloudwatch(c) if c.protocol == cloudwatch::Protocol::Sdk && c.endpoint.as_deref() == Some("http://127.0.0.1:5000"))
        );
        std::fs::remove_dir_all(dir).ok();
    }

    #[tokio::test]
    async fn cloudwatch_settings_resolve_with_keys_from_the_file() {
        let config: Config = toml::from_str(
            r#"
[[sinks]]
type = "cloudwatch"
region = "eu-west-1"
endpoint = "http://127.0.0.1:5000/"
protocol = "json"
retry_mode = "adaptive"
access_key_id = "AK"
secret_access_key = "SK"
"#,
        )
        .expect("parses");
        let resolved = sinks(&config.sink_configs(), Retry::default())
            .await
            .expect("sinks");
        let [NativeSink::Aws(aws)] = &resolved[..] else {
            panic!("{resolved:?}")
        };
        assert_eq!(aws.config().region.as_deref(), Some("eu-west-1"));
        assert_eq!(aws.config().protocol, cloudwatch::Protocol::Json);
        assert_eq!(aws.config().retry_mode, cloudwatch::RetryMode::Adaptive);

        let half: Config = toml::from_str(
            "[[sinks]]\ntype = \"cloudwatch\"\nregion = \"r\"\naccess_key_id = \"AK\"\n",
        )
        .expect("parses");
        let err = sinks(&half.sink_configs(), Retry::default())
            .await
            .expect_err("half the keys");
        assert!(err.contains("go together"), "{err}");
        let typo =
            toml::from_str::<Config>("[[sinks]]\ntype = \"cloudwatch\"\nprotocol = \"cbor\"\n")
                .expect_err("unknown protocol");
        assert!(typo.to_string().contains("cbor"), "{typo}");
    }

    #[test]
    fn aggregation_is_set_for_all_sinks_and_each_may_differ() {
        let config: Config = toml::from_str(
            r#"
[aggregation]
enabled = true
flush_interval_seconds = 30
[[sinks]]
type = "cloudwatch"
region = "eu-west-1"
[[sinks]]
type = "influxdb"
api = "v1"
url = "http://127.0.0.1:8086"
database = "m"
aggregate = false
[[sinks]]
type = "stdout"
"#,
        )
        .expect("parses");
        assert_eq!(config.aggregation.flush_interval_seconds, 30);
        assert_eq!(config.aggregated_sinks(), [0, 2]);
        assert!(config.ingest().is_ok());
        let typo = toml::from_str::<Config>(
            "[[sinks]]\ntype = \"influxdb\"\napi = \"v1\"\nurl = \"u\"\ndatabase = \"m\"\naggregat = true\n",
        )
        .expect_err("a typo");
        assert!(typo.to_string().contains("aggregat"), "{typo}");
        let zero: Config =
            toml::from_str("[aggregation]\nflush_interval_seconds = 0\n").expect("parses");
        let err = zero.ingest().expect_err("zero interval");
        assert!(err.contains("flush_interval_seconds"), "{err}");

        // Flags and environment variables override the file.
        let args = Args::parse_from([
            "edgepush-receiver",
            "--aggregation",
            "true",
            "--aggregation-flush-seconds",
            "5",
        ]);
        let config = args.config().expect("config");
        assert_eq!(config.aggregated_sinks(), [0], "stdout, by default");
        assert_eq!(config.aggregation.flush_interval_seconds, 5);
    }

    #[test]
    fn unknown_keys_in_the_file_are_errors() {
        let err =
            toml::from_str::<Config>("listen = \"127.0.0.1:1\"\nsinkz = []\n").expect_err("typo");
        assert!(err.to_string().contains("sinkz"), "{err}");
    }

    #[test]
    fn sink_config_reads_from_toml_shapes() {
        let v: Vec<SinkConfig> = serde_json::from_str(
            r#"[{"type":"stdout"},
                {"type":"cloudwatch","region":"eu-west-1","endpoint":"http://127.0.0.1:5000"},
                {"type":"influxdb","api":"v1","url":"http://127.0.0.1:8086","database":"m"},
                {"type":"influxdb","api":"v2","url":"u","org":"o","bucket":"b","store_strings":false}]"#,
        )
        .expect("parses");
        assert_eq!(v[0], SinkConfig::Stdout);
        assert!(
            matches!(&v[1], SinkConfig::Cloudwatch(c) if c.region.as_deref() == Some("eu-west-1") && c.protocol == cloudwatch::Protocol::Sdk)
        );
        assert!(
            matches!(&v[2], SinkConfig::Influxdb(t @ influxdb::Target::V1 { database, .. }) if database == "m" && t.stores_strings())
        );
        assert!(
            matches!(&v[3], SinkConfig::Influxdb(t @ influxdb::Target::V2 { .. }) if !t.stores_strings())
        );
        let bad = serde_json::from_str::<Vec<SinkConfig>>(
            r#"[{"type":"influxdb","api":"v1","url":"u","database":"m","colour":"red"}]"#,
        );
        assert!(bad.is_err());
    }
}
