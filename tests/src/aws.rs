//! CloudWatch through the AWS SDK's own protocol: `fakecloud` (an AWS
//! emulator that speaks rpc-v2-cbor, run as a separate process), a read-back
//! through `aws-sdk-cloudwatch`, the receiver's native CloudWatch sinks, and
//! the `edgepush-receiver` binary as a process of its own (for tests that
//! set its environment: credentials, `HOME`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use aws_sdk_cloudwatch::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_cloudwatch::types::{Dimension, Statistic};
use edgepush_receiver::sink::{Retry, cloudwatch};
use edgepush_receiver_native::NativeSink;
use edgepush_receiver_native::config::{self, SinkConfig};
use serde_json::{Value, json};

use crate::{Moto, Process, free_port, tool, wait_for};

/// `fakecloud` on a loopback port.
pub struct Fakecloud {
    /// Its base URL.
    pub url: String,
    /// The access key id and secret to sign with: a user's key when it
    /// verifies signatures, the test keys otherwise.
    pub keys: (String, String),
    process: Process,
}

impl Fakecloud {
    /// Starts `fakecloud` (installed by `.ci/setup`; `EDGEPUSH_FAKECLOUD`
    /// overrides the binary) on a free port with its data in `dir`.
    pub fn start(dir: &Path) -> Self {
        Self::spawn(dir, free_port(), false)
    }

    /// [`Fakecloud::start`] on `port` (reserved earlier with [`free_port`],
    /// to start the emulator after something was told where it would be).
    pub fn start_on(dir: &Path, port: u16) -> Self {
        Self::spawn(dir, port, false)
    }

    /// Starts `fakecloud` checking SigV4 signatures (`--verify-sigv4`): an
    /// IAM user with an access key and an allow-all policy is created
    /// (`tests/readback/iam_user.py`, signed with the test keys, which it
    /// lets through), and every request must be signed with that user's key
    /// ([`Fakecloud::keys`]).
    pub fn start_verifying_signatures(dir: &Path) -> Self {
        Self::spawn(dir, free_port(), true)
    }

    fn spawn(dir: &Path, port: u16, verify: bool) -> Self {
        let mut command = Command::new(tool("EDGEPUSH_FAKECLOUD", "fakecloud", "fakecloud"));
        command
            .args(["--addr", &format!("127.0.0.1:{port}")])
            .current_dir(dir);
        if verify {
            command.arg("--verify-sigv4");
        }
        let mut process = Process::spawn(
            "fakecloud",
            command,
            dir.join(format!("fakecloud-{port}.log")),
        );
        let url = format!("http://127.0.0.1:{port}");
        wait_for("fakecloud", Duration::from_secs(60), || {
            process.assert_running();
            crate::http_get(&format!("{url}/_fakecloud/health")) == Ok(200)
        });
        let keys = if verify {
            crate::iam_user(&url, ("test", "test"))
        } else {
            ("testing".into(), "testing".into())
        };
        Fakecloud { url, keys, process }
    }

    /// Every metric of `namespace`, read back through the SDK.
    pub fn metrics(&mut self, namespace: &str) -> Vec<Value> {
        self.process.assert_running();
        read_back(&self.url, namespace)
    }

    /// Stops it (what it stored is gone).
    pub fn stop(&mut self) {
        self.process.stop();
    }
}

/// A CloudWatch API emulator with the protocol the receiver speaks to it:
/// `moto` over signed AWS JSON (what the Worker sends), or `fakecloud` over
/// the AWS SDK's rpc-v2-cbor (the native default). The fault tests run
/// each path.
pub enum Emulator {
    /// `moto`, spoken to over signed AWS JSON.
    Moto(Moto),
    /// `fakecloud`, spoken to through the AWS SDK.
    Fakecloud(Fakecloud),
}

impl Emulator {
    /// Starts the emulator of `protocol`'s path on `port` in `dir`.
    pub fn start_on(protocol: cloudwatch::Protocol, dir: &Path, port: u16) -> Self {
        match protocol {
            cloudwatch::Protocol::Json => Emulator::Moto(Moto::start_on(dir, port)),
            cloudwatch::Protocol::Sdk => Emulator::Fakecloud(Fakecloud::start_on(dir, port)),
        }
    }

    /// [`Emulator::start_on`] a free port.
    pub fn start(protocol: cloudwatch::Protocol, dir: &Path) -> Self {
        Self::start_on(protocol, dir, free_port())
    }

    /// Its base URL.
    pub fn url(&self) -> &str {
        match self {
            Emulator::Moto(m) => &m.url,
            Emulator::Fakecloud(f) => &f.url,
        }
    }

    /// Every metric of `namespace`, read back (same shape on both).
    pub fn metrics(&mut self, namespace: &str) -> Vec<Value> {
        match self {
            Emulator::Moto(m) => m.metrics(namespace),
            Emulator::Fakecloud(f) => f.metrics(namespace),
        }
    }

    /// Stops it.
    pub fn stop(&mut self) {
        match self {
            Emulator::Moto(m) => m.stop(),
            Emulator::Fakecloud(f) => f.stop(),
        }
    }
}

/// The name of `protocol` in the receiver's settings (`protocol = ...`).
pub fn protocol_name(protocol: cloudwatch::Protocol) -> &'static str {
    match protocol {
        cloudwatch::Protocol::Json => "json",
        cloudwatch::Protocol::Sdk => "sdk",
    }
}

/// The receiver's native CloudWatch sink for the emulator at `endpoint`,
/// spoken to over `protocol` with test keys.
pub fn native_sink(endpoint: &str, protocol: cloudwatch::Protocol) -> NativeSink {
    native_sinks(&[sink_config(endpoint, protocol)]).remove(0)
}

/// A CloudWatch sink setting for `endpoint`, test keys, `protocol`.
pub fn sink_config(endpoint: &str, protocol: cloudwatch::Protocol) -> SinkConfig {
    SinkConfig::Cloudwatch(cloudwatch::Config {
        endpoint: Some(endpoint.to_string()),
        access_key_id: Some("testing".into()),
        secret_access_key: Some("testing".into()),
        protocol,
        ..cloudwatch::Config::new("us-east-1")
    })
}

/// The receiver's native sinks for `configs`, resolved as the binary
/// resolves them (through the SDK's chains).
pub fn native_sinks(configs: &[SinkConfig]) -> Vec<NativeSink> {
    runtime()
        .block_on(config::sinks(configs, Retry::default()))
        .expect("sinks")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Every metric of `namespace` at the CloudWatch API `endpoint`, read with
/// `aws-sdk-cloudwatch` (`ListMetrics`, then `GetMetricStatistics` over the
/// last and next day), in the shape `Moto::metrics` gives: name,
/// dimensions, units seen, and the Sum, SampleCount, Minimum and Maximum of
/// all datapoints; sorted by name and dimensions.
pub fn read_back(endpoint: &str, namespace: &str) -> Vec<Value> {
    let config = aws_sdk_cloudwatch::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        // fakecloud lets `test`/`test` through even when it verifies
        // signatures; moto takes any key when it does not.
        .credentials_provider(Credentials::new("test", "test", None, None, "tests"))
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .build();
    let client = aws_sdk_cloudwatch::Client::from_conf(config);
    runtime().block_on(async {
        let mut metrics = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        let mut token = None;
        loop {
            let page = client
                .list_metrics()
                .namespace(namespace)
                .set_next_token(token)
                .send()
                .await
                .expect("ListMetrics");
            for metric in page.metrics() {
                let name = metric.metric_name().unwrap_or_default().to_string();
                let dimensions: Vec<Dimension> = metric.dimensions().to_vec();
                let mut dims = serde_json::Map::new();
                for d in &dimensions {
                    dims.insert(
                        d.name().unwrap_or_default().into(),
                        d.value().unwrap_or_default().into(),
                    );
                }
                if !seen.insert((name.clone(), Value::Object(dims.clone()).to_string())) {
                    continue;
                }
                let now = SystemTime::now();
                let day = Duration::from_secs(86_400);
                let points = client
                    .get_metric_statistics()
                    .namespace(namespace)
                    .metric_name(&name)
                    .set_dimensions(Some(dimensions))
                    .start_time((now - day).into())
                    .end_time((now + day).into())
                    .period(60)
                    .statistics(Statistic::Sum)
                    .statistics(Statistic::SampleCount)
                    .statistics(Statistic::Minimum)
                    .statistics(Statistic::Maximum)
                    .send()
                    .await
                    .expect("GetMetricStatistics");
                let points = points.datapoints();
                let mut units: Vec<String> = points
                    .iter()
                    .map(|p| p.unit().map_or("None", |u| u.as_str()).to_string())
                    .collect();
                units.sort();
                units.dedup();
                let fold = |f: fn(&aws_sdk_cloudwatch::types::Datapoint) -> Option<f64>,
                            pick: fn(f64, f64) -> f64| {
                    points.iter().filter_map(f).reduce(pick)
                };
                metrics.push(json!({
                    "name": name,
                    "dimensions": dims,
                    "units": units,
                    "sum": fold(|p| p.sum(), |a, b| a + b).unwrap_or(0.0),
                    "count": fold(|p| p.sample_count(), |a, b| a + b).unwrap_or(0.0),
                    "min": fold(|p| p.minimum(), f64::min),
                    "max": fold(|p| p.maximum(), f64::max),
                }));
            }
            token = page.next_token().map(String::from);
            if token.is_none() {
                break;
            }
        }
        metrics.sort_by_key(|m| (m["name"].to_string(), m["dimensions"].to_string()));
        metrics
    })
}

/// The `edgepush-receiver` binary of this build (built once per test run;
/// `cargo test --workspace` has usually built it already), or the one
/// `EDGEPUSH_RECEIVER_BIN` names (a release build, for figures).
pub fn receiver_binary() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| match std::env::var_os("EDGEPUSH_RECEIVER_BIN") {
            Some(bin) => PathBuf::from(bin),
            None => crate::debug_binary("edgepush-receiver-native", "edgepush-receiver"),
        })
        .clone()
}

/// The `edgepush-receiver` binary running with `args` and nothing of this
/// process's environment but `PATH` and `env`.
pub struct ReceiverProcess {
    /// Its base URL.
    pub url: String,
    process: Process,
}

impl ReceiverProcess {
    /// Starts the receiver and waits until it answers, or until it exits
    /// (then the error is its log).
    pub fn start(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Result<Self, String> {
        Self::start_on(dir, free_port(), args, env)
    }

    /// [`ReceiverProcess::start`] on `port` (to restart a receiver where its
    /// emitters expect it).
    pub fn start_on(
        dir: &Path,
        port: u16,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Self, String> {
        let listen = format!("127.0.0.1:{port}");
        let mut command = Command::new(receiver_binary());
        command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            // No instance metadata probe: there is no instance, and no network.
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .envs(env.iter().copied())
            .args(["--listen", &listen])
            .args(args)
            .current_dir(dir);
        let mut process = Process::spawn(
            "edgepush-receiver",
            command,
            dir.join(format!("receiver-{port}.log")),
        );
        let url = format!("http://{listen}");
        let start = std::time::Instant::now();
        while start.elapsed() < Duration::from_secs(30) {
            if let Ok(Some(_)) = process.child.try_wait() {
                return Err(process.log_text());
            }
            if crate::http_get(&format!("{url}/healthz")).is_ok() {
                return Ok(ReceiverProcess { url, process });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!("no answer within 30 s:\n{}", process.log_text()))
    }

    /// What the receiver logged so far.
    pub fn log_text(&self) -> String {
        self.process.log_text()
    }

    /// The receiver's process id.
    pub fn pid(&self) -> u32 {
        self.process.child.id()
    }

    /// Kills the receiver (SIGKILL: no chance to tidy up).
    pub fn kill(&mut self) {
        self.process.stop();
    }

    /// Stops the receiver as a service manager does (SIGTERM) and waits for
    /// it to exit, at most `limit`; panics with its log if it does not, or
    /// exits with a failure.
    pub fn shut_down(&mut self, limit: Duration) {
        let pid = self.process.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let start = std::time::Instant::now();
        loop {
            if let Ok(Some(status)) = self.process.child.try_wait() {
                assert!(status.success(), "{status}:\n{}", self.log_text());
                return;
            }
            assert!(
                start.elapsed() < limit,
                "still running {limit:?} after SIGTERM:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
