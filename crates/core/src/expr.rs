//! CEL expressions over events: trigger filters, `waitForEvent` / `cancel` matchers,
//! and priority / key expressions.
//!
//! Two variables are bound: `event` (the trigger event, or the event under test) and
//! `async` (the incoming event a wait or a cancellation is matched against). Numbers
//! compare across int and float (`event.data.amount == 100` holds for `100.0`).
//!
//! A missing field or a type error is an evaluation [`Error`]; a filter that cannot be
//! evaluated does not match ([`Expression::matches`]), so the caller logs the error once
//! and moves on.

use cel::objects::{Key, Map};
use cel::{Context, Env, Program, Value as CelValue};
use serde_json::Value;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, LazyLock};

/// Why an expression could not be compiled or evaluated.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// The expression does not parse.
    #[error("invalid expression {expr:?}: {message}")]
    Compile {
        /// The expression text.
        expr: String,
        /// What the parser said.
        message: String,
    },
    /// Evaluation failed (a missing field, a type mismatch, an unknown function).
    #[error("expression {expr:?} failed: {message}")]
    Eval {
        /// The expression text.
        expr: String,
        /// What went wrong.
        message: String,
    },
    /// Evaluation gave a value of the wrong type.
    #[error("expression {expr:?} gave {got}, expected {want}")]
    Type {
        /// The expression text.
        expr: String,
        /// The type produced.
        got: String,
        /// The type wanted.
        want: &'static str,
    },
}

/// `Result` with this module's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The variables an expression sees.
#[derive(Debug, Clone, Copy, Default)]
pub struct Bindings<'a> {
    /// `event`: the trigger event (or the event being filtered).
    pub event: Option<&'a Value>,
    /// `async`: the incoming event a wait or a cancellation is checked against.
    pub async_event: Option<&'a Value>,
}

impl<'a> Bindings<'a> {
    /// Only `event` bound.
    pub fn event(event: &'a Value) -> Self {
        Self {
            event: Some(event),
            async_event: None,
        }
    }

    /// Both `event` and `async` bound.
    pub fn with_async(event: &'a Value, async_event: &'a Value) -> Self {
        Self {
            event: Some(event),
            async_event: Some(async_event),
        }
    }
}

/// The standard CEL environment, built once.
static ENV: LazyLock<Arc<Env>> = LazyLock::new(|| Arc::new(Env::stdlib()));

/// A compiled CEL expression. Compile once, evaluate from many tasks (`Send + Sync`).
#[derive(Clone)]
pub struct Expression {
    source: Arc<str>,
    program: Arc<Program>,
}

impl fmt::Debug for Expression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Expression").field(&self.source).finish()
    }
}

impl Expression {
    /// Compiles `source`.
    pub fn compile(source: &str) -> Result<Self> {
        let program = ENV.compile(source).map_err(|e| Error::Compile {
            expr: source.to_owned(),
            message: e.to_string(),
        })?;
        Ok(Self {
            source: source.into(),
            program: Arc::new(program),
        })
    }

    /// The expression text.
    pub fn source(&self) -> &str {
        &self.source
    }

    fn eval(&self, bindings: Bindings<'_>) -> Result<CelValue> {
        let mut ctx = Context::with_env(Arc::clone(&ENV));
        if let Some(event) = bindings.event {
            ctx.add_variable_from_value("event", to_cel(event));
        }
        if let Some(async_event) = bindings.async_event {
            ctx.add_variable_from_value("async", to_cel(async_event));
        }
        self.program.execute(&ctx).map_err(|e| Error::Eval {
            expr: self.source.to_string(),
            message: e.to_string(),
        })
    }

    fn type_error(&self, got: &CelValue, want: &'static str) -> Error {
        Error::Type {
            expr: self.source.to_string(),
            got: got.type_of().to_string(),
            want,
        }
    }

    /// Evaluates to a boolean; any other result is an error.
    pub fn eval_bool(&self, bindings: Bindings<'_>) -> Result<bool> {
        match self.eval(bindings)? {
            CelValue::Bool(b) => Ok(b),
            other => Err(self.type_error(&other, "bool")),
        }
    }

    /// Whether the expression holds. An evaluation error (a missing field, say) means
    /// "does not match"; use [`eval_bool`](Self::eval_bool) to see the error.
    pub fn matches(&self, bindings: Bindings<'_>) -> bool {
        self.eval_bool(bindings).unwrap_or(false)
    }

    /// Evaluates to an integer (a priority, say). Floats are truncated toward zero.
    pub fn eval_int(&self, bindings: Bindings<'_>) -> Result<i64> {
        match self.eval(bindings)? {
            CelValue::Int(i) => Ok(i),
            CelValue::UInt(u) => {
                i64::try_from(u).map_err(|_| self.type_error(&CelValue::UInt(u), "int"))
            }
            CelValue::Float(f) if f.is_finite() => Ok(f as i64),
            other => Err(self.type_error(&other, "int")),
        }
    }

    /// Evaluates to JSON (a concurrency or throttle key, say).
    pub fn eval_json(&self, bindings: Bindings<'_>) -> Result<Value> {
        let value = self.eval(bindings)?;
        Ok(to_json(&value))
    }
}

/// A JSON value as a CEL value. Integers stay integers; other numbers become floats.
fn to_cel(value: &Value) -> CelValue {
    match value {
        Value::Null => CelValue::Null,
        Value::Bool(b) => CelValue::Bool(*b),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                CelValue::Int(i)
            } else if let Some(u) = n.as_u64() {
                CelValue::UInt(u)
            } else {
                CelValue::Float(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Value::String(s) => CelValue::String(Arc::new(s.clone())),
        Value::Array(items) => CelValue::List(Arc::new(items.iter().map(to_cel).collect())),
        Value::Object(map) => {
            let map: HashMap<Key, CelValue> = map
                .iter()
                .map(|(k, v)| (Key::String(Arc::new(k.clone())), to_cel(v)))
                .collect();
            CelValue::Map(Map { map: Arc::new(map) })
        }
    }
}

/// A CEL value as JSON; values with no JSON form become their text.
fn to_json(value: &CelValue) -> Value {
    match value {
        CelValue::Null => Value::Null,
        CelValue::Bool(b) => Value::Bool(*b),
        CelValue::Int(i) => Value::from(*i),
        CelValue::UInt(u) => Value::from(*u),
        CelValue::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
        CelValue::String(s) => Value::String(s.to_string()),
        CelValue::List(items) => Value::Array(items.iter().map(to_json).collect()),
        CelValue::Map(map) => Value::Object(
            map.map
                .iter()
                .map(|(k, v)| {
                    let key = match k {
                        Key::String(s) => s.to_string(),
                        Key::Int(i) => i.to_string(),
                        Key::Uint(u) => u.to_string(),
                        Key::Bool(b) => b.to_string(),
                    };
                    (key, to_json(v))
                })
                .collect(),
        ),
        other => Value::String(format!("{other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn inngest_style_filters() {
        assert_send_sync::<Expression>();
        let event = json!({
            "name": "demo/hello",
            "data": {
                "go": true, "k": "x1", "n": 2, "amount": 100.0, "vip": true,
                "tags": ["a", "b"], "email": "ada@example.com",
                "function_id": "app-fn", "user": {"id": 7}
            }
        });
        let other = json!({"name": "demo/reply", "data": {"k": "x1", "id": 7}});
        let cases: &[(&str, bool, Option<bool>)] = &[
            ("event.data.go == true", false, Some(true)),
            ("event.data.go", false, Some(true)),
            ("async.data.k == event.data.k", true, Some(true)),
            ("async.data.id == event.data.user.id", true, Some(true)),
            ("event.data.n > 1.5", false, Some(true)),
            ("event.data.n == 2.0", false, Some(true)),
            ("event.data.amount == 100", false, Some(true)),
            (
                "event.data.amount > 99 && event.data.amount < 101",
                false,
                Some(true),
            ),
            ("'a' in event.data.tags", false, Some(true)),
            ("'z' in event.data.tags", false, Some(false)),
            ("size(event.data.tags) == 2", false, Some(true)),
            ("has(event.data.go)", false, Some(true)),
            ("has(event.data.missing)", false, Some(false)),
            ("event.data.email.startsWith('ada')", false, Some(true)),
            ("event.data.email.endsWith('.com')", false, Some(true)),
            ("event.data.email.contains('@')", false, Some(true)),
            (
                "event.data.email.matches('^[a-z]+@example\\\\.com$')",
                false,
                Some(true),
            ),
            ("event.data.function_id == 'app-fn'", false, Some(true)),
            ("event.data.function_id == \"app-fn\"", false, Some(true)),
            ("event.name == 'demo/hello' || false", false, Some(true)),
            // A missing field is an error, and the filter does not match.
            ("event.data.missing == 1", false, None),
            ("event.data.user.missing.deeper == 1", false, None),
            ("async.data.k == 'x1'", false, None),
            // Not a bool: an error too.
            ("event.data.n", false, None),
        ];
        for (src, with_async, want) in cases {
            let expr = Expression::compile(src).unwrap_or_else(|e| panic!("{src}: {e}"));
            let b = if *with_async {
                Bindings::with_async(&event, &other)
            } else {
                Bindings::event(&event)
            };
            let got = expr.eval_bool(b);
            assert_eq!(got.as_ref().ok().copied(), *want, "{src}: {got:?}");
            assert_eq!(expr.matches(b), want.unwrap_or(false), "{src}");
        }
    }

    #[test]
    fn ints_json_and_compile_errors() {
        let vip = json!({"data": {"vip": true, "p": 1.9, "user": "u1"}});
        let plain = json!({"data": {"vip": false}});
        let prio = Expression::compile("event.data.vip ? 120 : 0").unwrap();
        assert_eq!(prio.eval_int(Bindings::event(&vip)), Ok(120));
        assert_eq!(prio.eval_int(Bindings::event(&plain)), Ok(0));
        let float = Expression::compile("event.data.p").unwrap();
        assert_eq!(float.eval_int(Bindings::event(&vip)), Ok(1));
        assert!(matches!(
            Expression::compile("'s'")
                .unwrap()
                .eval_int(Bindings::event(&vip)),
            Err(Error::Type { want: "int", .. })
        ));
        let key = Expression::compile("event.data.user").unwrap();
        assert_eq!(key.eval_json(Bindings::event(&vip)), Ok(json!("u1")));
        assert_eq!(
            Expression::compile("\"shared\"")
                .unwrap()
                .eval_json(Bindings::default()),
            Ok(json!("shared"))
        );
        for bad in ["event.data.go ==", "((", "event.data.'x'"] {
            assert!(
                matches!(Expression::compile(bad), Err(Error::Compile { .. })),
                "{bad}"
            );
        }
        assert_eq!(prio.source(), "event.data.vip ? 120 : 0");
    }
}
