//! How a sync is reported: the status subresource (the KES fields plus a
//! `Ready` condition) and Kubernetes Events.
//!
//! Messages come from [`Error::chain`](crate::Error::chain) and name data
//! entries and remote keys, never values.

use jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Api, Resource, ResourceExt};
use serde_json::json;

use crate::crd::{Condition, ExternalSecret, ExternalSecretStatus};
use crate::{Error, Result};

/// The condition type this controller maintains.
pub const READY: &str = "Ready";
/// The `Ready=True` reason.
pub const SYNCED: &str = "SecretSynced";

/// What a successful sync did to the Secret.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The Secret did not exist and was created.
    Created,
    /// The Secret's content changed.
    Updated,
    /// The Secret already held the desired content.
    Unchanged,
}

/// The status after a sync ending in `result`, at `now`. The condition's
/// `lastTransitionTime` is kept when its status does not change.
pub fn next_status(
    es: &ExternalSecret,
    result: std::result::Result<(), &Error>,
    now: Timestamp,
) -> ExternalSecretStatus {
    let (status, ready, reason, message) = match result {
        Ok(()) => ("SUCCESS".to_owned(), "True", SYNCED, "the Secret is in sync".to_owned()),
        Err(error) => {
            let message = one_line(&error.chain());
            (format!("ERROR, {message}"), "False", error.reason(), message)
        }
    };
    let previous = es.ready_condition();
    let last_transition_time = previous
        .filter(|condition| condition.status == ready)
        .map_or_else(|| now.to_string(), |condition| condition.last_transition_time.clone());
    let generation = es.metadata.generation;
    ExternalSecretStatus {
        status: Some(status),
        last_sync: Some(now.to_string()),
        observed_generation: generation,
        conditions: vec![Condition {
            type_: READY.to_owned(),
            status: ready.to_owned(),
            reason: reason.to_owned(),
            message,
            last_transition_time,
            observed_generation: generation,
        }],
    }
}

/// Writes `status` to the status subresource.
pub async fn patch_status(
    api: &Api<ExternalSecret>,
    es: &ExternalSecret,
    status: &ExternalSecretStatus,
) -> Result<()> {
    let patch = Patch::Merge(json!({ "status": status }));
    api.patch_status(&es.name_any(), &PatchParams::default(), &patch)
        .await
        .map(drop)
        .map_err(|source| Error::Kube { action: "update ExternalSecret status", source })
}

/// Publishes the Event for a sync result: `Created` or `Updated` (Normal)
/// when the Secret changed, `SyncFailed` (Warning) on error, nothing when
/// the Secret was already in sync. A failure to publish is logged only.
pub async fn publish_event(
    recorder: &Recorder,
    es: &ExternalSecret,
    result: std::result::Result<Outcome, &Error>,
) {
    let event = match result {
        Ok(Outcome::Unchanged) => return,
        Ok(Outcome::Created) => Event {
            type_: EventType::Normal,
            reason: "Created".into(),
            note: Some("created the Secret".into()),
            action: "Sync".into(),
            secondary: None,
        },
        Ok(Outcome::Updated) => Event {
            type_: EventType::Normal,
            reason: "Updated".into(),
            note: Some("updated the Secret".into()),
            action: "Sync".into(),
            secondary: None,
        },
        Err(error) => Event {
            type_: EventType::Warning,
            reason: error.reason().into(),
            note: Some(truncate(one_line(&error.chain()), 1000)),
            action: "Sync".into(),
            secondary: None,
        },
    };
    if let Err(error) = recorder.publish(&event, &es.object_ref(&())).await {
        tracing::warn!(%error, "cannot publish event");
    }
}

/// KES removes newlines and double spaces from status messages.
fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn truncate(mut message: String, max: usize) -> String {
    if message.len() > max {
        let mut end = max;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
    }
    message
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::materialize;

    fn es() -> ExternalSecret {
        let mut es = ExternalSecret::new("x", crate::fixtures::spec(json!([{"key": "k", "name": "a"}])));
        es.metadata.generation = Some(3);
        es
    }

    #[test]
    fn success_and_failure_statuses() {
        let now: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let ok = next_status(&es(), Ok(()), now);
        assert_eq!(ok.status.as_deref(), Some("SUCCESS"));
        assert_eq!(ok.last_sync.as_deref(), Some("2026-01-01T00:00:00Z"));
        assert_eq!(ok.observed_generation, Some(3));
        assert_eq!(ok.conditions[0].reason, SYNCED);

        let error = Error::Spec(materialize::Error::MissingField { field: "spec.data[0].key".into() });
        let mut failing = es();
        failing.status = Some(ok.clone());
        let later: Timestamp = "2026-01-01T00:01:00Z".parse().unwrap();
        let failed = next_status(&failing, Err(&error), later);
        assert_eq!(failed.status.as_deref(), Some("ERROR, spec.data[0].key is required"));
        let condition = &failed.conditions[0];
        assert_eq!((condition.status.as_str(), condition.reason.as_str()), ("False", "InvalidSpec"));
        assert_eq!(condition.last_transition_time, "2026-01-01T00:01:00Z");

        failing.status = Some(failed);
        let again = next_status(&failing, Err(&error), "2026-01-01T00:02:00Z".parse().unwrap());
        assert_eq!(again.conditions[0].last_transition_time, "2026-01-01T00:01:00Z", "kept while unchanged");
    }

    #[test]
    fn messages_are_one_line_and_bounded() {
        assert_eq!(one_line("a\n  b\tc"), "a b c");
        assert_eq!(truncate("é".repeat(600), 1000).len(), 1000);
        assert_eq!(truncate("éa".repeat(400), 1000).len(), 999, "cut at a char boundary");
    }
}
