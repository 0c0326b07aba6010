//! Sinks: where route actions send an event outside tradehook, one attempt at a time.
//!
//! - [`nats`]: publish to a NATS subject, through JetStream (acknowledged, de-duplicated by
//!   `Nats-Msg-Id`) or core NATS (fire and forget after a flush).
//! - [`exec`]: run an operator-configured command with the event JSON on stdin.
//!
//! A sink makes exactly one attempt and reports whether a failure is worth retrying. Retries,
//! their schedule and the dead-letter queue belong to the caller (the delivery engine), which is
//! why every failure is a [`SinkError`] carrying `retriable`.

pub mod exec;
pub mod nats;

/// Why one attempt to hand an event to a sink failed, and whether trying again may help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SinkError {
    /// What went wrong, for the attempt history and the DLQ; never contains secrets.
    pub message: String,
    /// True when the same attempt may succeed later (server down, timeout); false when it
    /// cannot (invalid subject, payload too large): the caller dead-letters at once.
    pub retriable: bool,
}

impl SinkError {
    /// A failure that may pass on a later attempt.
    pub fn retriable(message: impl Into<String>) -> Self {
        SinkError { message: message.into(), retriable: true }
    }

    /// A failure that will fail the same way every time.
    pub fn permanent(message: impl Into<String>) -> Self {
        SinkError { message: message.into(), retriable: false }
    }
}
