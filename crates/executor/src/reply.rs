//! Sending a call and reading the SDK's reply (protocol §3): status, the headers that
//! matter, the body; the reply signature checked in start mode.

use serde_json::Value;
use sluice_protocol::SigningKey;
use sluice_protocol::signing;
use std::time::Duration;

use crate::request::Call;

/// The headers of a reply that decide what follows it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reply {
    pub status: u16,
    /// `x-inngest-req-version`: the request version the SDK picked.
    pub request_version: Option<i32>,
    /// `x-inngest-no-retry`.
    pub no_retry: Option<bool>,
    /// `retry-after`, read and clamped.
    pub retry_after: Option<Duration>,
    /// `x-inngest-sdk`.
    pub sdk: Option<String>,
    pub body: Vec<u8>,
}

impl Reply {
    /// The body as JSON, `null` when empty, a string when not JSON.
    pub fn json(&self) -> Value {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Value::Null;
        }
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&self.body).into_owned()))
    }

    /// A short description of an error reply, for logs and the run's error.
    pub fn error_message(&self) -> String {
        match self.json() {
            Value::Object(m) => ["message", "error"]
                .iter()
                .find_map(|k| m.get(*k).and_then(Value::as_str).map(str::to_owned))
                .unwrap_or_else(|| format!("status {}", self.status)),
            Value::String(s) if !s.is_empty() => s.chars().take(200).collect(),
            _ => format!("status {}", self.status),
        }
    }
}

/// Who signs and checks.
#[derive(Debug, Clone, Copy)]
pub struct Signer<'a> {
    /// Signs the request when set.
    pub key: Option<&'a SigningKey>,
    /// Checks the reply's signature when non-empty.
    pub verify_with: &'a [SigningKey],
    /// `x-inngest-server-kind`.
    pub server_kind: &'a str,
}

/// Sends `call` and reads the reply. `Err` is a transport failure (no reply: refused,
/// reset, timed out) or a reply that cannot be trusted (bad signature).
pub async fn send(
    client: &reqwest::Client,
    call: &Call,
    signer: Signer<'_>,
    run_id: &str,
    step_id: &str,
    max_bytes: usize,
) -> Result<Reply, String> {
    let mut request = client
        .post(&call.url)
        .header("content-type", "application/json")
        .header("x-run-id", run_id)
        .header("x-inngest-step-id", step_id)
        .header("x-inngest-server-kind", signer.server_kind)
        .body(call.body.clone());
    if let Some(key) = signer.key {
        let now = chrono::Utc::now().timestamp();
        request = request.header("x-inngest-signature", signing::sign(&call.body, key, now));
    }
    let mut response = request.send().await.map_err(describe)?;
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let signature = header("x-inngest-signature");
    let mut reply = Reply {
        status: response.status().as_u16(),
        request_version: header("x-inngest-req-version").and_then(|v| v.trim().parse().ok()),
        no_retry: header("x-inngest-no-retry").map(|v| v.trim().eq_ignore_ascii_case("true")),
        retry_after: header("retry-after")
            .and_then(|v| sluice_protocol::event::retry_after(&v, chrono::Utc::now())),
        sdk: header("x-inngest-sdk"),
        body: Vec::new(),
    };
    while let Some(chunk) = response.chunk().await.map_err(describe)? {
        if reply.body.len() + chunk.len() > max_bytes {
            return Err(format!("reply body exceeds {max_bytes} bytes"));
        }
        reply.body.extend_from_slice(&chunk);
    }
    if !signer.verify_with.is_empty() && matches!(reply.status, 200 | 201 | 206) {
        let ok = signature.as_deref().is_some_and(|sig| {
            let now = chrono::Utc::now().timestamp();
            signing::verify(sig, &reply.body, signer.verify_with, now, Some(300)).is_ok()
        });
        if !ok {
            return Err("the reply's x-inngest-signature is missing or invalid".into());
        }
    }
    if reply.status == 201 {
        reply = unstream(reply);
    }
    Ok(reply)
}

/// A streamed reply (201) carries the real one as `{status, headers, body}`.
fn unstream(reply: Reply) -> Reply {
    let Value::Object(m) = reply.json() else {
        return reply;
    };
    let status = m
        .get("status")
        .and_then(Value::as_u64)
        .and_then(|s| u16::try_from(s).ok())
        .unwrap_or(500);
    let headers = m.get("headers").and_then(Value::as_object);
    let header = |name: &str| {
        headers.and_then(|h| {
            h.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .and_then(|(_, v)| v.as_str())
        })
    };
    let body = match m.get("body") {
        Some(Value::String(s)) => s.clone().into_bytes(),
        Some(other) => serde_json::to_vec(other).unwrap_or_default(),
        None => Vec::new(),
    };
    Reply {
        status,
        request_version: header("x-inngest-req-version")
            .and_then(|v| v.parse().ok())
            .or(reply.request_version),
        no_retry: header("x-inngest-no-retry")
            .map(|v| v.eq_ignore_ascii_case("true"))
            .or(reply.no_retry),
        retry_after: header("retry-after")
            .and_then(|v| sluice_protocol::event::retry_after(v, chrono::Utc::now()))
            .or(reply.retry_after),
        sdk: reply.sdk,
        body,
    }
}

fn describe(e: reqwest::Error) -> String {
    if e.is_timeout() {
        "the SDK did not answer in time".into()
    } else if e.is_connect() {
        "could not connect to the SDK".into()
    } else {
        // The error's Display may include the URL but never the body or keys.
        format!("transport error: {e}")
    }
}
