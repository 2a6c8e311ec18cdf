//! CloudWatch from the native receiver. Region, endpoint and credentials
//! come from the AWS SDK's chains (`aws-config`: environment, profile files,
//! SSO, web identity, ECS task and EC2 instance roles); requests go through
//! `aws-sdk-cloudwatch` or, with `protocol = "json"`, as the AWS JSON the
//! Worker signs. Both paths send the same datums in the same requests
//! ([`cloudwatch::datums`], [`cloudwatch::split`]) and fail with the same
//! [`SinkFailure`], so nothing after them knows which one ran.

use std::time::{Duration, SystemTime};

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sdk_cloudwatch::config::SharedHttpClient;
use aws_sdk_cloudwatch::config::http::HttpResponse;
use aws_sdk_cloudwatch::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_cloudwatch::operation::put_metric_data::PutMetricDataError;
use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit, StatisticSet};
use tokio::sync::Mutex;

use edgepush_receiver::model::Batch;
use edgepush_receiver::sink::cloudwatch::{self, Datum, Measure, Protocol, RetryMode};
use edgepush_receiver::sink::{
    self, Client, Retry, Sink, SinkFailure, SinkRefusal, covers, deliver, settle,
};

/// How long the credentials chain may take to answer at start-up (the
/// instance metadata probe is the slow link when there is no instance).
const CREDENTIALS_CHECK: Duration = Duration::from_secs(10);
/// Credentials are renewed this long before they expire.
const RENEW_BEFORE: Duration = Duration::from_secs(300);

/// A CloudWatch sink with its region, endpoint and credentials resolved.
#[derive(Debug)]
pub struct AwsCloudWatch {
    config: cloudwatch::Config,
    path: Path,
}

#[derive(Debug)]
enum Path {
    Sdk(aws_sdk_cloudwatch::Client),
    Json {
        provider: SharedCredentialsProvider,
        cached: Mutex<Option<Credentials>>,
    },
}

impl AwsCloudWatch {
    /// Resolves `config` through the SDK's chains, and checks that
    /// credentials can be found, so that a receiver without them says so
    /// when it starts rather than at its first batch. `retry` becomes the
    /// SDK's retry settings.
    pub async fn connect(config: &cloudwatch::Config, retry: Retry) -> Result<Self, String> {
        Self::connect_with(config, retry, https_client()).await
    }

    /// [`AwsCloudWatch::connect`] with the SDK's requests (credentials and
    /// region lookups included) going through `http` (benchmarks use an
    /// in-process client).
    pub async fn connect_with(
        config: &cloudwatch::Config,
        retry: Retry,
        http: SharedHttpClient,
    ) -> Result<Self, String> {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .http_client(http)
            .retry_config(retry_config(config.retry_mode, retry))
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(3))
                    .operation_attempt_timeout(Duration::from_secs(10))
                    .build(),
            );
        if let Some(region) = &config.region {
            loader = loader.region(aws_config::Region::new(region.clone()));
        }
        if let Some(endpoint) = &config.endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        match (&config.access_key_id, &config.secret_access_key) {
            (Some(id), Some(secret)) => {
                loader = loader.credentials_provider(Credentials::new(
                    id,
                    secret,
                    config.session_token.clone(),
                    None,
                    "edgepush-config",
                ));
            }
            (None, None) => {}
            _ => {
                return Err(
                    "CloudWatch sink: access_key_id and secret_access_key go together".into(),
                );
            }
        }
        let shared = loader.load().await;
        let region = shared.region().map(|r| r.to_string()).ok_or(
            "CloudWatch sink: no region (set the sink's `region`, AWS_REGION, or a profile's `region`)",
        )?;
        let provider = shared
            .credentials_provider()
            .ok_or("CloudWatch sink: no credentials provider")?;
        let first = tokio::time::timeout(CREDENTIALS_CHECK, provider.provide_credentials())
            .await
            .map_err(|_| {
                format!("CloudWatch sink: no AWS credentials within {CREDENTIALS_CHECK:?}")
            })?
            .map_err(|e| {
                format!(
                    "CloudWatch sink: no AWS credentials ({}); set AWS_ACCESS_KEY_ID and \
                     AWS_SECRET_ACCESS_KEY, or AWS_PROFILE with a profile file, or the sink's \
                     access_key_id and secret_access_key, or run with an instance or task role",
                    DisplayErrorContext(&e)
                )
            })?;
        let resolved = cloudwatch::Config {
            region: Some(region),
            endpoint: config
                .endpoint
                .clone()
                .or_else(|| shared.endpoint_url().map(String::from)),
            ..config.clone()
        };
        let path = match config.protocol {
            Protocol::Sdk => {
                let sdk = aws_sdk_cloudwatch::config::Builder::from(&shared)
                    .disable_request_compression(!config.compress)
                    .build();
                Path::Sdk(aws_sdk_cloudwatch::Client::from_conf(sdk))
            }
            Protocol::Json => Path::Json {
                provider,
                cached: Mutex::new(Some(first)),
            },
        };
        Ok(AwsCloudWatch {
            config: resolved,
            path,
        })
    }

    /// The settings with region and endpoint as resolved.
    pub fn config(&self) -> &cloudwatch::Config {
        &self.config
    }

    /// Sends `batch` to CloudWatch, retrying what is worth retrying (the
    /// SDK's retries, or [`deliver`]'s for signed JSON).
    pub async fn deliver(
        &self,
        client: &impl Client,
        batch: &Batch,
        retry: Retry,
    ) -> Result<Vec<SinkRefusal>, SinkFailure> {
        match &self.path {
            Path::Sdk(sdk) => {
                let unstorable = cloudwatch::unstorable(batch);
                if covers(&unstorable, batch) {
                    return Ok(unstorable);
                }
                let mut refusals = Vec::new();
                for (points, datums) in cloudwatch::sdk_requests(batch) {
                    let sent = sdk
                        .put_metric_data()
                        .namespace(&batch.namespace)
                        .set_metric_data(Some(datums.iter().map(metric_datum).collect()))
                        .send()
                        .await;
                    match sent.map_err(|e| failure(e, points.start)) {
                        Ok(_) => {}
                        Err(f) if f.retryable => return Err(f),
                        Err(f) => {
                            refusals.push(sink::refusal(f.sink, batch, points.collect(), f.message))
                        }
                    }
                }
                refusals.extend(unstorable);
                settle("cloudwatch", batch, refusals)
            }
            Path::Json { provider, cached } => {
                let keys = self.keys(provider, cached).await?;
                let sink = Sink::CloudWatch(self.config.clone(), keys);
                deliver(client, &sink, batch, SystemTime::now(), retry).await
            }
        }
    }

    /// Credentials to sign with: the cached ones until shortly before they
    /// expire, then the chain's again.
    async fn keys(
        &self,
        provider: &SharedCredentialsProvider,
        cached: &Mutex<Option<Credentials>>,
    ) -> Result<cloudwatch::Keys, SinkFailure> {
        let mut cached = cached.lock().await;
        let fresh = |c: &Credentials| {
            c.expiry()
                .is_none_or(|at| at > SystemTime::now() + RENEW_BEFORE)
        };
        let credentials = match cached.as_ref().filter(|c| fresh(c)) {
            Some(c) => c.clone(),
            None => {
                let c = provider
                    .provide_credentials()
                    .await
                    .map_err(|e| SinkFailure {
                        sink: "cloudwatch",
                        retryable: true,
                        message: format!("no AWS credentials: {}", DisplayErrorContext(&e)),
                        done: 0,
                    })?;
                *cached = Some(c.clone());
                c
            }
        };
        Ok(cloudwatch::Keys {
            access_key_id: credentials.access_key_id().to_string(),
            secret_access_key: credentials.secret_access_key().to_string(),
            session_token: credentials.session_token().map(String::from),
        })
    }
}

/// hyper with rustls on ring, the TLS stack the rest of the receiver uses.
fn https_client() -> SharedHttpClient {
    use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

/// Our retry settings as the SDK's: as many attempts, the same first wait
/// and the same longest wait, in the configured mode.
fn retry_config(mode: RetryMode, retry: Retry) -> RetryConfig {
    match mode {
        RetryMode::Standard => RetryConfig::standard(),
        RetryMode::Adaptive => RetryConfig::adaptive(),
    }
    .with_max_attempts(retry.attempts.max(1))
    .with_initial_backoff(retry.backoff)
    .with_max_backoff(retry.max_wait)
}

/// One datum as the SDK's type.
fn metric_datum(datum: &Datum<'_>) -> MetricDatum {
    let series = datum.series;
    let builder = MetricDatum::builder()
        .metric_name(&series.name)
        .set_dimensions(Some(
            series
                .dimensions
                .iter()
                .map(|(name, value)| Dimension::builder().name(name).value(value).build())
                .collect(),
        ))
        .timestamp(DateTime::from_millis(datum.timestamp_ms))
        .unit(StandardUnit::from(series.unit.as_str()))
        // 1 or 60.
        .storage_resolution(series.resolution.seconds() as i32);
    match datum.measure {
        Measure::Value(v) => builder.value(v),
        Measure::Statistics(st) => builder.statistic_values(
            StatisticSet::builder()
                .sample_count(st.count)
                .sum(st.sum)
                .minimum(st.min)
                .maximum(st.max)
                .build(),
        ),
        Measure::Values { values, counts } => builder
            .set_values(Some(values.to_vec()))
            .set_counts(Some(counts.to_vec())),
    }
    .build()
}

/// An SDK error (after the SDK's own retries) as the same failure the signed
/// JSON path reports: throttling, 408, 429, 5xx, timeouts and network
/// errors are retryable; other refusals are not.
fn failure(e: SdkError<PutMetricDataError, HttpResponse>, done: usize) -> SinkFailure {
    let (retryable, message) = match &e {
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            let code = service.err().code().unwrap_or("Unknown");
            (
                status == 408 || status == 429 || status >= 500 || cloudwatch::is_throttling(code),
                format!(
                    "{status} {code}: {}",
                    service.err().message().unwrap_or_default()
                ),
            )
        }
        _ => (true, DisplayErrorContext(&e).to_string()),
    };
    SinkFailure {
        sink: "cloudwatch",
        retryable,
        message,
        done,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex as StdMutex};

    use axum::body::Bytes;
    use edgepush_protocol::wire::Kind;
    use edgepush_protocol::{Resolution, Unit};

    use super::*;
    use crate::Reqwest;
    use edgepush_receiver::model::{Point, Series, StatisticSet as Stats, Value};

    /// A CBOR text string (short or one-byte length, as the tests need).
    fn cbor_text(out: &mut Vec<u8>, s: &str) {
        if s.len() < 24 {
            out.push(0x60 + s.len() as u8);
        } else {
            out.extend_from_slice(&[0x78, s.len() as u8]);
        }
        out.extend_from_slice(s.as_bytes());
    }

    /// An rpc-v2-cbor error body.
    fn cbor_error(kind: &str, message: &str) -> Vec<u8> {
        let mut out = vec![0xa2];
        cbor_text(&mut out, "__type");
        cbor_text(&mut out, kind);
        cbor_text(&mut out, "message");
        cbor_text(&mut out, message);
        out
    }

    /// An endpoint that records the bodies it is sent and answers from a
    /// script (then 200 once the script is used up).
    struct Endpoint {
        url: String,
        bodies: Arc<StdMutex<Vec<Bytes>>>,
    }

    async fn serve_script(script: Vec<(u16, Vec<u8>)>) -> Endpoint {
        let bodies = Arc::new(StdMutex::new(Vec::new()));
        let script = Arc::new(StdMutex::new(script));
        let seen = bodies.clone();
        let app = axum::Router::new().fallback(move |body: Bytes| {
            let seen = seen.clone();
            let script = script.clone();
            async move {
                seen.lock().expect("lock").push(body);
                let mut script = script.lock().expect("lock");
                let (status, body) = if script.is_empty() {
                    (200, vec![0xa0])
                } else {
                    script.remove(0)
                };
                axum::response::Response::builder()
                    .status(status)
                    .header("smithy-protocol", "rpc-v2-cbor")
                    .header("content-type", "application/cbor")
                    .body(axum::body::Body::from(body))
                    .expect("response")
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Endpoint { url, bodies }
    }

    async fn sink(url: &str, protocol: Protocol) -> AwsCloudWatch {
        let config = cloudwatch::Config {
            endpoint: Some(url.to_string()),
            access_key_id: Some("AK".into()),
            secret_access_key: Some("SK".into()),
            compress: false,
            protocol,
            ..cloudwatch::Config::new("us-east-1")
        };
        let retry = Retry {
            attempts: 2,
            backoff: Duration::from_millis(1),
            max_wait: Duration::from_millis(5),
        };
        AwsCloudWatch::connect(&config, retry)
            .await
            .expect("connect")
    }

    fn batch() -> Batch {
        let series = |name: &str, kind| Series {
            name: name.into(),
            kind,
            unit: Unit::Milliseconds,
            dimensions: (0..3)
                .map(|i| (format!("dimension{i}"), format!("value-{i}")))
                .collect(),
            resolution: Resolution::High,
        };
        let mut points = Vec::new();
        for i in 0..700 {
            points.push(Point {
                series: 0,
                timestamp_ms: 1_700_000_000_000 + i,
                value: Value::Counter(1.0),
            });
            points.push(Point {
                series: 1,
                timestamp_ms: 1_700_000_000_000 + i,
                value: Value::Distribution {
                    values: (0..150).map(|v| f64::from(v) * 0.5).collect(),
                    counts: vec![1.0; 150],
                },
            });
            points.push(Point {
                series: 2,
                timestamp_ms: 1_700_000_000_000 + i,
                value: Value::Statistics(Stats {
                    count: 3.0,
                    sum: 6.0,
                    min: 1.0,
                    max: 3.0,
                }),
            });
        }
        Batch {
            id: "b".into(),
            namespace: "Bound".into(),
            series: vec![
                series("requests", Kind::Counter),
                series("latency", Kind::Distribution),
                series("size", Kind::Statistics),
            ],
            points,
        }
    }

    #[tokio::test]
    async fn sdk_bodies_fit_the_bound_the_split_uses() {
        let endpoint = serve_script(vec![]).await;
        let aws = sink(&endpoint.url, Protocol::Sdk).await;
        let batch = batch();
        aws.deliver(&Reqwest::default(), &batch, Retry::default())
            .await
            .expect("delivered");
        let groups = cloudwatch::sdk_requests(&batch);
        let bodies = endpoint.bodies.lock().expect("lock").clone();
        // 2,100 datums, the distributions' 2.7 KB of CBOR each: split by
        // bytes (well under 1,000 per request), nothing lost.
        assert_eq!(bodies.len(), groups.len());
        assert!(groups.len() >= 3, "{}", groups.len());
        assert_eq!(groups.iter().map(|(_, g)| g.len()).sum::<usize>(), 2100);
        for (body, (_, group)) in bodies.iter().zip(&groups) {
            let bound = cloudwatch::cbor_envelope_bound(&batch.namespace)
                + group
                    .iter()
                    .map(cloudwatch::cbor_datum_bound)
                    .sum::<usize>()
                + group.len();
            assert!(body.len() <= bound, "{} > {bound}", body.len());
            assert!(
                body.len() <= edgepush_protocol::limits::MAX_REQUEST_BYTES,
                "{}",
                body.len()
            );
            // A bound, but a close one: at most 5% above what is sent.
            assert!(bound * 100 <= body.len() * 105, "{bound} vs {}", body.len());
        }
    }

    #[tokio::test]
    async fn sdk_errors_fail_like_the_json_path() {
        // One request refused: not retried, its points named with the code
        // and message; the other requests still sent.
        let refused = || {
            (
                400,
                cbor_error("InvalidParameterValue", "The value for parameter x is bad"),
            )
        };
        let whole = batch();
        let requests = cloudwatch::sdk_requests(&whole);
        assert!(requests.len() >= 3);
        let endpoint = serve_script(vec![refused()]).await;
        let aws = sink(&endpoint.url, Protocol::Sdk).await;
        let refusals = aws
            .deliver(&Reqwest::default(), &batch(), Retry::default())
            .await
            .expect("the other requests were taken");
        assert_eq!(refusals.len(), 1);
        assert_eq!(
            refusals[0].points,
            requests[0].0.clone().collect::<Vec<_>>()
        );
        assert!(
            refusals[0]
                .message
                .contains("400 InvalidParameterValue: The value"),
            "{refusals:?}"
        );
        assert_eq!(endpoint.bodies.lock().expect("lock").len(), requests.len());

        // Every request refused: the batch is refused, not retryable.
        let endpoint = serve_script(vec![refused(); requests.len()]).await;
        let aws = sink(&endpoint.url, Protocol::Sdk).await;
        let failure = aws
            .deliver(&Reqwest::default(), &batch(), Retry::default())
            .await
            .expect_err("refused");
        assert!(!failure.retryable, "{failure:?}");
        assert!(
            failure.message.contains("InvalidParameterValue"),
            "{failure:?}"
        );

        // Throttled, then throttled again: the SDK retried once (2 attempts),
        // and the failure is retryable.
        let throttled = || (400, cbor_error("Throttling", "Rate exceeded"));
        let endpoint = serve_script(vec![throttled(), throttled()]).await;
        let aws = sink(&endpoint.url, Protocol::Sdk).await;
        let failure = aws
            .deliver(&Reqwest::default(), &batch(), Retry::default())
            .await
            .expect_err("throttled");
        assert!(failure.retryable, "{failure:?}");
        assert!(failure.message.contains("Throttling"), "{failure:?}");
        assert_eq!(endpoint.bodies.lock().expect("lock").len(), 2);

        // 503 once, then taken.
        let endpoint = serve_script(vec![(503, cbor_error("ServiceUnavailable", "later"))]).await;
        let aws = sink(&endpoint.url, Protocol::Sdk).await;
        let small = Batch {
            points: batch().points[..3].to_vec(),
            ..batch()
        };
        aws.deliver(&Reqwest::default(), &small, Retry::default())
            .await
            .expect("retried and delivered");
        assert_eq!(endpoint.bodies.lock().expect("lock").len(), 2);
    }

    #[tokio::test]
    async fn an_unreachable_endpoint_is_retryable_on_both_paths() {
        // A port nothing listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port")
            .port();
        let url = format!("http://127.0.0.1:{port}/");
        for protocol in [Protocol::Sdk, Protocol::Json] {
            let aws = sink(&url, protocol).await;
            let retry = Retry {
                attempts: 1,
                ..Retry::default()
            };
            let failure = aws
                .deliver(&Reqwest::default(), &batch(), retry)
                .await
                .expect_err("unreachable");
            assert!(failure.retryable, "{protocol:?}: {failure:?}");
            assert_eq!(failure.sink, "cloudwatch");
        }
    }
}
