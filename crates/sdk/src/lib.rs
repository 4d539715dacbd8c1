//! The Rust SDK for Sluice: durable functions made of steps, served over axum.
//!
//! It speaks the same wire protocol as the official Inngest SDKs, so it works with
//! Sluice (and any compatible server) exactly as a TypeScript or Python app does.
//!
//! # Guide
//!
//! A **function** runs when an event (or a cron schedule) triggers it. It is made of
//! **steps**: each `step.run` runs once, its result is stored by the server, and on
//! every later call of the function the stored result is returned instead of running
//! the step again. That makes a function durable: it survives crashes and deploys,
//! sleeps for days without holding a thread, and retries only the step that failed.
//!
//! ```no_run
//! use serde::Deserialize;
//! use sluice_sdk::{App, Client, Config, Error, Event, Function, Input, Step, Trigger, WaitForEvent};
//! use std::time::Duration;
//!
//! #[derive(Deserialize)]
//! struct Signup { user_id: u64, email: String }
//!
//! async fn onboarding(input: Input<Signup>, step: Step) -> sluice_sdk::Result<&'static str> {
//!     let user = input.event.data;
//!     // Runs once; a failure is retried with backoff.
//!     step.run("send-welcome", || async move {
//!         println!("mailing {}", user.email);
//!         Ok(())
//!     })
//!     .await?; // `?` passes the step interrupt up: always use it
//!     step.sleep("let-them-look-around", Duration::from_secs(3600)).await?;
//!     let activated: Option<Event> = step
//!         .wait_for_event(
//!             "activation",
//!             WaitForEvent::new("user/activated", Duration::from_secs(3 * 86_400))
//!                 .matching("data.user_id"),
//!         )
//!         .await?;
//!     Ok(if activated.is_some() { "active" } else { "nudged" })
//! }
//!
//! # async fn main_() -> std::io::Result<()> {
//! // Reads INNGEST_DEV / SLUICE_DEV, INNGEST_BASE_URL, INNGEST_SIGNING_KEY, …
//! let client = Client::new(Config::from_env("shop"));
//! let app = App::new(client.clone()).function(
//!     Function::new("onboarding")
//!         .trigger(Trigger::event("user/signup"))
//!         .retries(3)
//!         .handler(onboarding),
//! );
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! axum::serve(listener, app.router()).await // then sync: PUT http://127.0.0.1:3000/api/inngest
//! # }
//! ```
//!
//! **How steps work.** Each call replays the function from the top. When it reaches a
//! step that has not run yet, the step returns [`Error::Interrupt`] (after running,
//! for `step.run`); the function passes it up with `?` and the SDK reports the step
//! to the server, which calls again when it is done. So:
//! - keep code outside steps deterministic and cheap (it runs on every call);
//! - never swallow a step's error: match only [`Error::StepFailed`] and pass the rest
//!   up. A function that returns after swallowing an interrupt is detected: its steps
//!   are reported anyway and an error is logged.
//! - give each step a stable, unique id; repeats of one id (loops) are numbered.
//!
//! **Errors.** A step that returns an error is retried ([`Error::RetryAfter`] sets the
//! delay) until its attempts run out; [`Error::NonRetriable`] stops at once. Then the
//! step fails for good and the function sees [`Error::StepFailed`] and may recover.
//!
//! **Parallel steps.** [`Step::join`], [`Step::join_all`] and [`Step::parallel`] report
//! every new step of the group as planned; the server runs each on its own call.
//!
//! **Modes.** In dev mode (`SLUICE_DEV=1` or `INNGEST_DEV=1`) requests are not
//! verified. In cloud mode every call must be signed with `INNGEST_SIGNING_KEY` (or
//! `INNGEST_SIGNING_KEY_FALLBACK`), and responses are signed back.
//!
//! # Layout
//! - [`config`]: [`Config`] (from the official environment variables) and [`Mode`].
//! - [`client`]: [`Client`], sending events ([`SendResult`]).
//! - [`event`]: [`Event<T>`] and [`FunctionFailed`], the `on_failure` payload.
//! - [`function`]: [`Function`] / [`FunctionBuilder`], [`Input<T>`].
//! - [`flow`]: triggers and flow control ([`Trigger`], concurrency, throttle, …).
//! - [`step`]: [`Step`] (run, sleep, wait, invoke, send, parallel), [`WaitForEvent`], [`Invoke`].
//! - [`error`]: [`Error`], [`StepFailure`], [`Interrupt`].
//! - [`serve`]: [`App`] and its axum router.

mod call;
pub mod client;
pub mod config;
pub mod error;
pub mod event;
pub mod flow;
pub mod function;
mod op;
pub mod serve;
pub mod step;

pub use client::{Client, SendResult};
pub use config::{Config, Mode};
pub use error::{Error, Interrupt, Result, StepFailure};
pub use event::{Event, FailureError, FunctionFailed};
pub use flow::Trigger;
pub use function::{Function, FunctionBuilder, Input};
pub use serve::App;
pub use step::{Invoke, Step, WaitForEvent};
