//! [`ExecutorOptions`]: how the executor calls SDKs.

use sluice_core::RetryPolicy;
use sluice_protocol::SigningKey;
use std::time::Duration;

/// Whether calls are signed and SDK replies and requests authenticated.
pub use sluice_core::Mode;

/// Size and count limits on a run. Breaking one fails the run with a clear error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest serialised output of one step (or of the function).
    pub max_step_output: usize,
    /// Largest serialised run state (events plus saved steps).
    pub max_run_state: usize,
    /// Most saved steps in one run.
    pub max_steps: usize,
    /// Above this state size the call carries no events or steps and sets `use_api`,
    /// so the SDK fetches them from `/v0/runs/{id}/…`.
    pub use_api_above: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_step_output: 4 * 1024 * 1024,
            max_run_state: 32 * 1024 * 1024,
            max_steps: 1_000,
            use_api_above: 4 * 1024 * 1024,
        }
    }
}

/// How the executor calls function endpoints.
#[derive(Debug, Clone)]
pub struct ExecutorOptions {
    /// Dev (unsigned) or start (signed) mode.
    pub mode: Mode,
    /// `INNGEST_SIGNING_KEY`: signs call requests in [`Mode::Start`].
    pub signing_key: Option<SigningKey>,
    /// `INNGEST_SIGNING_KEY_FALLBACK`: also accepted when checking SDK signatures and
    /// Bearer tokens (key rotation).
    pub signing_key_fallback: Option<SigningKey>,
    /// Environment name sent as `ctx.env`.
    pub env: String,
    /// TCP connect timeout for calls.
    pub connect_timeout: Duration,
    /// Whole-call timeout: an SDK that has not answered by then is retried.
    pub request_timeout: Duration,
    /// Largest SDK reply body read.
    pub max_reply_bytes: usize,
    /// Backoff between attempts.
    pub retry: RetryPolicy,
    /// Size and count limits.
    pub limits: Limits,
    /// Send `ctx.fn_id`, which turns on TS v4 checkpointing (several steps per
    /// request, posted to `/v1/checkpoint/{run}/async`). The checkpoint must reach the
    /// node running the call; turn this off behind a load balancer spreading SDK
    /// requests over several nodes.
    pub checkpointing: bool,
    /// Most idle keep-alive connections kept per host.
    pub pool_idle_per_host: usize,
}

impl Default for ExecutorOptions {
    fn default() -> Self {
        Self {
            mode: Mode::Dev,
            signing_key: None,
            signing_key_fallback: None,
            env: "dev".to_owned(),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(120),
            max_reply_bytes: 16 * 1024 * 1024,
            retry: RetryPolicy::default(),
            limits: Limits::default(),
            checkpointing: true,
            pool_idle_per_host: 256,
        }
    }
}

impl ExecutorOptions {
    /// The keys SDK signatures and Bearer tokens are checked against, primary first.
    pub fn keys(&self) -> Vec<SigningKey> {
        self.signing_key
            .iter()
            .chain(self.signing_key_fallback.iter())
            .cloned()
            .collect()
    }

    /// Checks the options hang together.
    pub fn validate(&self) -> crate::Result<()> {
        if self.mode == Mode::Start && self.signing_key.is_none() {
            return Err(crate::Error::Options(
                "start mode needs a signing key; set --signing-key".into(),
            ));
        }
        Ok(())
    }
}
