//! A CloudWatch sink's settings, the credentials it signs with, and why a
//! request could not be built from them.

use serde::Deserialize;

/// Settings of a CloudWatch sink.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// AWS region, such as `us-east-1`. Natively, by default the SDK's
    /// region chain (`AWS_REGION`, the profile's `region`, the instance's
    /// metadata); the Worker needs it set.
    #[serde(default)]
    pub region: Option<String>,
    /// Endpoint override (an emulator, a VPC endpoint); by default
    /// `https://monitoring.<region>.amazonaws.com/` (natively: the SDK's
    /// endpoint resolution, `AWS_ENDPOINT_URL_CLOUDWATCH` included).
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Access key id. Natively, credentials set here replace the SDK's
    /// credentials chain; in the Worker they come from secrets.
    #[serde(default)]
    pub access_key_id: Option<String>,
    /// Secret key, with `access_key_id`.
    #[serde(default)]
    pub secret_access_key: Option<String>,
    /// Session token of temporary credentials, with `access_key_id`.
    #[serde(default)]
    pub session_token: Option<String>,
    /// Gzip request bodies (default true). Off for endpoints that cannot
    /// take compressed bodies.
    #[serde(default = "yes")]
    pub compress: bool,
    /// How requests are sent natively (the Worker always signs AWS JSON).
    #[serde(default)]
    pub protocol: Protocol,
    /// Natively, how the SDK paces its retries.
    #[serde(default)]
    pub retry_mode: RetryMode,
}

/// How the native receiver sends `PutMetricData`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// Through `aws-sdk-cloudwatch` (rpc-v2-cbor), with the SDK's retries.
    #[default]
    Sdk,
    /// AWS JSON 1.0, signed here with SigV4: what the Worker sends, for
    /// endpoints that do not speak the SDK's protocol.
    Json,
}

/// The SDK's retry modes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RetryMode {
    /// Exponential backoff with jitter, per request.
    #[default]
    Standard,
    /// Standard, plus client-side rate limiting when throttled.
    Adaptive,
}

fn yes() -> bool {
    true
}

impl Config {
    /// Settings for `region` and nothing else set.
    pub fn new(region: impl Into<String>) -> Self {
        Config {
            region: Some(region.into()),
            endpoint: None,
            access_key_id: None,
            secret_access_key: None,
            session_token: None,
            compress: true,
            protocol: Protocol::default(),
            retry_mode: RetryMode::default(),
        }
    }

    /// The region, or an error saying it is missing.
    pub fn region(&self) -> Result<&str, BuildError> {
        self.region.as_deref().ok_or(BuildError::Region)
    }

    /// The endpoint requests go to.
    pub fn endpoint(&self) -> Result<String, BuildError> {
        Ok(match &self.endpoint {
            Some(e) => e.clone(),
            None => format!("https://monitoring.{}.amazonaws.com/", self.region()?),
        })
    }
}

/// Credentials to sign with.
#[derive(Clone, Debug)]
pub struct Keys {
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
    /// Session token of temporary credentials.
    pub session_token: Option<String>,
}

/// Why a request could not be built.
#[derive(Debug)]
#[non_exhaustive]
pub enum BuildError {
    /// No region is set.
    Region,
    /// The endpoint is not a valid URI.
    Endpoint(String),
    /// Signing failed.
    Signing(String),
}

impl std::fmt::Display for BuildError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BuildError::Region => f.write_str("no CloudWatch region set"),
            BuildError::Endpoint(e) => write!(f, "invalid CloudWatch endpoint: {e}"),
            BuildError::Signing(e) => write!(f, "cannot sign CloudWatch request: {e}"),
        }
    }
}

impl std::error::Error for BuildError {}
