//! A small client of the REST API (`/v1/…`), tolerant of envelope shapes: lists may
//! come bare or wrapped (`{"items": […]}`, `{"data": […]}`, …).

use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::Value;

/// The REST API of one server.
#[derive(Debug, Clone)]
pub struct Api {
    pub base: String,
    /// Sent as `Authorization: Bearer …` (start mode).
    pub token: Option<String>,
    http: reqwest::Client,
}

/// How long a poll waits by default.
pub const WAIT: Duration = Duration::from_secs(45);

impl Api {
    pub fn new(base: &str, token: Option<String>) -> Api {
        Api {
            base: base.to_string(),
            token,
            http: reqwest::Client::new(),
        }
    }

    fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .timeout(Duration::from_secs(20));
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        req
    }

    async fn call(&self, req: reqwest::RequestBuilder, what: &str) -> anyhow::Result<Value> {
        let resp = req.send().await.with_context(|| what.to_string())?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        anyhow::ensure!(status.is_success(), "{what} answered {status}: {text}");
        if text.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text).with_context(|| format!("{what} answered non-JSON: {text}"))
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.call(self.req(reqwest::Method::GET, path), &format!("GET {path}"))
            .await
    }

    pub async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        self.call(
            self.req(reqwest::Method::POST, path).json(&body),
            &format!("POST {path}"),
        )
        .await
    }

    /// Every registered function.
    pub async fn functions(&self) -> anyhow::Result<Vec<Value>> {
        Ok(items(self.get("/v1/functions").await?))
    }

    /// The function id (UUID) registered under `slug`, if any.
    pub async fn function_id(&self, slug: &str) -> anyhow::Result<Option<String>> {
        Ok(self
            .functions()
            .await?
            .iter()
            .find(|f| f["slug"] == slug)
            .and_then(|f| f["id"].as_str().map(String::from)))
    }

    /// The runs an event triggered.
    pub async fn event_runs(&self, event_id: &str) -> anyhow::Result<Vec<Value>> {
        let event = self.get(&format!("/v1/events/{event_id}")).await?;
        if let Some(runs) = event.get("runs").or_else(|| event.pointer("/event/runs")) {
            return Ok(items(runs.clone()));
        }
        Ok(items(
            self.get(&format!("/v1/events/{event_id}/runs")).await?,
        ))
    }

    /// One run.
    pub async fn run(&self, run_id: &str) -> anyhow::Result<Value> {
        let run = self.get(&format!("/v1/runs/{run_id}")).await?;
        Ok(match run.get("run") {
            Some(inner) if inner.is_object() => inner.clone(),
            _ => run,
        })
    }

    /// A run's stored steps.
    pub async fn steps(&self, run_id: &str) -> anyhow::Result<Vec<Value>> {
        Ok(items(self.get(&format!("/v1/runs/{run_id}/steps")).await?))
    }

    /// Runs of one function (by its UUID), newest first.
    pub async fn runs_of(&self, function_id: &str) -> anyhow::Result<Vec<Value>> {
        Ok(items(
            self.get(&format!("/v1/runs?function={function_id}&limit=100"))
                .await?,
        ))
    }

    /// Cancels a run.
    pub async fn cancel(&self, run_id: &str) -> anyhow::Result<()> {
        self.post(&format!("/v1/runs/{run_id}/cancel"), Value::Null)
            .await?;
        Ok(())
    }

    /// Re-runs a run; the new run's id.
    pub async fn rerun(&self, run_id: &str) -> anyhow::Result<String> {
        let v = self
            .post(&format!("/v1/runs/{run_id}/rerun"), Value::Null)
            .await?;
        ["/id", "/run_id", "/run/id"]
            .iter()
            .find_map(|p| v.pointer(p).and_then(Value::as_str))
            .map(String::from)
            .with_context(|| format!("rerun answered no run id: {v}"))
    }

    /// Polls `GET /v1/runs/{id}` until the run has ended; the run.
    pub async fn wait_run_end(&self, run_id: &str) -> anyhow::Result<Value> {
        self.wait_run(run_id, "to end", is_terminal).await
    }

    /// Polls a run until `done` holds (or `WAIT` passes); the run.
    pub async fn wait_run(
        &self,
        run_id: &str,
        what: &str,
        done: impl Fn(&Value) -> bool,
    ) -> anyhow::Result<Value> {
        let deadline = Instant::now() + WAIT;
        loop {
            let run = self.run(run_id).await;
            if let Ok(run) = &run {
                if done(run) {
                    return Ok(run.clone());
                }
            }
            if Instant::now() > deadline {
                let last = match run {
                    Ok(r) => r.to_string(),
                    Err(e) => format!("{e:#}"),
                };
                anyhow::bail!("run {run_id} did not come {what} within {WAIT:?}; last: {last}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Polls a run's steps until `done` holds; the steps.
    pub async fn wait_steps(
        &self,
        run_id: &str,
        what: &str,
        done: impl Fn(&[Value]) -> bool,
    ) -> anyhow::Result<Vec<Value>> {
        let deadline = Instant::now() + WAIT;
        loop {
            let steps = self.steps(run_id).await;
            if let Ok(steps) = &steps {
                if done(steps) {
                    return Ok(steps.clone());
                }
            }
            if Instant::now() > deadline {
                let last = match steps {
                    Ok(s) => Value::Array(s).to_string(),
                    Err(e) => format!("{e:#}"),
                };
                anyhow::bail!(
                    "run {run_id}: steps never showed {what} within {WAIT:?}; last: {last}"
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Polls an event until it has triggered `n` runs; the runs.
    pub async fn wait_event_runs(&self, event_id: &str, n: usize) -> anyhow::Result<Vec<Value>> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let runs = self.event_runs(event_id).await;
            if let Ok(runs) = &runs {
                if runs.len() >= n {
                    return Ok(runs.clone());
                }
            }
            if Instant::now() > deadline {
                let last = match runs {
                    Ok(r) => Value::Array(r).to_string(),
                    Err(e) => format!("{e:#}"),
                };
                anyhow::bail!("event {event_id} did not get {n} runs; last: {last}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The list in a response: the value itself, or the first array under a usual key.
pub fn items(v: Value) -> Vec<Value> {
    match v {
        Value::Array(a) => a,
        Value::Object(mut o) => {
            for key in [
                "items",
                "data",
                "runs",
                "functions",
                "steps",
                "events",
                "apps",
            ] {
                if let Some(Value::Array(a)) = o.remove(key) {
                    return a;
                }
            }
            Vec::new()
        }
        _ => Vec::new(),
    }
}

/// A run's status text.
pub fn status(run: &Value) -> &str {
    run["status"].as_str().unwrap_or("")
}

/// Whether a run has ended.
pub fn is_terminal(run: &Value) -> bool {
    matches!(status(run), "completed" | "failed" | "cancelled")
}

/// A run's id.
pub fn id(run: &Value) -> String {
    run["id"].as_str().unwrap_or_default().to_string()
}
