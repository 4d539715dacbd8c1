//! The function registry as the broker uses it: every function with its event
//! triggers' expressions compiled once, indexed by event name, plus a cache that
//! reloads it when the store's registry version changes.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use serde_json::Value;
use sluice_core::Expression;
use sluice_store::{DynStore, Function, FunctionDef, Trigger};

use crate::{Error, Result};

/// An event trigger, compiled.
#[derive(Debug, Clone)]
pub struct EventTrigger {
    /// The trigger's event name or `prefix/*` pattern.
    pub pattern: Pattern,
    /// The compiled `expression`, when the trigger has one.
    pub expression: Option<Expression>,
}

/// How a trigger names events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pattern {
    /// Exactly this name.
    Exact(String),
    /// Any name starting with this prefix (the trigger was `prefix*`, e.g. `app/*`).
    Prefix(String),
}

impl Pattern {
    /// Reads a trigger's `event` field.
    pub fn parse(event: &str) -> Self {
        match event.strip_suffix('*') {
            Some(prefix) => Pattern::Prefix(prefix.to_owned()),
            None => Pattern::Exact(event.to_owned()),
        }
    }

    /// Whether `name` matches.
    pub fn matches(&self, name: &str) -> bool {
        match self {
            Pattern::Exact(exact) => exact == name,
            Pattern::Prefix(prefix) => name.starts_with(prefix.as_str()),
        }
    }
}

/// A `cancel[]` entry of a function config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CancelRule {
    /// The event name that cancels.
    pub event: String,
    /// The `if` condition (`event` = trigger, `async` = the cancel event).
    pub condition: Option<String>,
    /// How long after the run's creation the rule applies.
    pub timeout: Option<Duration>,
}

/// A registered function, ready for matching.
#[derive(Debug, Clone)]
pub struct CompiledFunction {
    pub function: Function,
    pub triggers: Vec<EventTrigger>,
    pub cancels: Vec<CancelRule>,
    /// `priority.run`, compiled.
    pub priority: Option<Expression>,
}

/// The functions, indexed for matching event names.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    functions: Vec<CompiledFunction>,
    /// Exact event name → indexes into `functions`.
    exact: HashMap<String, Vec<usize>>,
    /// `(prefix, index)` for wildcard triggers.
    prefixes: Vec<(String, usize)>,
    by_slug: HashMap<String, usize>,
    /// The store's registry version this was loaded at.
    version: i64,
}

impl Registry {
    /// Builds the registry from stored functions. A function whose stored definition
    /// no longer compiles (it was checked at registration) keeps its other triggers;
    /// the bad one is logged and skipped.
    pub fn new(functions: Vec<Function>, version: i64) -> Self {
        let mut registry = Registry {
            version,
            ..Registry::default()
        };
        for function in functions {
            let compiled = match compile(&function.slug, &function.triggers, &function.config) {
                Ok(compiled) => compiled,
                Err(err) => {
                    tracing::warn!(function.id = %function.id, error = %err, "function skipped: definition does not compile");
                    continue;
                }
            };
            let index = registry.functions.len();
            for trigger in &compiled.triggers {
                match &trigger.pattern {
                    Pattern::Exact(name) => {
                        let slot = registry.exact.entry(name.clone()).or_default();
                        if !slot.contains(&index) {
                            slot.push(index);
                        }
                    }
                    Pattern::Prefix(prefix) => registry.prefixes.push((prefix.clone(), index)),
                }
            }
            registry.by_slug.insert(function.slug.clone(), index);
            registry.functions.push(CompiledFunction {
                function,
                triggers: compiled.triggers,
                cancels: compiled.cancels,
                priority: compiled.priority,
            });
        }
        registry
    }

    /// The store's registry version this registry reflects.
    pub fn version(&self) -> i64 {
        self.version
    }

    /// All functions.
    pub fn functions(&self) -> &[CompiledFunction] {
        &self.functions
    }

    /// A function by slug or by internal id (text form).
    pub fn find(&self, slug_or_id: &str) -> Option<&CompiledFunction> {
        if let Some(&index) = self.by_slug.get(slug_or_id) {
            return Some(&self.functions[index]);
        }
        self.functions
            .iter()
            .find(|f| f.function.id.to_string() == slug_or_id)
    }

    /// Functions with at least one trigger whose name pattern matches `name` (each
    /// once, in registration order). Expressions are not evaluated here.
    pub fn candidates(&self, name: &str) -> Vec<&CompiledFunction> {
        let mut indexes: Vec<usize> = self.exact.get(name).cloned().unwrap_or_default();
        for (prefix, index) in &self.prefixes {
            if name.starts_with(prefix.as_str()) && !indexes.contains(index) {
                indexes.push(*index);
            }
        }
        indexes.sort_unstable();
        indexes.into_iter().map(|i| &self.functions[i]).collect()
    }
}

/// Checks function definitions before registration: every CEL expression (trigger
/// expressions, `cancel[].if`, flow-control keys, priority) must compile and every
/// duration must parse.
pub fn check_functions(defs: &[FunctionDef]) -> Result<()> {
    for def in defs {
        compile(&def.slug, &def.triggers, &def.config)?;
        let invalid = |message: String| Error::InvalidFunction {
            function: def.slug.clone(),
            message,
        };
        for (path, source) in config_expressions(&def.config) {
            Expression::compile(&source).map_err(|e| invalid(format!("{path}: {e}")))?;
        }
        for trigger in &def.triggers {
            if let Trigger::Event { event, .. } = trigger {
                if event.trim().is_empty() {
                    return Err(invalid("a trigger has an empty event name".into()));
                }
            }
        }
    }
    Ok(())
}

/// A function's compiled parts.
struct Compiled {
    triggers: Vec<EventTrigger>,
    cancels: Vec<CancelRule>,
    priority: Option<Expression>,
}

/// Compiles a function's event triggers and priority, and reads its cancel rules.
fn compile(slug: &str, triggers: &[Trigger], config: &Value) -> Result<Compiled> {
    let invalid = |message: String| Error::InvalidFunction {
        function: slug.to_owned(),
        message,
    };
    let mut compiled = Vec::new();
    for trigger in triggers {
        let Trigger::Event { event, expression } = trigger else {
            continue;
        };
        let expression = match expression.as_deref().map(str::trim) {
            Some(src) if !src.is_empty() => Some(
                Expression::compile(src).map_err(|e| invalid(format!("trigger {event:?}: {e}")))?,
            ),
            _ => None,
        };
        compiled.push(EventTrigger {
            pattern: Pattern::parse(event),
            expression,
        });
    }
    let mut cancels = Vec::new();
    if let Some(entries) = config.get("cancel").and_then(Value::as_array) {
        for entry in entries {
            let Some(event) = entry.get("event").and_then(Value::as_str) else {
                return Err(invalid("cancel entry without an event name".into()));
            };
            let condition = entry
                .get("if")
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned);
            if let Some(src) = &condition {
                Expression::compile(src).map_err(|e| invalid(format!("cancel {event:?}: {e}")))?;
            }
            let timeout = match entry.get("timeout").and_then(Value::as_str) {
                Some(t) => Some(
                    sluice_protocol::parse_duration(t)
                        .map_err(|e| invalid(format!("cancel {event:?} timeout: {e}")))?,
                ),
                None => None,
            };
            cancels.push(CancelRule {
                event: event.to_owned(),
                condition,
                timeout,
            });
        }
    }
    let priority = match config
        .get("priority")
        .and_then(|p| p.get("run"))
        .and_then(Value::as_str)
        .map(str::trim)
    {
        Some(src) if !src.is_empty() => {
            Some(Expression::compile(src).map_err(|e| invalid(format!("priority.run: {e}")))?)
        }
        _ => None,
    };
    Ok(Compiled {
        triggers: compiled,
        cancels,
        priority,
    })
}

/// The other CEL expressions a function config carries, with where they are.
fn config_expressions(config: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut push = |path: String, v: Option<&Value>| {
        if let Some(src) = v.and_then(Value::as_str) {
            if !src.trim().is_empty() {
                out.push((path, src.to_owned()));
            }
        }
    };
    for field in [
        "throttle",
        "rateLimit",
        "debounce",
        "batchEvents",
        "singleton",
    ] {
        push(
            format!("{field}.key"),
            config.get(field).and_then(|f| f.get("key")),
        );
    }
    push(
        "batchEvents.if".into(),
        config.get("batchEvents").and_then(|b| b.get("if")),
    );
    push("idempotency".into(), config.get("idempotency"));
    match config.get("concurrency") {
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                push(format!("concurrency[{i}].key"), item.get("key"));
            }
        }
        Some(item @ Value::Object(_)) => push("concurrency.key".into(), item.get("key")),
        _ => {}
    }
    out
}

/// How often [`RegistryCache::get`] asks the store whether the registry changed.
pub const DEFAULT_CHECK_INTERVAL: Duration = Duration::from_millis(250);

/// The registry, reloaded when the store's registry version changes (checked at most
/// every `check_interval`, and at once after [`RegistryCache::invalidate`]).
#[derive(Debug)]
pub struct RegistryCache {
    store: DynStore,
    check_interval: Duration,
    current: RwLock<(Arc<Registry>, Option<Instant>)>,
    reload: tokio::sync::Mutex<()>,
}

impl RegistryCache {
    /// Loads the registry now.
    pub async fn load(store: DynStore, check_interval: Duration) -> Result<Self> {
        let registry = fetch(&store).await?;
        Ok(Self {
            store,
            check_interval,
            current: RwLock::new((Arc::new(registry), Some(Instant::now()))),
            reload: tokio::sync::Mutex::new(()),
        })
    }

    /// Makes the next [`get`](Self::get) check the store's version.
    pub fn invalidate(&self) {
        self.current.write().expect("registry lock").1 = None;
    }

    /// The registry, fresh within `check_interval`.
    pub async fn get(&self) -> Result<Arc<Registry>> {
        if let Some(fresh) = self.fresh() {
            return Ok(fresh);
        }
        let _reload = self.reload.lock().await;
        // Another task may have reloaded while this one waited.
        if let Some(fresh) = self.fresh() {
            return Ok(fresh);
        }
        let held = self.current.read().expect("registry lock").0.clone();
        let version = self.store.registry_version().await?;
        let registry = if version == held.version() {
            held
        } else {
            let registry = Arc::new(fetch(&self.store).await?);
            tracing::debug!(
                version = registry.version(),
                functions = registry.functions().len(),
                "registry reloaded"
            );
            registry
        };
        *self.current.write().expect("registry lock") = (registry.clone(), Some(Instant::now()));
        Ok(registry)
    }

    fn fresh(&self) -> Option<Arc<Registry>> {
        let current = self.current.read().expect("registry lock");
        match current.1 {
            Some(checked) if checked.elapsed() < self.check_interval => Some(current.0.clone()),
            _ => None,
        }
    }
}

async fn fetch(store: &DynStore) -> Result<Registry> {
    // Read the version first: a change between the two reads makes the next check
    // reload again rather than miss it.
    let version = store.registry_version().await?;
    let functions = store.list_functions().await?;
    Ok(Registry::new(functions, version))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use sluice_core::{AppId, FunctionId, Millis};

    fn function(slug: &str, triggers: Vec<Trigger>, config: Value) -> Function {
        Function {
            id: FunctionId::new(),
            app_id: AppId::new(),
            slug: slug.into(),
            name: slug.into(),
            triggers,
            config,
            created_at: Millis(0),
            updated_at: Millis(0),
        }
    }

    fn on(event: &str, expression: Option<&str>) -> Trigger {
        Trigger::Event {
            event: event.into(),
            expression: expression.map(Into::into),
        }
    }

    #[test]
    fn candidates_by_exact_name_and_wildcard_each_once() {
        let registry = Registry::new(
            vec![
                function("a", vec![on("shop/order.paid", None)], json!({})),
                function(
                    "b",
                    vec![on("shop/*", None), on("shop/order.paid", None)],
                    json!({}),
                ),
                function("c", vec![on("other", None)], json!({})),
                function(
                    "cron",
                    vec![Trigger::Cron {
                        cron: "* * * * *".into(),
                        jitter: None,
                    }],
                    json!({}),
                ),
            ],
            3,
        );
        let slugs = |name: &str| -> Vec<String> {
            registry
                .candidates(name)
                .iter()
                .map(|f| f.function.slug.clone())
                .collect()
        };
        assert_eq!(slugs("shop/order.paid"), vec!["a", "b"]);
        assert_eq!(slugs("shop/cart"), vec!["b"]);
        assert_eq!(
            slugs("shopping"),
            Vec::<String>::new(),
            "prefix includes the slash"
        );
        assert_eq!(slugs("other"), vec!["c"]);
        assert!(registry.find("cron").is_some());
        let id = registry.find("a").unwrap().function.id.to_string();
        assert_eq!(registry.find(&id).unwrap().function.slug, "a");
        assert_eq!(registry.version(), 3);
    }

    #[test]
    fn check_refuses_bad_expressions_and_durations() {
        let def = |triggers: Vec<Trigger>, config: Value| FunctionDef {
            slug: "app-f".into(),
            name: "f".into(),
            triggers,
            config,
        };
        let good = def(
            vec![on("a", Some("event.data.ok == true"))],
            json!({
                "cancel": [{"event": "c", "if": "async.data.id == event.data.id", "timeout": "1h"}],
                "concurrency": [{"limit": 2, "key": "event.data.user"}],
                "priority": {"run": "event.data.vip ? 120 : 0"},
                "idempotency": "event.data.order"
            }),
        );
        check_functions(std::slice::from_ref(&good)).unwrap();
        let bad = [
            def(vec![on("a", Some("event.data.ok =="))], json!({})),
            def(
                vec![on("a", None)],
                json!({"cancel": [{"event": "c", "if": "(("}]}),
            ),
            def(
                vec![on("a", None)],
                json!({"cancel": [{"event": "c", "timeout": "soon"}]}),
            ),
            def(vec![on("a", None)], json!({"cancel": [{"if": "true"}]})),
            def(
                vec![on("a", None)],
                json!({"priority": {"run": "event.data.vip ?"}}),
            ),
            def(
                vec![on("a", None)],
                json!({"concurrency": {"limit": 1, "key": "event.data."}}),
            ),
            def(vec![on(" ", None)], json!({})),
        ];
        for def in bad {
            let err = check_functions(&[good.clone(), def.clone()]).unwrap_err();
            assert!(
                matches!(&err, Error::InvalidFunction { function, .. } if function == "app-f"),
                "{def:?}: {err}"
            );
        }
    }
}
