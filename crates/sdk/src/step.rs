//! Steps: the durable units a function is made of.
//!
//! Each call is replayed from the top. A step that already ran returns its stored
//! result; the first step that has not returns [`Error::Interrupt`] after it is
//! recorded (and, for `run`, executed when the server allows), and the function must
//! pass that error up with `?`. The SDK then reports the step to the server, which
//! calls the function again once the step is done.

use crate::call::Memo;
use crate::client::{Client, SendResult};
use crate::error::{Error, Interrupt, Result, StepFailure};
use crate::event::Event;
use crate::op::{Op, Opcode, Userland};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};
use sluice_protocol::duration::format_duration;
use sluice_protocol::step_id_hash;
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// Waits for an event, for [`Step::wait_for_event`].
///
/// ```
/// use sluice_sdk::WaitForEvent;
/// use std::time::Duration;
/// let wait = WaitForEvent::new("user/activated", Duration::from_secs(24 * 3600))
///     .condition("async.data.user_id == event.data.user_id");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitForEvent {
    event: String,
    condition: Option<String>,
    timeout: Duration,
}

impl WaitForEvent {
    /// Waits at most `timeout` for an event named `event`.
    ///
    /// ```
    /// let wait = sluice_sdk::WaitForEvent::new("order/paid", std::time::Duration::from_secs(60));
    /// ```
    pub fn new(event: impl Into<String>, timeout: Duration) -> Self {
        Self {
            event: event.into(),
            condition: None,
            timeout,
        }
    }

    /// Only matches events for which this CEL expression is true; `event` is the
    /// run's trigger event and `async` the candidate.
    ///
    /// ```
    /// let wait = sluice_sdk::WaitForEvent::new("order/paid", std::time::Duration::from_secs(60))
    ///     .condition("async.data.order == event.data.order");
    /// ```
    pub fn condition(mut self, expr: impl Into<String>) -> Self {
        self.condition = Some(expr.into());
        self
    }

    /// Only matches events whose `field` (e.g. `"data.user_id"`) equals the trigger
    /// event's.
    ///
    /// ```
    /// let wait = sluice_sdk::WaitForEvent::new("order/paid", std::time::Duration::from_secs(60))
    ///     .matching("data.order");
    /// ```
    pub fn matching(self, field: &str) -> Self {
        self.condition(format!("event.{field} == async.{field}"))
    }
}

/// Which function to call, for [`Step::invoke`].
///
/// ```
/// use serde_json::json;
/// use sluice_sdk::Invoke;
/// use std::time::Duration;
/// let same_app = Invoke::function("render-invoice").data(json!({"order": 9}));
/// let other_app = Invoke::app_function("billing", "charge").timeout(Duration::from_secs(600));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Invoke {
    app_id: Option<String>,
    function_id: String,
    data: Value,
    timeout: Option<Duration>,
}

impl Invoke {
    /// A function of this app, by its id.
    ///
    /// ```
    /// let call = sluice_sdk::Invoke::function("render-invoice");
    /// ```
    pub fn function(id: impl Into<String>) -> Self {
        Self {
            app_id: None,
            function_id: id.into(),
            data: json!({}),
            timeout: None,
        }
    }

    /// A function of another app.
    ///
    /// ```
    /// let call = sluice_sdk::Invoke::app_function("billing", "charge");
    /// ```
    pub fn app_function(app_id: impl Into<String>, id: impl Into<String>) -> Self {
        Self {
            app_id: Some(app_id.into()),
            ..Self::function(id)
        }
    }

    /// The `data` of the event the invoked function receives.
    ///
    /// ```
    /// let call = sluice_sdk::Invoke::function("f").data(serde_json::json!({"n": 1}));
    /// ```
    pub fn data(mut self, data: Value) -> Self {
        self.data = data;
        self
    }

    /// Fails the step if the function has not finished after this long.
    ///
    /// ```
    /// let call = sluice_sdk::Invoke::function("f").timeout(std::time::Duration::from_secs(60));
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
}

/// What happens to a new `run` step.
enum Decision {
    /// Run it now and report its outcome.
    Execute,
    /// Report it as planned; the server calls back to run it.
    Plan,
    /// Another step is targeted: report nothing.
    Skip,
}

/// The per-call state the step tools share.
pub(crate) struct RunState {
    app_id: String,
    memos: HashMap<String, Memo>,
    target: Option<String>,
    immediate: bool,
    attempt: u32,
    max_attempts: u32,
    seen: HashMap<String, u32>,
    pub(crate) ops: Vec<Op>,
    pub(crate) interrupted: bool,
    pub(crate) retry_after: Option<Duration>,
    parallel_depth: usize,
}

/// How a call is set up.
pub(crate) struct RunParams {
    pub app_id: String,
    pub memos: HashMap<String, Memo>,
    /// The hashed id of the step the server asks to run, `None` for discovery.
    pub target: Option<String>,
    pub immediate: bool,
    pub attempt: u32,
    pub max_attempts: u32,
}

/// The step tools, handed to every handler. Cheap to clone.
///
/// ```
/// # async fn demo(step: sluice_sdk::Step) -> sluice_sdk::Result<()> {
/// use std::time::Duration;
/// let user: u64 = step.run("create-user", || async { Ok(42) }).await?;
/// step.sleep("cool-down", Duration::from_secs(60)).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Step {
    state: Arc<Mutex<RunState>>,
    client: Client,
}

impl fmt::Debug for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Step").finish_non_exhaustive()
    }
}

fn interrupt() -> Error {
    Error::Interrupt(Interrupt(()))
}

fn decode<T: DeserializeOwned>(value: Value) -> Result<T> {
    serde_json::from_value(value).map_err(|e| {
        Error::non_retriable(format!(
            "a stored step result does not match the step's type: {e}"
        ))
    })
}

impl Step {
    pub(crate) fn new(params: RunParams, client: Client) -> Self {
        Self {
            state: Arc::new(Mutex::new(RunState {
                app_id: params.app_id,
                memos: params.memos,
                target: params.target,
                immediate: params.immediate,
                attempt: params.attempt,
                max_attempts: params.max_attempts.max(1),
                seen: HashMap::new(),
                ops: Vec::new(),
                interrupted: false,
                retry_after: None,
                parallel_depth: 0,
            })),
            client,
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, RunState> {
        // A panic while locked leaves only plain data behind; keep using it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Hashes the user id (`id`, then `id:1`, `id:2`, … on repeats) and takes the
    /// stored result, if any.
    fn claim(&self, id: &str) -> (String, Userland, Option<Memo>) {
        let mut state = self.lock();
        let seen = state.seen.entry(id.to_owned()).or_insert(0);
        let index = *seen;
        *seen += 1;
        let hashed = step_id_hash(id, index);
        let memo = state.memos.get(&hashed).cloned();
        let userland = Userland {
            id: id.to_owned(),
            index: (index > 0).then_some(index),
        };
        (hashed, userland, memo)
    }

    /// Records a non-`run` op (unless another step is targeted) and interrupts.
    fn report(&self, op: Op) -> Error {
        let mut state = self.lock();
        state.interrupted = true;
        if state.target.is_none() {
            state.ops.push(op);
        }
        interrupt()
    }

    /// Runs `f` as a step named `id`, once: its result (any serde value) is stored by
    /// the server and returned on every later call instead of running `f` again.
    ///
    /// An error from `f` is retried with backoff (a new attempt calls `f` again) unless
    /// it is [`Error::NonRetriable`], or it is the last attempt; then the step fails
    /// for good and returns [`Error::StepFailed`] on the next call, which the
    /// function may match on or pass up.
    ///
    /// Ids must be unique in a run; a repeated id (in a loop) is numbered for you.
    ///
    /// ```
    /// # async fn demo(step: sluice_sdk::Step) -> sluice_sdk::Result<()> {
    /// use sluice_sdk::Error;
    /// let total: f64 = step
    ///     .run("price", || async {
    ///         let cents: u64 = "1999".parse()?; // std errors retry
    ///         if cents == 0 {
    ///             return Err(Error::non_retriable("free orders are not billed"));
    ///         }
    ///         Ok(cents as f64 / 100.0)
    ///     })
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn run<T, F, Fut>(&self, id: &str, f: F) -> Result<T>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        self.run_op(id, id.to_owned(), Map::new(), f).await
    }

    async fn run_op<T, F, Fut>(
        &self,
        id: &str,
        name: String,
        opts: Map<String, Value>,
        f: F,
    ) -> Result<T>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let (hashed, userland, memo) = self.claim(id);
        match memo {
            Some(Memo::Data(value)) => return decode(value),
            Some(Memo::Error(body)) => return Err(Error::StepFailed(StepFailure(body))),
            None => {}
        }
        let decision = {
            let mut state = self.lock();
            let first = !state.interrupted;
            state.interrupted = true;
            match &state.target {
                Some(target) if *target == hashed => Decision::Execute,
                Some(_) => Decision::Skip,
                None if first && state.immediate && state.parallel_depth == 0 => Decision::Execute,
                None => Decision::Plan,
            }
        };
        let mut op = Op {
            id: hashed,
            op: Opcode::StepPlanned,
            name: Some(name),
            opts,
            display_name: id.to_owned(),
            userland,
            data: Some(Value::Null),
            error: None,
        };
        match decision {
            Decision::Skip => return Err(interrupt()),
            Decision::Plan => {}
            Decision::Execute => {
                let result = f().await.and_then(|v| Ok(serde_json::to_value(v)?));
                self.settle(&mut op, result);
            }
        }
        self.lock().ops.push(op);
        Err(interrupt())
    }

    /// Turns a step's outcome into StepRun, StepError or StepFailed.
    fn settle(&self, op: &mut Op, result: Result<Value>) {
        let error = match result {
            Ok(value) => {
                op.op = Opcode::StepRun;
                op.data = Some(value);
                return;
            }
            Err(Error::Interrupt(_)) => {
                Error::non_retriable("a step was called inside step.run; steps cannot be nested")
            }
            Err(error) => error,
        };
        let mut state = self.lock();
        let last_attempt = state.attempt + 1 >= state.max_attempts;
        op.data = None;
        op.error = Some(error.to_body());
        if !error.is_retriable() || last_attempt {
            op.op = Opcode::StepFailed;
        } else {
            op.op = Opcode::StepError;
            if let Error::RetryAfter { after, .. } = error {
                state.retry_after = Some(after);
            }
        }
    }

    /// Pauses the run for `duration` without holding any resources.
    ///
    /// ```
    /// # async fn demo(step: sluice_sdk::Step) -> sluice_sdk::Result<()> {
    /// step.sleep("wait-a-day", std::time::Duration::from_secs(86_400)).await?;
    /// # Ok(()) }
    /// ```
    pub async fn sleep(&self, id: &str, duration: Duration) -> Result<()> {
        self.sleep_op(id, format_duration(duration))
    }

    /// Pauses the run until `until`.
    ///
    /// ```
    /// # async fn demo(step: sluice_sdk::Step) -> sluice_sdk::Result<()> {
    /// let renewal = chrono::Utc::now() + chrono::Duration::days(30);
    /// step.sleep_until("until-renewal", renewal).await?;
    /// # Ok(()) }
    /// ```
    pub async fn sleep_until(&self, id: &str, until: DateTime<Utc>) -> Result<()> {
        self.sleep_op(id, until.to_rfc3339_opts(SecondsFormat::Millis, true))
    }

    fn sleep_op(&self, id: &str, name: String) -> Result<()> {
        let (hashed, userland, memo) = self.claim(id);
        if memo.is_some() {
            return Ok(());
        }
        Err(self.report(Op {
            id: hashed,
            op: Opcode::Sleep,
            name: Some(name),
            opts: Map::new(),
            display_name: id.to_owned(),
            userland,
            data: Some(Value::Null),
            error: None,
        }))
    }

    /// Waits for an event; `None` when `timeout` passes first.
    ///
    /// ```
    /// # async fn demo(step: sluice_sdk::Step) -> sluice_sdk::Result<()> {
    /// use sluice_sdk::{Event, WaitForEvent};
    /// use std::time::Duration;
    /// let activated: Option<Event> = step
    ///     .wait_for_event("activation", WaitForEvent::new("user/activated", Duration::from_secs(3600)).matching("data.user_id"))
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn wait_for_event<T: DeserializeOwned>(
        &self,
        id: &str,
        wait: WaitForEvent,
    ) -> Result<Option<Event<T>>> {
        let (hashed, userland, memo) = self.claim(id);
        match memo {
            Some(Memo::Data(Value::Null)) => return Ok(None),
            Some(Memo::Data(event)) => return decode(event).map(Some),
            Some(Memo::Error(body)) => return Err(Error::StepFailed(StepFailure(body))),
            None => {}
        }
        let mut opts = Map::new();
        opts.insert("timeout".into(), format_duration(wait.timeout).into());
        if let Some(condition) = wait.condition {
            opts.insert("if".into(), condition.into());
        }
        Err(self.report(Op {
            id: hashed,
            op: Opcode::WaitForEvent,
            name: Some(wait.event),
            opts,
            display_name: id.to_owned(),
            userland,
            data: Some(Value::Null),
            error: None,
        }))
    }

    /// Runs another function and waits for its result. If it fails, this step fails
    /// with [`Error::StepFailed`].
    ///
    /// ```
    /// # async fn demo(step: sluice_sdk::Step) -> sluice_sdk::Result<()> {
    /// use sluice_sdk::Invoke;
    /// let pdf_url: String = step
    ///     .invoke("render", Invoke::function("render-invoice").data(serde_json::json!({"order": 9})))
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn invoke<R: DeserializeOwned>(&self, id: &str, invoke: Invoke) -> Result<R> {
        let (hashed, userland, memo) = self.claim(id);
        match memo {
            Some(Memo::Data(value)) => return decode(value),
            Some(Memo::Error(body)) => return Err(Error::StepFailed(StepFailure(body))),
            None => {}
        }
        let app_id = match invoke.app_id {
            Some(app) => app,
            None => self.lock().app_id.clone(),
        };
        let mut opts = Map::new();
        opts.insert(
            "function_id".into(),
            format!("{app_id}-{}", invoke.function_id).into(),
        );
        opts.insert("payload".into(), json!({ "data": invoke.data }));
        if let Some(timeout) = invoke.timeout {
            opts.insert("timeout".into(), format_duration(timeout).into());
        }
        Err(self.report(Op {
            id: hashed,
            op: Opcode::InvokeFunction,
            name: None,
            opts,
            display_name: id.to_owned(),
            userland,
            data: Some(Value::Null),
            error: None,
        }))
    }

    /// Sends events as a step, so a retried run does not send them twice.
    ///
    /// ```
    /// # async fn demo(step: sluice_sdk::Step) -> sluice_sdk::Result<()> {
    /// use sluice_sdk::Event;
    /// let sent = step
    ///     .send_event("notify", vec![Event::new("user/welcomed", serde_json::json!({"id": 7}))])
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn send_event<T: Serialize>(
        &self,
        id: &str,
        events: Vec<Event<T>>,
    ) -> Result<SendResult> {
        let mut opts = Map::new();
        opts.insert("type".into(), "step.sendEvent".into());
        let client = self.client.clone();
        self.run_op(id, "sendEvent".to_owned(), opts, || async move {
            Ok(client.send_many(&events).await?)
        })
        .await
    }

    /// Polls `fut` as a parallel group: new `run` steps inside it are reported as
    /// planned, and the server runs each of them on its own call.
    ///
    /// Use it to run steps of different types together; see [`Step::join`] and
    /// [`Step::join_all`] for the common cases.
    ///
    /// ```
    /// # async fn demo(step: sluice_sdk::Step) -> sluice_sdk::Result<()> {
    /// let (a, b, c) = step
    ///     .parallel(async {
    ///         futures::join!(
    ///             step.run("a", || async { Ok(1u8) }),
    ///             step.run("b", || async { Ok("two".to_owned()) }),
    ///             step.run("c", || async { Ok(3.0f32) }),
    ///         )
    ///     })
    ///     .await;
    /// let (a, b, c) = (a?, b?, c?);
    /// # Ok(()) }
    /// ```
    pub async fn parallel<F: Future>(&self, fut: F) -> F::Output {
        let mut fut = std::pin::pin!(fut);
        std::future::poll_fn(|cx| {
            self.lock().parallel_depth += 1;
            let poll = fut.as_mut().poll(cx);
            self.lock().parallel_depth -= 1;
            poll
        })
        .await
    }

    /// Runs two steps in parallel. An interrupt from either wins over errors, so
    /// every new step is reported.
    ///
    /// ```
    /// # async fn demo(step: sluice_sdk::Step) -> sluice_sdk::Result<()> {
    /// let (user, plan) = step
    ///     .join(
    ///         step.run("load-user", || async { Ok("ada".to_owned()) }),
    ///         step.run("load-plan", || async { Ok(3u32) }),
    ///     )
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn join<A, B>(
        &self,
        a: impl Future<Output = Result<A>>,
        b: impl Future<Output = Result<B>>,
    ) -> Result<(A, B)> {
        match self.parallel(futures::future::join(a, b)).await {
            (Ok(a), Ok(b)) => Ok((a, b)),
            (Err(e @ Error::Interrupt(_)), _) | (_, Err(e @ Error::Interrupt(_))) => Err(e),
            (Err(e), _) | (_, Err(e)) => Err(e),
        }
    }

    /// Runs many steps of one type in parallel, returning their results in order.
    ///
    /// ```
    /// # async fn demo(step: sluice_sdk::Step) -> sluice_sdk::Result<()> {
    /// let ids = ["a", "b", "c"];
    /// let sizes: Vec<usize> = step
    ///     .join_all(ids.iter().map(|id| step.run(id, move || async move { Ok(id.len()) })))
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn join_all<T, I>(&self, futures: I) -> Result<Vec<T>>
    where
        I: IntoIterator,
        I::Item: Future<Output = Result<T>>,
    {
        let results = self.parallel(futures::future::join_all(futures)).await;
        if let Some(pos) = results
            .iter()
            .position(|r| matches!(r, Err(Error::Interrupt(_))))
        {
            return results
                .into_iter()
                .nth(pos)
                .expect("position is in range")
                .map(|_| Vec::new());
        }
        results.into_iter().collect()
    }
}
