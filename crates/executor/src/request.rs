//! Building the call request (protocol §2): canonical JSON with every `ctx` field the
//! TS and Python SDKs need, the step URL, and the signature header.

use serde_json::{Map, Value};
use sluice_protocol::call::{CallContext, CallRequest, DISCOVERY_STEP_ID, Stack, VERSION_UNSET};
use sluice_store::{QueueItem, RunState};

use crate::options::Limits;

/// What the executor knows about a function to call it.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub id: sluice_core::FunctionId,
    /// `<app>-<fn>`.
    pub slug: String,
    /// The registered step URL (`…?fnId=<slug>&stepId=step`).
    pub url: String,
    /// Attempts per step (retries + 1).
    pub max_attempts: u32,
}

/// Everything one call request is built from.
#[derive(Debug, Clone, Copy)]
pub struct CallInput<'a> {
    pub state: &'a RunState,
    pub item: &'a QueueItem,
    pub target: &'a Target,
    pub env: &'a str,
    /// Send `ctx.fn_id` (TS v4 checkpointing).
    pub checkpointing: bool,
    pub limits: &'a Limits,
}

/// A built call.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// The URL with `stepId` set.
    pub url: String,
    /// Canonical JSON: the bytes sent and signed.
    pub body: Vec<u8>,
    /// The state was too large to inline; the SDK fetches it from the API.
    pub use_api: bool,
}

/// Why a run cannot be called any more.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    #[error("run has {count} steps, more than the limit of {max}")]
    TooManySteps { count: usize, max: usize },
    #[error("run state is {size} bytes, more than the limit of {max}")]
    StateTooLarge { size: usize, max: usize },
}

/// The `qi_id` sent to the SDK: the queue item and its lease token, so a checkpoint
/// can be tied to the exact dispatch that made it.
pub fn qi_id(item: &QueueItem) -> String {
    match item.lease_token {
        Some(t) => format!("{}:{}", item.id, t.0),
        None => item.id.to_string(),
    }
}

/// The saved steps SDKs receive: ids in completion order, and their results.
pub fn memoized(state: &RunState) -> (Vec<String>, Map<String, Value>) {
    let mut stack = Vec::new();
    let mut steps = Map::new();
    for step in state.steps.iter().filter(|s| s.status.is_memoized()) {
        if steps
            .insert(
                step.step_id.clone(),
                step.result.clone().unwrap_or(Value::Null),
            )
            .is_none()
        {
            stack.push(step.step_id.clone());
        }
    }
    (stack, steps)
}

/// Builds the request for `input`, or says which limit the run broke.
pub fn build(input: CallInput<'_>) -> Result<Call, LimitError> {
    let CallInput {
        state,
        item,
        target,
        env,
        checkpointing,
        limits,
    } = input;
    let (stack, steps) = memoized(state);
    if stack.len() > limits.max_steps {
        return Err(LimitError::TooManySteps {
            count: stack.len(),
            max: limits.max_steps,
        });
    }
    let step_id = item
        .step_id
        .clone()
        .unwrap_or_else(|| DISCOVERY_STEP_ID.to_owned());
    let events: Vec<Value> = state.events.iter().map(|e| e.to_sdk_json()).collect();
    let run = &state.run;
    let mut request = CallRequest {
        ctx: CallContext {
            attempt: u32::try_from(item.attempt).unwrap_or(0),
            disable_immediate_execution: run.disable_immediate_execution,
            env: env.to_owned(),
            fn_id: checkpointing.then(|| target.id.to_string()),
            max_attempts: target.max_attempts,
            qi_id: qi_id(item),
            run_id: run.id.to_string(),
            stack: Stack::new(stack),
            step_id: step_id.clone(),
            use_api: false,
            request_id: None,
            generation_id: None,
            job_id: None,
        },
        defers: Map::new(),
        event: events
            .first()
            .cloned()
            .unwrap_or_else(|| Value::Object(Map::new())),
        events,
        steps,
        use_api: false,
        version: run.request_version.unwrap_or(VERSION_UNSET),
    };
    let mut body = request.to_canonical_vec();
    if body.len() > limits.max_run_state {
        return Err(LimitError::StateTooLarge {
            size: body.len(),
            max: limits.max_run_state,
        });
    }
    let use_api = body.len() > limits.use_api_above;
    if use_api {
        request.events = Vec::new();
        request.steps = Map::new();
        request.event = Value::Object(Map::new());
        request.use_api = true;
        request.ctx.use_api = true;
        body = request.to_canonical_vec();
    }
    Ok(Call {
        url: step_url(&target.url, &step_id),
        body,
        use_api,
    })
}

/// The registered URL with its `stepId` query parameter set to `step_id`.
pub fn step_url(url: &str, step_id: &str) -> String {
    let Ok(mut parsed) = reqwest::Url::parse(url) else {
        return url.to_owned();
    };
    let pairs: Vec<(String, String)> = parsed
        .query_pairs()
        .filter(|(k, _)| k != "stepId")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    {
        let mut q = parsed.query_pairs_mut();
        q.clear();
        for (k, v) in &pairs {
            q.append_pair(k, v);
        }
        q.append_pair("stepId", step_id);
    }
    parsed.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_url_sets_step_id_and_keeps_the_rest() {
        let cases = [
            (
                "http://localhost:3000/api/inngest?fnId=app-fn&stepId=step",
                "abc",
                "http://localhost:3000/api/inngest?fnId=app-fn&stepId=abc",
            ),
            (
                "http://h/api/inngest?deployId=d1&fnId=app-fn&stepId=step",
                "step",
                "http://h/api/inngest?deployId=d1&fnId=app-fn&stepId=step",
            ),
            (
                "http://h/api/inngest?fnId=a%20b",
                "x",
                "http://h/api/inngest?fnId=a+b&stepId=x",
            ),
            ("not a url", "x", "not a url"),
        ];
        for (url, step, want) in cases {
            assert_eq!(step_url(url, step), want, "{url}");
        }
    }
}
