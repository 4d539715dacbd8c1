//! What happens after an attempt: the one decision function, [`RetryPolicy::decide`].
//!
//! Rules (the SDK protocol's retry contract):
//! - A 200/206 reply with ops is [`Outcome::Completed`]: the caller applies the ops.
//!   Step outcomes are read from the opcode, never from headers (TS v3 and v4 disagree
//!   on `x-inngest-no-retry` for `StepFailed`).
//! - `StepError` with attempts left is retried with backoff; on the last attempt it is
//!   [`Outcome::Failed`]. `StepFailed` is always `Failed`.
//! - An HTTP error: `x-inngest-no-retry: true` wins and fails at once. Otherwise it is
//!   retried (4xx included) while attempts are left, at `Retry-After` when sent.
//! - A transport error or timeout is retried while attempts are left.
//!
//! "Attempts left" means `attempt + 1 < max_attempts` (`attempt` is 0-based).
//!
//! For a step op, `Failed` ends the step, not necessarily the run: the caller stores the
//! error as the step's result and calls the SDK again, which fails the run only if user
//! code doesn't catch it. For HTTP and transport errors `Failed` fails the run.

use crate::time::Millis;
use rand::Rng;
use std::time::Duration;

/// What one call to the SDK produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptResult {
    /// 200 (the function returned) or 206 with ops other than `StepError`/`StepFailed`.
    Responded,
    /// A 206 whose op is `StepError`: the step threw and may be retried.
    StepError {
        /// The error message, for logs and the final failure.
        error: String,
    },
    /// A 206 whose op is `StepFailed`: the step failed for good.
    StepFailed {
        /// The error message.
        error: String,
    },
    /// A non-2xx status.
    Http {
        /// The HTTP status.
        status: u16,
        /// `x-inngest-no-retry`, when sent.
        no_retry: Option<bool>,
        /// `Retry-After`, already read (see `sluice_protocol::event::retry_after`).
        retry_after: Option<Duration>,
        /// A short description (e.g. the body's `message`).
        error: String,
    },
    /// No HTTP reply: connection refused, reset, or timed out.
    Transport {
        /// What went wrong.
        error: String,
    },
}

/// What to do next with the queue item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The attempt produced a reply to apply.
    Completed,
    /// Try again, same queue item, `attempt + 1`, not before `at`.
    Retry {
        /// When the next attempt is due.
        at: Millis,
    },
    /// No more attempts.
    Failed {
        /// Why, for the run's (or the step's) error.
        error: String,
    },
}

/// Exponential backoff with full jitter.
///
/// The wait before retrying after attempt `n` (0-based) is uniform in
/// `[min, min(max, base * 2^n)]`. The defaults (base 2 s, min 1 s, max 1 h) give
/// 1–2 s, 1–4 s, 1–8 s, … and never more than an hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The ceiling of the first wait; doubles with each attempt.
    pub base: Duration,
    /// The shortest wait (the floor under the jitter).
    pub min: Duration,
    /// The longest wait from backoff alone.
    pub max: Duration,
    /// The longest `Retry-After` honoured.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(2),
            min: Duration::from_secs(1),
            max: Duration::from_secs(3600),
            max_retry_after: Duration::from_secs(24 * 3600),
        }
    }
}

impl RetryPolicy {
    /// The backoff wait after attempt `attempt` (0-based), jittered with `rng`.
    pub fn backoff(&self, attempt: u32, rng: &mut impl Rng) -> Duration {
        let min = self.min.as_millis() as u64;
        let ceiling = (self.base.as_millis() as u64)
            .saturating_mul(1u64.checked_shl(attempt.min(63)).unwrap_or(u64::MAX))
            .min(self.max.as_millis() as u64)
            .max(min);
        Duration::from_millis(rng.gen_range(min..=ceiling))
    }

    /// Decides what follows an attempt. See the [module docs](self) for the rules.
    pub fn decide(
        &self,
        result: AttemptResult,
        attempt: u32,
        max_attempts: u32,
        now: Millis,
        rng: &mut impl Rng,
    ) -> Outcome {
        let attempts_left = attempt.saturating_add(1) < max_attempts;
        let retry = |wait: Duration| Outcome::Retry { at: now.plus(wait) };
        match result {
            AttemptResult::Responded => Outcome::Completed,
            AttemptResult::StepFailed { error } => Outcome::Failed { error },
            AttemptResult::StepError { error } if !attempts_left => Outcome::Failed { error },
            AttemptResult::StepError { .. } => retry(self.backoff(attempt, rng)),
            AttemptResult::Http {
                status,
                no_retry,
                retry_after,
                error,
            } => {
                if no_retry == Some(true) || !attempts_left {
                    return Outcome::Failed {
                        error: format!("http {status}: {error}"),
                    };
                }
                match retry_after {
                    Some(wait) => retry(wait.clamp(self.min, self.max_retry_after)),
                    None => retry(self.backoff(attempt, rng)),
                }
            }
            AttemptResult::Transport { error } if !attempts_left => Outcome::Failed { error },
            AttemptResult::Transport { .. } => retry(self.backoff(attempt, rng)),
        }
    }
}

/// [`RetryPolicy::decide`] with the default policy.
pub fn decide(
    result: AttemptResult,
    attempt: u32,
    max_attempts: u32,
    now: Millis,
    rng: &mut impl Rng,
) -> Outcome {
    RetryPolicy::default().decide(result, attempt, max_attempts, now, rng)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn http(status: u16, no_retry: Option<bool>, retry_after: Option<u64>) -> AttemptResult {
        AttemptResult::Http {
            status,
            no_retry,
            retry_after: retry_after.map(Duration::from_secs),
            error: "boom".into(),
        }
    }

    /// The expected outcome: completed, failed, or retried within `[lo, hi]` ms of now.
    #[derive(Debug)]
    enum Want {
        Done,
        Fail,
        RetryIn(i64, i64),
    }

    #[test]
    fn decides_every_attempt_result() {
        use Want::*;
        let step_error = || AttemptResult::StepError { error: "e".into() };
        let transport = || AttemptResult::Transport {
            error: "reset".into(),
        };
        let cases: Vec<(AttemptResult, u32, u32, Want)> = vec![
            (AttemptResult::Responded, 0, 5, Done),
            (AttemptResult::Responded, 4, 5, Done),
            (step_error(), 0, 5, RetryIn(1_000, 2_000)),
            (step_error(), 3, 5, RetryIn(1_000, 32_000)),
            (step_error(), 4, 5, Fail),
            (step_error(), 0, 1, Fail),
            (step_error(), 0, 0, Fail),
            (AttemptResult::StepFailed { error: "f".into() }, 0, 5, Fail),
            // The no-retry header wins, whatever the status.
            (http(400, Some(true), None), 0, 5, Fail),
            (http(500, Some(true), Some(30)), 0, 5, Fail),
            // Otherwise retried, 4xx included.
            (http(400, Some(false), None), 0, 5, RetryIn(1_000, 2_000)),
            (http(404, None, None), 1, 5, RetryIn(1_000, 4_000)),
            (http(500, Some(false), None), 4, 5, Fail),
            // Retry-After is honoured, clamped to [1 s, 24 h].
            (
                http(500, Some(false), Some(30)),
                0,
                5,
                RetryIn(30_000, 30_000),
            ),
            (http(503, None, Some(0)), 0, 5, RetryIn(1_000, 1_000)),
            (
                http(503, None, Some(200_000)),
                0,
                5,
                RetryIn(86_400_000, 86_400_000),
            ),
            (transport(), 0, 5, RetryIn(1_000, 2_000)),
            (transport(), 4, 5, Fail),
            // Backoff stops growing at the cap.
            (transport(), 30, 100, RetryIn(1_000, 3_600_000)),
            (
                transport(),
                u32::MAX - 2,
                u32::MAX,
                RetryIn(1_000, 3_600_000),
            ),
        ];
        let now = Millis(1_000_000);
        let mut rng = StdRng::seed_from_u64(7);
        for (result, attempt, max, want) in cases {
            let label = format!("{result:?} attempt {attempt}/{max}");
            let got = decide(result, attempt, max, now, &mut rng);
            match (&want, &got) {
                (Done, Outcome::Completed) | (Fail, Outcome::Failed { .. }) => {}
                (RetryIn(lo, hi), Outcome::Retry { at }) => {
                    let wait = at.0 - now.0;
                    assert!((*lo..=*hi).contains(&wait), "{label}: waited {wait} ms");
                }
                _ => panic!("{label}: want {want:?}, got {got:?}"),
            }
        }
    }

    #[test]
    fn backoff_is_jittered_and_grows() {
        let policy = RetryPolicy::default();
        let mut rng = StdRng::seed_from_u64(1);
        let waits: Vec<u128> = (0..200)
            .map(|_| policy.backoff(10, &mut rng).as_millis())
            .collect();
        assert!(waits.iter().all(|w| (1_000..=2_048_000).contains(w)));
        let distinct: std::collections::HashSet<_> = waits.iter().collect();
        assert!(distinct.len() > 100, "full jitter spreads the waits");
        let mean = waits.iter().sum::<u128>() / waits.len() as u128;
        assert!(
            mean > 500_000,
            "attempt 10 waits minutes on average, not seconds"
        );
    }
}
