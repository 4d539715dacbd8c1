//! What a function or a step returns when it does not succeed.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// `Result` with the SDK's [`Error`].
///
/// ```
/// fn parse(raw: &str) -> sluice_sdk::Result<u32> {
///     Ok(raw.parse::<u32>()?) // any std error converts with `?`
/// }
/// assert!(parse("7").is_ok());
/// ```
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a function or a step did not return a value.
///
/// Any `std::error::Error + Send + Sync` converts into [`Error::Retriable`] with `?`, so
/// library errors (I/O, HTTP, serde) are retried by default. The other variants say how
/// a failure should be treated:
///
/// - [`Error::Interrupt`] is control flow, not a failure: a step that was not run
///   before returns it so the SDK can report the step to the server. **Always pass it
///   up with `?`.** If a function swallows one and returns anyway, the SDK still
///   reports the step and logs an error.
/// - [`Error::StepFailed`]: a step failed for good (all attempts used, or
///   non-retriable). Match on it to recover; pass it up to fail the run.
/// - [`Error::NonRetriable`]: fail now, never retry.
/// - [`Error::RetryAfter`]: retry, but not before the given delay.
///
/// ```
/// use sluice_sdk::Error;
/// use std::time::Duration;
///
/// let fatal = Error::non_retriable("user 42 does not exist");
/// let later = Error::retry_after(Duration::from_secs(30), "rate limited by the mail API");
/// assert!(!fatal.is_retriable());
/// assert!(later.is_retriable());
/// ```
#[non_exhaustive]
pub enum Error {
    /// A new step was reached; the run stops here and resumes once the server has
    /// run it. Propagate it with `?`.
    Interrupt(Interrupt),
    /// A step failed for good; the failure the server stored for it.
    StepFailed(StepFailure),
    /// A failure that retrying cannot fix.
    NonRetriable {
        /// What went wrong.
        message: String,
    },
    /// A failure worth retrying after `after`.
    RetryAfter {
        /// What went wrong.
        message: String,
        /// How long to wait before the next attempt.
        after: Duration,
    },
    /// A failure worth retrying with the server's backoff.
    Retriable {
        /// What went wrong (the error and its sources, joined with `: `).
        message: String,
    },
}

impl Error {
    /// A failure that is never retried.
    ///
    /// ```
    /// let e = sluice_sdk::Error::non_retriable("bad input");
    /// assert_eq!(e.to_string(), "bad input");
    /// ```
    pub fn non_retriable(message: impl Into<String>) -> Self {
        Self::NonRetriable {
            message: message.into(),
        }
    }

    /// A failure retried no sooner than `after` (sent as `Retry-After`, whole seconds).
    ///
    /// ```
    /// use std::time::Duration;
    /// let e = sluice_sdk::Error::retry_after(Duration::from_secs(60), "busy");
    /// assert!(e.is_retriable());
    /// ```
    pub fn retry_after(after: Duration, message: impl Into<String>) -> Self {
        Self::RetryAfter {
            message: message.into(),
            after,
        }
    }

    /// A failure retried with the server's backoff.
    ///
    /// ```
    /// let e = sluice_sdk::Error::retriable("mail server unreachable");
    /// assert!(e.is_retriable());
    /// ```
    pub fn retriable(message: impl Into<String>) -> Self {
        Self::Retriable {
            message: message.into(),
        }
    }

    /// A retriable failure from any boxed error (e.g. an `anyhow::Error`), keeping
    /// its chain of sources in the message.
    ///
    /// ```
    /// let boxed: Box<dyn std::error::Error + Send + Sync> = "timed out".into();
    /// assert_eq!(sluice_sdk::Error::other(boxed).to_string(), "timed out");
    /// ```
    pub fn other(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        let error = error.into();
        Self::Retriable {
            message: chain(error.as_ref()),
        }
    }

    /// Whether this is the step interrupt (control flow, not a failure).
    ///
    /// ```
    /// assert!(!sluice_sdk::Error::retriable("x").is_interrupt());
    /// ```
    pub fn is_interrupt(&self) -> bool {
        matches!(self, Self::Interrupt(_))
    }

    /// Whether the server may try again after this error.
    ///
    /// ```
    /// assert!(!sluice_sdk::Error::non_retriable("x").is_retriable());
    /// ```
    pub fn is_retriable(&self) -> bool {
        matches!(self, Self::Retriable { .. } | Self::RetryAfter { .. })
    }

    /// The error as the wire's `{name, message, stack}`, named like the TS SDK's classes.
    pub(crate) fn to_body(&self) -> ErrorBody {
        let name = match self {
            Self::NonRetriable { .. } => "NonRetriableError",
            Self::RetryAfter { .. } => "RetryAfterError",
            Self::StepFailed(failure) => return failure.0.clone(),
            _ => "Error",
        };
        ErrorBody {
            name: name.to_owned(),
            message: self.to_string(),
            stack: None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Interrupt(_) => {
                f.write_str("step interrupt: a new step was reached; propagate this error with `?`")
            }
            Self::StepFailed(failure) => fmt::Display::fmt(failure, f),
            Self::NonRetriable { message }
            | Self::RetryAfter { message, .. }
            | Self::Retriable { message } => f.write_str(message),
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Interrupt(i) => f.debug_tuple("Interrupt").field(i).finish(),
            Self::StepFailed(s) => f.debug_tuple("StepFailed").field(s).finish(),
            Self::NonRetriable { message } => f
                .debug_struct("NonRetriable")
                .field("message", message)
                .finish(),
            Self::RetryAfter { message, after } => f
                .debug_struct("RetryAfter")
                .field("message", message)
                .field("after", after)
                .finish(),
            Self::Retriable { message } => f
                .debug_struct("Retriable")
                .field("message", message)
                .finish(),
        }
    }
}

// `Error` deliberately does not implement `std::error::Error`, so that every type that
// does can convert into it with `?` (the same trade-off `anyhow` makes).
impl<E> From<E> for Error
where
    E: std::error::Error + Send + Sync + 'static,
{
    fn from(error: E) -> Self {
        Self::Retriable {
            message: chain(&error),
        }
    }
}

fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    message
}

/// The step interrupt: proof that a new step was reached and reported.
///
/// It carries nothing and cannot be built outside the SDK. Functions get it inside
/// [`Error::Interrupt`] and must return it (`?` does that).
///
/// ```
/// use sluice_sdk::Error;
/// fn passes_it_up(result: sluice_sdk::Result<u32>) -> sluice_sdk::Result<u32> {
///     match result {
///         Err(Error::StepFailed(failure)) => Ok(failure.message().len() as u32),
///         other => other, // includes Err(Error::Interrupt(_))
///     }
/// }
/// # assert!(passes_it_up(Ok(1)).is_ok());
/// ```
pub struct Interrupt(pub(crate) ());

impl fmt::Debug for Interrupt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Interrupt")
    }
}

/// A step's final failure, as the server stored it (`{"error": {name, message, stack}}`).
///
/// ```
/// # async fn demo(step: sluice_sdk::Step) -> sluice_sdk::Result<()> {
/// use sluice_sdk::Error;
/// match step.run("charge", || async { Ok::<_, Error>(42) }).await {
///     Ok(n) => println!("charged {n}"),
///     Err(Error::StepFailed(failure)) => println!("{}: {}", failure.name(), failure.message()),
///     Err(e) => return Err(e),
/// }
/// # Ok(()) }
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct StepFailure(pub(crate) ErrorBody);

impl StepFailure {
    /// The error's name, e.g. `"Error"` or `"NonRetriableError"`.
    ///
    /// ```
    /// # fn f(failure: &sluice_sdk::StepFailure) { let _ = failure.name(); }
    /// ```
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// The error's message.
    ///
    /// ```
    /// # fn f(failure: &sluice_sdk::StepFailure) { let _ = failure.message(); }
    /// ```
    pub fn message(&self) -> &str {
        &self.0.message
    }

    /// The stack trace, when the SDK that ran the step sent one.
    ///
    /// ```
    /// # fn f(failure: &sluice_sdk::StepFailure) { let _ = failure.stack(); }
    /// ```
    pub fn stack(&self) -> Option<&str> {
        self.0.stack.as_deref()
    }
}

impl fmt::Display for StepFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.0.name, self.0.message)
    }
}

impl fmt::Debug for StepFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StepFailure")
            .field("name", &self.0.name)
            .field("message", &self.0.message)
            .finish_non_exhaustive()
    }
}

/// The wire form of an error: `{name, message, stack}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ErrorBody {
    #[serde(default = "error_name")]
    pub name: String,
    #[serde(default)]
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stack: Option<String>,
}

fn error_name() -> String {
    "Error".to_owned()
}
