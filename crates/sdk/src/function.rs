//! Defining functions: id, triggers, retries, flow control, the handler.

use crate::error::{Error, Result};
use crate::event::{Event, FunctionFailed};
use crate::flow::{
    Batch, Cancel, Concurrency, Debounce, Priority, RateLimit, Singleton, Throttle, Timeouts,
    Trigger,
};
use crate::step::Step;
use futures::future::BoxFuture;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::fmt;
use std::future::Future;
use std::sync::Arc;

/// The event that triggers `on_failure` handlers.
///
/// ```
/// assert_eq!(sluice_sdk::function::FUNCTION_FAILED_EVENT, "inngest/function.failed");
/// ```
pub const FUNCTION_FAILED_EVENT: &str = "inngest/function.failed";
/// Retries registered for an `on_failure` function (as the TS SDK does).
const FAILURE_RETRIES: u32 = 1;
/// Retries the server applies when a function sets none.
pub(crate) const DEFAULT_RETRIES: u32 = 4;

/// What a handler receives besides [`Step`]: the triggering event(s) and the run.
///
/// ```
/// # use sluice_sdk::{Input, Step};
/// async fn handler(input: Input<serde_json::Value>, _step: Step) -> sluice_sdk::Result<usize> {
///     println!("run {} attempt {}", input.run_id, input.attempt);
///     Ok(input.events.len()) // more than one for batched functions
/// }
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Input<T = Value> {
    /// The triggering event (the first of `events`).
    pub event: Event<T>,
    /// All the events of this run (one, unless the function batches).
    pub events: Vec<Event<T>>,
    /// The run's id.
    pub run_id: String,
    /// The 0-based attempt of the current step.
    pub attempt: u32,
}

/// The untyped input the serve layer hands to a handler.
pub(crate) struct RawInput {
    pub event: Value,
    pub events: Vec<Value>,
    pub run_id: String,
    pub attempt: u32,
}

type Handler = Arc<dyn Fn(RawInput, Step) -> BoxFuture<'static, Result<Value>> + Send + Sync>;

fn erase<T, R, F, Fut>(f: F) -> Handler
where
    T: DeserializeOwned + Send + 'static,
    R: Serialize,
    F: Fn(Input<T>, Step) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<R>> + Send + 'static,
{
    let f = Arc::new(f);
    Arc::new(move |raw: RawInput, step: Step| {
        let f = Arc::clone(&f);
        Box::pin(async move {
            let input = typed_input::<T>(raw)?;
            let output = f(input, step).await?;
            Ok(serde_json::to_value(output)?)
        })
    })
}

fn typed_input<T: DeserializeOwned>(raw: RawInput) -> Result<Input<T>> {
    let decode = |v: Value| {
        serde_json::from_value::<Event<T>>(v).map_err(|e| {
            Error::non_retriable(format!("the event does not match the handler's type: {e}"))
        })
    };
    let events = raw
        .events
        .into_iter()
        .map(decode)
        .collect::<Result<Vec<_>>>()?;
    Ok(Input {
        event: decode(raw.event)?,
        events,
        run_id: raw.run_id,
        attempt: raw.attempt,
    })
}

/// Builds a [`Function`]: set the options, then give the handler.
///
/// ```
/// use sluice_sdk::flow::{Cancel, Concurrency};
/// use sluice_sdk::{Function, Input, Step, Trigger};
/// use std::time::Duration;
///
/// let welcome = Function::new("send-welcome")
///     .name("Send welcome email")
///     .trigger(Trigger::event("user/signup"))
///     .retries(3)
///     .concurrency(Concurrency::new(5).key("event.data.account_id"))
///     .cancel_on(Cancel::new("user/deleted").condition("async.data.id == event.data.id"))
///     .handler(|input: Input, step: Step| async move {
///         let sent: String = step.run("send", || async { Ok("ok".to_owned()) }).await?;
///         Ok(sent)
///     });
/// assert_eq!(welcome.id(), "send-welcome");
/// ```
#[derive(Clone)]
#[must_use = "a builder does nothing until `.handler(...)` is called"]
pub struct FunctionBuilder {
    options: Options,
    on_failure: Option<Handler>,
}

/// The registered options of a function.
#[derive(Debug, Clone, Default)]
struct Options {
    id: String,
    name: Option<String>,
    triggers: Vec<Trigger>,
    retries: Option<u32>,
    concurrency: Vec<Concurrency>,
    throttle: Option<Throttle>,
    rate_limit: Option<RateLimit>,
    debounce: Option<Debounce>,
    batch: Option<Batch>,
    priority: Option<Priority>,
    idempotency: Option<String>,
    cancel: Vec<Cancel>,
    timeouts: Option<Timeouts>,
    singleton: Option<Singleton>,
}

impl fmt::Debug for FunctionBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FunctionBuilder")
            .field("options", &self.options)
            .field("on_failure", &self.on_failure.is_some())
            .finish()
    }
}

impl FunctionBuilder {
    /// The display name (defaults to the id).
    ///
    /// ```
    /// let f = sluice_sdk::Function::new("a").name("Nice name");
    /// ```
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.options.name = Some(name.into());
        self
    }

    /// Adds a trigger; a function may have several.
    ///
    /// ```
    /// use sluice_sdk::{Function, Trigger};
    /// let f = Function::new("a").trigger(Trigger::cron("0 * * * *")).trigger(Trigger::event("a/now"));
    /// ```
    pub fn trigger(mut self, trigger: Trigger) -> Self {
        self.options.triggers.push(trigger);
        self
    }

    /// How many times a failing step is retried (0–20; the server's default is 4).
    ///
    /// ```
    /// let f = sluice_sdk::Function::new("a").retries(0);
    /// ```
    pub fn retries(mut self, retries: u32) -> Self {
        self.options.retries = Some(retries);
        self
    }

    /// Adds a concurrency limit (at most two per function).
    ///
    /// ```
    /// let f = sluice_sdk::Function::new("a").concurrency(sluice_sdk::flow::Concurrency::new(2));
    /// ```
    pub fn concurrency(mut self, limit: Concurrency) -> Self {
        self.options.concurrency.push(limit);
        self
    }

    /// Throttles run starts.
    ///
    /// ```
    /// use std::time::Duration;
    /// let f = sluice_sdk::Function::new("a").throttle(sluice_sdk::flow::Throttle::new(5, Duration::from_secs(60)));
    /// ```
    pub fn throttle(mut self, throttle: Throttle) -> Self {
        self.options.throttle = Some(throttle);
        self
    }

    /// Rate-limits run starts (extra events are dropped).
    ///
    /// ```
    /// use std::time::Duration;
    /// let f = sluice_sdk::Function::new("a").rate_limit(sluice_sdk::flow::RateLimit::new(1, Duration::from_secs(60)));
    /// ```
    pub fn rate_limit(mut self, limit: RateLimit) -> Self {
        self.options.rate_limit = Some(limit);
        self
    }

    /// Debounces the trigger events.
    ///
    /// ```
    /// use std::time::Duration;
    /// let f = sluice_sdk::Function::new("a").debounce(sluice_sdk::flow::Debounce::new(Duration::from_secs(5)));
    /// ```
    pub fn debounce(mut self, debounce: Debounce) -> Self {
        self.options.debounce = Some(debounce);
        self
    }

    /// Runs once per batch of events.
    ///
    /// ```
    /// use std::time::Duration;
    /// let f = sluice_sdk::Function::new("a").batch(sluice_sdk::flow::Batch::new(10, Duration::from_secs(5)));
    /// ```
    pub fn batch(mut self, batch: Batch) -> Self {
        self.options.batch = Some(batch);
        self
    }

    /// Orders runs by priority.
    ///
    /// ```
    /// let f = sluice_sdk::Function::new("a").priority(sluice_sdk::flow::Priority::new("event.data.vip ? 120 : 0"));
    /// ```
    pub fn priority(mut self, priority: Priority) -> Self {
        self.options.priority = Some(priority);
        self
    }

    /// One run per value of this expression per 24 h.
    ///
    /// ```
    /// let f = sluice_sdk::Function::new("a").idempotency("event.data.order_id");
    /// ```
    pub fn idempotency(mut self, expr: impl Into<String>) -> Self {
        self.options.idempotency = Some(expr.into());
        self
    }

    /// Adds an event that cancels running runs.
    ///
    /// ```
    /// let f = sluice_sdk::Function::new("a").cancel_on(sluice_sdk::flow::Cancel::new("a/stop"));
    /// ```
    pub fn cancel_on(mut self, cancel: Cancel) -> Self {
        self.options.cancel.push(cancel);
        self
    }

    /// Start and finish timeouts.
    ///
    /// ```
    /// use std::time::Duration;
    /// let f = sluice_sdk::Function::new("a")
    ///     .timeouts(sluice_sdk::flow::Timeouts::default().finish(Duration::from_secs(300)));
    /// ```
    pub fn timeouts(mut self, timeouts: Timeouts) -> Self {
        self.options.timeouts = Some(timeouts);
        self
    }

    /// At most one run at a time.
    ///
    /// ```
    /// use sluice_sdk::flow::{Singleton, SingletonMode};
    /// let f = sluice_sdk::Function::new("a").singleton(Singleton::new(SingletonMode::Skip));
    /// ```
    pub fn singleton(mut self, singleton: Singleton) -> Self {
        self.options.singleton = Some(singleton);
        self
    }

    /// Runs `handler` after a run of this function failed for good. It is registered
    /// as the extra function `<app>-<id>-failure`, triggered by
    /// `inngest/function.failed` for this function.
    ///
    /// ```
    /// use sluice_sdk::{Function, FunctionFailed, Input, Step};
    /// let f = Function::new("charge")
    ///     .on_failure(|input: Input<FunctionFailed>, _step: Step| async move {
    ///         eprintln!("charge failed: {}", input.event.data.error.message);
    ///         Ok(())
    ///     })
    ///     .handler(|_input: Input, _step: Step| async move { Ok(()) });
    /// ```
    pub fn on_failure<R, F, Fut>(mut self, handler: F) -> Self
    where
        R: Serialize,
        F: Fn(Input<FunctionFailed>, Step) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R>> + Send + 'static,
    {
        self.on_failure = Some(erase(handler));
        self
    }

    /// Sets the handler and finishes the function. The handler's event type `T` is
    /// decoded from each event (use [`serde_json::Value`] for untyped data); its
    /// output is serialised as the run's result.
    ///
    /// ```
    /// use serde::Deserialize;
    /// use sluice_sdk::{Function, Input, Step, Trigger};
    ///
    /// #[derive(Deserialize)]
    /// struct Signup { email: String }
    ///
    /// let f = Function::new("greet")
    ///     .trigger(Trigger::event("user/signup"))
    ///     .handler(|input: Input<Signup>, _step: Step| async move {
    ///         Ok(format!("hello {}", input.event.data.email))
    ///     });
    /// ```
    pub fn handler<T, R, F, Fut>(self, handler: F) -> Function
    where
        T: DeserializeOwned + Send + 'static,
        R: Serialize,
        F: Fn(Input<T>, Step) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R>> + Send + 'static,
    {
        Function {
            options: Arc::new(self.options),
            handler: erase(handler),
            on_failure: self.on_failure,
        }
    }
}

/// A function: its options and handler. Add it to an [`App`](crate::App).
///
/// ```
/// use sluice_sdk::{Function, Input, Step, Trigger};
/// let f = Function::new("hello")
///     .trigger(Trigger::event("demo/hello"))
///     .handler(|_input: Input, _step: Step| async move { Ok("hi") });
/// assert_eq!(f.id(), "hello");
/// ```
#[derive(Clone)]
pub struct Function {
    options: Arc<Options>,
    handler: Handler,
    on_failure: Option<Handler>,
}

impl fmt::Debug for Function {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Function")
            .field("options", &self.options)
            .field("on_failure", &self.on_failure.is_some())
            .finish_non_exhaustive()
    }
}

/// One registered function: a handler under a composite id.
#[derive(Clone)]
pub(crate) struct Registered {
    pub composite_id: String,
    pub retries: u32,
    pub handler: Handler,
    pub config: Value,
}

impl Function {
    /// Starts a function with this id (unique within the app; the server knows it
    /// as `<app id>-<id>`).
    ///
    /// ```
    /// let builder = sluice_sdk::Function::new("nightly-report");
    /// ```
    // A function is not complete without its handler, so `new` starts the builder
    // that `.handler(…)` finishes.
    #[allow(clippy::new_ret_no_self)]
    pub fn new(id: impl Into<String>) -> FunctionBuilder {
        FunctionBuilder {
            options: Options {
                id: id.into(),
                ..Options::default()
            },
            on_failure: None,
        }
    }

    /// The function's id within its app.
    ///
    /// ```
    /// # use sluice_sdk::{Function, Input, Step};
    /// let f = Function::new("x").handler(|_: Input, _: Step| async { Ok(()) });
    /// assert_eq!(f.id(), "x");
    /// ```
    pub fn id(&self) -> &str {
        &self.options.id
    }

    /// The handlers to serve and configurations to register: the function itself and,
    /// with `on_failure`, its `-failure` companion.
    pub(crate) fn registered(&self, app_id: &str, serve_url: &str) -> Vec<Registered> {
        let o = &self.options;
        let composite = format!("{app_id}-{}", o.id);
        let name = o.name.clone().unwrap_or_else(|| o.id.clone());
        let mut config = json!({
            "id": composite,
            "name": name,
            "triggers": o.triggers,
            "steps": steps(serve_url, &composite, o.retries),
        });
        let map = config.as_object_mut().expect("built as an object");
        let mut put = |key: &str, value: Value| {
            if !value.is_null() {
                map.insert(key.to_owned(), value);
            }
        };
        let to = |v: &dyn erased::Ser| v.to_value();
        if !o.concurrency.is_empty() {
            put("concurrency", to(&o.concurrency));
        }
        put("throttle", to(&o.throttle));
        put("rateLimit", to(&o.rate_limit));
        put("debounce", to(&o.debounce));
        put("batchEvents", to(&o.batch));
        put("priority", to(&o.priority));
        put("idempotency", to(&o.idempotency));
        if !o.cancel.is_empty() {
            put("cancel", to(&o.cancel));
        }
        put("timeouts", to(&o.timeouts));
        put("singleton", to(&o.singleton));

        let mut out = vec![Registered {
            composite_id: composite.clone(),
            retries: o.retries.unwrap_or(DEFAULT_RETRIES),
            handler: Arc::clone(&self.handler),
            config,
        }];
        if let Some(handler) = &self.on_failure {
            let failure_id = format!("{composite}-failure");
            out.push(Registered {
                composite_id: failure_id.clone(),
                retries: FAILURE_RETRIES,
                handler: Arc::clone(handler),
                config: json!({
                    "id": failure_id,
                    "name": format!("{name} (failure)"),
                    "triggers": [Trigger::event(FUNCTION_FAILED_EVENT)
                        .expression(format!("event.data.function_id == '{composite}'"))],
                    "steps": steps(serve_url, &failure_id, Some(FAILURE_RETRIES)),
                }),
            });
        }
        out
    }
}

fn steps(serve_url: &str, composite: &str, retries: Option<u32>) -> Value {
    let url = match reqwest::Url::parse(serve_url) {
        Ok(mut url) => {
            url.query_pairs_mut()
                .append_pair("fnId", composite)
                .append_pair("stepId", "step");
            url.to_string()
        }
        Err(_) => format!("{serve_url}?fnId={composite}&stepId=step"),
    };
    let mut step = json!({"id": "step", "name": "step", "runtime": {"type": "http", "url": url}});
    if let Some(attempts) = retries {
        step["retries"] = json!({ "attempts": attempts });
    }
    json!({ "step": step })
}

/// Serialising options of different types through one closure.
mod erased {
    use serde::Serialize;
    use serde_json::Value;

    pub(super) trait Ser {
        fn to_value(&self) -> Value;
    }

    impl<T: Serialize> Ser for T {
        fn to_value(&self) -> Value {
            serde_json::to_value(self).unwrap_or(Value::Null)
        }
    }
}
