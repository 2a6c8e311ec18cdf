//! A signed, gzip'd `PutMetricData` request (SigV4 with `aws-sigv4`; the
//! clock is passed in).

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;

use super::config::{BuildError, Config, Keys};

/// The `X-Amz-Target` of `PutMetricData` in the AWS JSON 1.0 protocol.
pub const TARGET: &str = "GraniteServiceVersion20100801.PutMetricData";
/// The signing name of CloudWatch.
pub const SERVICE: &str = "monitoring";

/// A signed, gzip'd `PutMetricData` request for one JSON `body`, signed at
/// `time` (pass the clock in: inside a Worker it comes from JS).
pub fn request(
    config: &Config,
    keys: &Keys,
    body: &[u8],
    time: SystemTime,
) -> Result<http::Request<Vec<u8>>, BuildError> {
    let endpoint = config.endpoint()?;
    let uri: http::Uri = endpoint
        .parse()
        .map_err(|e: http::uri::InvalidUri| BuildError::Endpoint(e.to_string()))?;
    if uri.scheme().is_none() || uri.host().is_none() {
        return Err(BuildError::Endpoint(format!(
            "{endpoint:?} needs a scheme and a host, such as https://monitoring.eu-west-1.amazonaws.com/"
        )));
    }
    let builder = http::Request::post(uri)
        .header("content-type", "application/x-amz-json-1.0")
        .header("x-amz-target", TARGET);
    let mut request = if config.compress {
        let gzipped = crate::gzip::compress(body);
        builder.header("content-encoding", "gzip").body(gzipped)
    } else {
        builder.body(body.to_vec())
    }
    .map_err(|e| BuildError::Endpoint(e.to_string()))?;
    let identity: Identity = Credentials::new(
        &keys.access_key_id,
        &keys.secret_access_key,
        keys.session_token.clone(),
        None,
        "edgepush",
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(config.region()?)
        .name(SERVICE)
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| BuildError::Signing(e.to_string()))?
        .into();
    let headers = request
        .headers()
        .iter()
        .filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?)));
    let signable = SignableRequest::new(
        "POST",
        &endpoint,
        headers,
        SignableBody::Precomputed(crate::digest::sha256_hex(request.body())),
    )
    .map_err(|e| BuildError::Signing(e.to_string()))?;
    let (instructions, _signature) = sign(signable, &params)
        .map_err(|e| BuildError::Signing(e.to_string()))?
        .into_parts();
    instructions.apply_to_request_http1x(&mut request);
    Ok(request)
}
