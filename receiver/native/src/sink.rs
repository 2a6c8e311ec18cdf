//! The sinks the native server runs: the core's request-building sinks
//! ([`Sink`]) sent through reqwest, and the two that do their own I/O:
//! CloudWatch through the AWS SDK and line protocol on standard output.

use std::io::Write as _;
use std::sync::Arc;

use crate::cloudwatch::AwsCloudWatch;
use edgepush_receiver::model::Batch;
use edgepush_receiver::sink::{
    Encoder, Sink, SinkFailure, SinkRefusal, SinkTag, cloudwatch, influxdb,
};

/// A sink as the native server runs it.
#[derive(Clone, Debug)]
pub enum NativeSink {
    /// A core sink: its requests go out through the native client.
    Encoded(Sink),
    /// CloudWatch natively, with the SDK's credentials chain: through the
    /// SDK or signed AWS JSON, as configured.
    Aws(Arc<AwsCloudWatch>),
    /// Line protocol on standard output (the embedded default).
    Stdout,
}

impl From<Sink> for NativeSink {
    fn from(sink: Sink) -> Self {
        NativeSink::Encoded(sink)
    }
}

impl NativeSink {
    /// A short name for logs and answers.
    pub fn name(&self) -> &'static str {
        match self {
            NativeSink::Encoded(sink) => sink.name(),
            NativeSink::Aws(_) => "cloudwatch",
            NativeSink::Stdout => "stdout",
        }
    }

    /// The points of `batch` it cannot store, whatever it would answer.
    pub fn unstorable(&self, batch: &Batch) -> Vec<SinkRefusal> {
        match self {
            NativeSink::Encoded(sink) => sink.unstorable(batch),
            NativeSink::Aws(_) => cloudwatch::unstorable(batch),
            NativeSink::Stdout => Vec::new(),
        }
    }

    /// The tag its spool records carry; `None` for standard output, which
    /// has no spool.
    pub fn tag(&self) -> Option<SinkTag> {
        match self {
            NativeSink::Encoded(sink) => Some(sink.tag()),
            NativeSink::Aws(_) => Some(SinkTag::CloudWatch),
            NativeSink::Stdout => None,
        }
    }
}

/// Writes `batch` as line protocol to standard output.
pub fn write_stdout(batch: &Batch) -> Result<(), SinkFailure> {
    let mut text = String::new();
    influxdb::encode(batch, &mut text);
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| SinkFailure {
            sink: "stdout",
            retryable: true,
            message: format!("cannot write to stdout: {e}"),
            done: 0,
        })
}
