//! Native configuration: a TOML file, flags and environment variables.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use serde::Deserialize;

use crate::limits::Limits;
use crate::sink::{Sink, SinkConfig, cloudwatch, line_protocol};

/// Settings of the native receiver. With none at all it listens on
/// `127.0.0.1:8787` and writes line protocol to standard output.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Accepted bearer keys; none means no authentication.
    pub api_keys: Vec<String>,
    /// Bounds on one request.
    pub limits: Limits,
    /// Where batches go; none means standard output.
    pub sinks: Vec<SinkConfig>,
    /// How long a delivered batch id is remembered, so that a retry of it is
    /// acknowledged without being forwarded again (0 turns this off).
    pub dedupe_seconds: u64,
    /// How many batch ids are remembered at most.
    pub dedupe_capacity: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8787)),
            api_keys: Vec::new(),
            limits: Limits::default(),
            sinks: Vec::new(),
            dedupe_seconds: 900,
            dedupe_capacity: 100_000,
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
    /// Forward line protocol to this InfluxDB 1.x-compatible URL.
    #[arg(long, env = "EDGEPUSH_INFLUXDB_URL", requires = "influxdb_database")]
    pub influxdb_url: Option<String>,
    /// Database for --influxdb-url.
    #[arg(long, env = "EDGEPUSH_INFLUXDB_DATABASE")]
    pub influxdb_database: Option<String>,
    /// Also write line protocol to standard output.
    #[arg(long)]
    pub stdout: bool,
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
        config
            .api_keys
            .extend(self.api_key.iter().filter(|k| !k.is_empty()).cloned());
        if let Some(region) = &self.cloudwatch_region {
            config
                .sinks
                .push(SinkConfig::Cloudwatch(cloudwatch::Config {
                    region: region.clone(),
                    endpoint: self.cloudwatch_endpoint.clone(),
                    access_key_id: None,
                    secret_access_key: None,
                    session_token: None,
                    compress: true,
                }));
        }
        if let (Some(url), Some(database)) = (&self.influxdb_url, &self.influxdb_database) {
            config
                .sinks
                .push(SinkConfig::Influxdb(line_protocol::Target::V1 {
                    url: url.clone(),
                    database: database.clone(),
                    retention_policy: None,
                    username: None,
                    password: None,
                }));
        }
        if self.stdout && !config.sinks.contains(&SinkConfig::Stdout) {
            config.sinks.push(SinkConfig::Stdout);
        }
        Ok(config)
    }
}

/// Resolves sink settings into sinks: CloudWatch keys come from the config or
/// from `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`.
/// No sinks configured means standard output.
pub fn sinks(
    configs: &[SinkConfig],
    env: impl Fn(&str) -> Option<String>,
) -> Result<Vec<Sink>, String> {
    if configs.is_empty() {
        return Ok(vec![Sink::Stdout]);
    }
    configs
        .iter()
        .map(|c| match c {
            SinkConfig::Stdout => Ok(Sink::Stdout),
            SinkConfig::Influxdb(target) => Ok(Sink::LineProtocol(target.clone())),
            SinkConfig::Cloudwatch(cw) => {
                let pick = |own: &Option<String>, var: &str| own.clone().or_else(|| env(var));
                let keys = cloudwatch::Keys {
                    access_key_id: pick(&cw.access_key_id, "AWS_ACCESS_KEY_ID")
                        .ok_or("CloudWatch sink: no access key (set access_key_id or AWS_ACCESS_KEY_ID)")?,
                    secret_access_key: pick(&cw.secret_access_key, "AWS_SECRET_ACCESS_KEY")
                        .ok_or("CloudWatch sink: no secret key (set secret_access_key or AWS_SECRET_ACCESS_KEY)")?,
                    session_token: pick(&cw.session_token, "AWS_SESSION_TOKEN"),
                };
                Ok(Sink::CloudWatch(cw.clone(), keys))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_configuration_means_local_stdout() {
        let args = Args::parse_from(["edgepush-receiver"]);
        let config = args.config().expect("config");
        assert_eq!(config, Config::default());
        assert_eq!(config.listen.to_string(), "127.0.0.1:8787");
        let sinks = sinks(&config.sinks, |_| None).expect("sinks");
        assert!(matches!(sinks[..], [Sink::Stdout]));
    }

    #[test]
    fn file_and_flags_combine() {
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
        let env = |k: &str| match k {
            "AWS_ACCESS_KEY_ID" => Some("AK".to_string()),
            "AWS_SECRET_ACCESS_KEY" => Some("SK".to_string()),
            _ => None,
        };
        let resolved = sinks(&config.sinks, env).expect("sinks");
        assert!(
            matches!(&resolved[1], Sink::CloudWatch(_, keys) if keys.access_key_id == "AK" && keys.session_token.is_none())
        );
        let err = sinks(&config.sinks, |_| None).expect_err("no keys");
        assert!(err.contains("AWS_ACCESS_KEY_ID"), "{err}");
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn unknown_keys_in_the_file_are_errors() {
        let err =
            toml::from_str::<Config>("listen = \"127.0.0.1:1\"\nsinkz = []\n").expect_err("typo");
        assert!(err.to_string().contains("sinkz"), "{err}");
    }
}
