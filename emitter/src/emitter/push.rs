//! Sending batches through a [`Transport`], counted in the telemetry.

use alloc::string::ToString;
use alloc::vec::Vec;

use super::Emitter;
use crate::payload::Payload;
use crate::transport::{PushError, PushReport, SendError, Transport, send_all};

impl Emitter {
    /// Flushes and sends every batch through `transport`.
    ///
    /// Batches that are not taken come back in [`PushError::unsent`].
    pub fn push(&self, transport: &impl Transport) -> Result<PushReport, PushError> {
        let batches = self.flush().map_err(|e| PushError {
            error: SendError::Refused {
                status: 0,
                message: e.to_string(),
            },
            unsent: Vec::new(),
            report: PushReport::default(),
        })?;
        self.send(transport, batches)
    }

    /// Sends `batches` (from this emitter's flush, or handed back by an
    /// earlier push) through `transport` like [`send_all`], and counts what
    /// was sent, retried and handed back in [`Emitter::telemetry`].
    pub fn send(
        &self,
        transport: &impl Transport,
        batches: Vec<Payload>,
    ) -> Result<PushReport, PushError> {
        let result = send_all(transport, batches);
        let (report, failed) = match &result {
            Ok(report) => (report, 0),
            Err(e) => (&e.report, e.unsent.len()),
        };
        self.count_sent(report.batches as u64, report.retries, failed as u64);
        result
    }
}
