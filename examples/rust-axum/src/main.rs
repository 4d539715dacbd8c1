//! A signup flow on Sluice: welcome email, a pause, then wait for the user to
//! activate their account and branch on whether they did.
//!
//! `POST /signup` and `POST /activate` send the events; the function itself is served
//! at `/api/inngest`, where Sluice syncs and calls it.

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sluice_sdk::{
    App, Client, Config, Error, Event, Function, FunctionFailed, Input, Step, Trigger, WaitForEvent,
};
use std::time::Duration;

/// `user/signup` data.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Signup {
    user_id: String,
    email: String,
}

/// A pretend mailer; a real app would call its email provider here.
async fn send_email(to: &str, template: &str) -> sluice_sdk::Result<String> {
    if !to.contains('@') {
        // Retrying cannot fix a malformed address.
        return Err(Error::non_retriable(format!(
            "invalid email address {to:?}"
        )));
    }
    tracing::info!(template, "email sent");
    Ok(format!("msg-{template}-{}", to.len()))
}

/// The durable signup flow.
async fn onboarding(input: Input<Signup>, step: Step) -> sluice_sdk::Result<Value> {
    let user = input.event.data;

    let welcome = step
        .run("send-welcome-email", || send_email(&user.email, "welcome"))
        .await?;

    // Give the user a moment to look around before checking on them.
    step.sleep("let-them-look-around", Duration::from_secs(10))
        .await?;

    let activated: Option<Event> = step
        .wait_for_event(
            "wait-for-activation",
            WaitForEvent::new("user/activated", Duration::from_secs(120)).matching("data.user_id"),
        )
        .await?;

    let outcome = if activated.is_some() {
        step.run("send-tips", || send_email(&user.email, "getting-started"))
            .await?;
        "activated"
    } else {
        // A failed reminder should not fail the whole flow: recover from it.
        match step
            .run("send-reminder", || send_email(&user.email, "reminder"))
            .await
        {
            Ok(_) => "reminded",
            Err(Error::StepFailed(failure)) => {
                tracing::warn!(error = failure.message(), "the reminder could not be sent");
                "unreachable"
            }
            Err(e) => return Err(e),
        }
    };
    Ok(json!({"user_id": user.user_id, "welcome": welcome, "outcome": outcome}))
}

async fn signup(State(client): State<Client>, Json(body): Json<Value>) -> Json<Value> {
    let email = body["email"].as_str().unwrap_or_default().to_owned();
    let user_id = format!("user-{}", email.len() * 7919 % 10_000);
    let event = Event::new(
        "user/signup",
        Signup {
            user_id: user_id.clone(),
            email,
        },
    );
    match client.send(event).await {
        Ok(sent) => Json(json!({"user_id": user_id, "event_ids": sent.ids})),
        Err(error) => Json(json!({"error": error.to_string()})),
    }
}

async fn activate(State(client): State<Client>, Json(body): Json<Value>) -> Json<Value> {
    let event = Event::new("user/activated", json!({"user_id": body["user_id"]}));
    match client.send(event).await {
        Ok(sent) => Json(json!({"event_ids": sent.ids})),
        Err(error) => Json(json!({"error": error.to_string()})),
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();

    let port = std::env::var("PORT").unwrap_or_else(|_| "3000".to_owned());
    // SLUICE_DEV=1 (or INNGEST_DEV=1) points it at a local Sluice on :8288.
    let client = Client::new(Config::from_env("signup-app"));

    let flow = Function::new("onboarding")
        .name("User onboarding")
        .trigger(Trigger::event("user/signup"))
        .retries(3)
        .on_failure(|input: Input<FunctionFailed>, _step: Step| async move {
            tracing::error!(
                run = %input.event.data.run_id,
                error = %input.event.data.error.message,
                "onboarding failed for good"
            );
            Ok(())
        })
        .handler(onboarding);

    let app = Router::new()
        .route("/signup", post(signup))
        .route("/activate", post(activate))
        .with_state(client.clone())
        .merge(App::new(client).function(flow).router());

    let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}")).await?;
    tracing::info!("listening on http://127.0.0.1:{port} (functions at /api/inngest)");
    axum::serve(listener, app).await
}
