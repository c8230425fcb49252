//! Injected failures of the Secrets Manager API: latency, random `500`/`503` answers, an
//! outage (every request `503`) and a `429` storm. IAM and admin routes are never
//! affected.
//!
//! `POST /__admin/faults` (and [`crate::Emulator::set_faults`]) replaces the whole set;
//! durations count from that moment.

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

/// A fault set, as sent to and returned by `/__admin/faults`.
///
/// When returned, `outage` tells whether an outage is active now and `outage_seconds` /
/// `storm_429_seconds` hold the seconds left (absent when inactive or unbounded).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Delay added before every admitted answer, in milliseconds.
    pub latency_ms: u64,
    /// Share of admitted requests (0.0–1.0) answered with `error_status`.
    pub error_rate: f64,
    /// Status of injected errors: `500` or `503`.
    pub error_status: u16,
    /// Every request is answered `503` for this many seconds from now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outage_seconds: Option<f64>,
    /// `true` starts an outage until `false` is sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outage: Option<bool>,
    /// Every request is answered `429` (using no quota) for this many seconds from now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storm_429_seconds: Option<f64>,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            latency_ms: 0,
            error_rate: 0.0,
            error_status: 503,
            outage_seconds: None,
            outage: None,
            storm_429_seconds: None,
        }
    }
}

/// Why a fault set was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum FaultsError {
    /// `error_rate` is outside 0.0–1.0.
    #[error("error_rate must be between 0.0 and 1.0")]
    ErrorRate,
    /// `error_status` is neither 500 nor 503.
    #[error("error_status must be 500 or 503")]
    ErrorStatus,
    /// A duration is negative or not finite.
    #[error("{0} must be a non-negative number of seconds")]
    Duration(&'static str),
}

/// The active faults.
#[derive(Debug)]
pub(crate) struct FaultState {
    latency: Duration,
    error_rate: f64,
    error_status: u16,
    outage: Option<Until>,
    storm: Option<Instant>,
}

impl Default for FaultState {
    fn default() -> Self {
        Self {
            latency: Duration::ZERO,
            error_rate: 0.0,
            error_status: Faults::default().error_status,
            outage: None,
            storm: None,
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Until {
    Forever,
    Instant(Instant),
}

/// What to do with one admitted or arriving request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Decision {
    /// Answer `429` without using quota.
    pub(crate) storm: bool,
    /// Delay before answering.
    pub(crate) latency: Duration,
    /// Answer with this status instead of handling the request.
    pub(crate) failure: Option<StatusCode>,
}

impl FaultState {
    /// Replaces the active faults with `faults`.
    pub(crate) fn set(&mut self, faults: &Faults) -> Result<(), FaultsError> {
        if !(0.0..=1.0).contains(&faults.error_rate) {
            return Err(FaultsError::ErrorRate);
        }
        if ![500, 503].contains(&faults.error_status) {
            return Err(FaultsError::ErrorStatus);
        }
        let now = Instant::now();
        let deadline = |seconds: Option<f64>, name| {
            seconds
                .map(|seconds| {
                    Duration::try_from_secs_f64(seconds)
                        .map(|span| now + span)
                        .map_err(|_| FaultsError::Duration(name))
                })
                .transpose()
        };
        let outage_until = deadline(faults.outage_seconds, "outage_seconds")?;
        let storm = deadline(faults.storm_429_seconds, "storm_429_seconds")?;
        *self = Self {
            latency: Duration::from_millis(faults.latency_ms),
            error_rate: faults.error_rate,
            error_status: faults.error_status,
            outage: match (faults.outage, outage_until) {
                (Some(true), _) => Some(Until::Forever),
                (_, Some(until)) => Some(Until::Instant(until)),
                _ => None,
            },
            storm,
        };
        Ok(())
    }

    /// The active faults, with remaining durations.
    pub(crate) fn view(&self) -> Faults {
        let now = Instant::now();
        let remaining = |until: Instant| (until > now).then(|| (until - now).as_secs_f64());
        let outage_seconds = match self.outage {
            Some(Until::Instant(until)) => remaining(until),
            _ => None,
        };
        Faults {
            latency_ms: u64::try_from(self.latency.as_millis()).unwrap_or(u64::MAX),
            error_rate: self.error_rate,
            error_status: self.error_status,
            outage: Some(matches!(self.outage, Some(Until::Forever)) || outage_seconds.is_some()),
            outage_seconds,
            storm_429_seconds: self.storm.and_then(remaining),
        }
    }

    /// Decides the faults of a request arriving now.
    pub(crate) fn decide(&self) -> Decision {
        let now = Instant::now();
        let outage = match self.outage {
            Some(Until::Forever) => true,
            Some(Until::Instant(until)) => now < until,
            None => false,
        };
        let failure = if outage {
            Some(StatusCode::SERVICE_UNAVAILABLE)
        } else if self.error_rate > 0.0 && rand::random::<f64>() < self.error_rate {
            StatusCode::from_u16(self.error_status).ok()
        } else {
            None
        };
        Decision { storm: self.storm.is_some_and(|until| now < until), latency: self.latency, failure }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_and_reports() {
        let mut state = FaultState::default();
        assert_eq!(state.set(&Faults { error_rate: 2.0, ..Faults::default() }), Err(FaultsError::ErrorRate));
        assert_eq!(
            state.set(&Faults { error_status: 502, ..Faults::default() }),
            Err(FaultsError::ErrorStatus)
        );
        state.set(&Faults { outage_seconds: Some(60.0), error_rate: 1.0, ..Faults::default() }).unwrap();
        let view = state.view();
        assert_eq!(view.outage, Some(true));
        assert!(view.outage_seconds.is_some_and(|left| left > 0.0 && left <= 60.0));
        assert_eq!(state.decide().failure, Some(StatusCode::SERVICE_UNAVAILABLE));
        state.set(&Faults { error_rate: 1.0, error_status: 500, ..Faults::default() }).unwrap();
        assert_eq!(state.decide().failure, Some(StatusCode::INTERNAL_SERVER_ERROR));
        state.set(&Faults::default()).unwrap();
        assert_eq!(state.view(), Faults { outage: Some(false), ..Faults::default() });
        assert!(state.decide().failure.is_none());
    }
}
