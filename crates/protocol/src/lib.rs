//! The Inngest-compatible SDK wire protocol, free of I/O.
//!
//! Everything a server (or an SDK) needs to speak to the official TypeScript and
//! Python SDKs: the shapes of the bodies they exchange, how step ids are hashed,
//! how bodies are made canonical and signed, and how time strings are read.
//!
//! # Layout
//! - [`register`]: the `POST /fn/register` body ([`RegisterRequest`], [`FunctionConfig`])
//!   and [`normalize_app_url`].
//! - [`call`]: the server → SDK call request ([`CallRequest`]), serialised canonically.
//! - [`op`]: the SDK's reply: [`Opcode`], [`Op`], and readers for sleep, wait and invoke ops.
//! - [`hash`]: [`step_id_hash`], the SHA-1 step ids.
//! - [`canonical`]: RFC 8785 (JCS) canonical JSON, [`to_canonical_vec`].
//! - [`signing`]: [`SigningKey`], HMAC request signatures and the Bearer key hash.
//! - [`duration`]: Inngest time strings (`"1m"`, `"2h30m10s"`, `"1w"`).
//! - [`event`]: the events API: seeded event ULIDs and `Retry-After`.

pub mod call;
pub mod canonical;
pub mod duration;
pub mod event;
pub mod hash;
pub mod op;
pub mod register;
pub mod signing;

pub use call::CallRequest;
pub use canonical::to_canonical_vec;
pub use duration::parse_duration;
pub use hash::step_id_hash;
pub use op::{Op, Opcode};
pub use register::{FunctionConfig, RegisterRequest, normalize_app_url};
pub use signing::SigningKey;

/// A protocol error: a body that does not parse, or a value one of the modules rejects.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A body is not the JSON expected.
    #[error("invalid json body: {0}")]
    Json(#[from] serde_json::Error),
    /// A time string.
    #[error(transparent)]
    Duration(#[from] duration::Error),
    /// A signature or a signing key.
    #[error(transparent)]
    Signing(#[from] signing::Error),
    /// An event id seed.
    #[error(transparent)]
    Event(#[from] event::Error),
    /// An op that lacks what its opcode needs.
    #[error(transparent)]
    Op(#[from] op::Error),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
