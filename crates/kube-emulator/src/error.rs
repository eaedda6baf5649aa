//! API errors, rendered as `Status` objects with Kubernetes' reasons and codes.

use crate::registry::ResourceType;
use serde_json::{json, Value};

/// A failed request.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{reason} ({code}): {message}")]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Box<Details>,
}

/// What a `Status` says the error is about.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Details {
    pub name: Option<String>,
    pub group: Option<String>,
    pub kind: Option<String>,
    pub causes: Vec<Value>,
    /// For a 429: how long the client is asked to wait.
    pub retry_after_seconds: Option<u32>,
}

/// kube-apiserver's message for apply conflicts, `(manager, field)` each: one conflict on a line,
/// several grouped by manager in name order.
pub fn conflict_message(conflicts: &[(String, String)]) -> String {
    if let [(m, f)] = conflicts {
        return format!("Apply failed with 1 conflict: conflict with \"{m}\": {f}");
    }
    let mut by: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
    for (m, f) in conflicts {
        by.entry(m).or_default().push(f);
    }
    let lines: Vec<String> = by
        .iter()
        .flat_map(|(m, fs)| {
            std::iter::once(format!("conflicts with \"{m}\":"))
                .chain(fs.iter().map(|f| format!("- {f}")))
        })
        .collect();
    format!(
        "Apply failed with {} conflicts: {}",
        conflicts.len(),
        lines.join("\n")
    )
}

impl ApiError {
    fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: Box::default(),
        }
    }

    fn about(mut self, rt: &ResourceType, name: &str) -> Self {
        self.details.name = Some(name.to_owned());
        self.details.group = Some(rt.group.clone());
        self.details.kind = Some(rt.plural.clone());
        self
    }

    pub fn not_found(rt: &ResourceType, name: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", rt.qualified()),
        )
        .about(rt, name)
    }

    pub fn namespace_not_found(ns: &str) -> Self {
        let mut e = Self::new(404, "NotFound", format!("namespaces \"{ns}\" not found"));
        e.details.name = Some(ns.into());
        e.details.kind = Some("namespaces".into());
        e
    }

    pub fn already_exists(rt: &ResourceType, name: &str) -> Self {
        Self::new(
            409,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", rt.qualified()),
        )
        .about(rt, name)
    }

    pub fn conflict(rt: &ResourceType, name: &str, why: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": {why}",
                rt.qualified()
            ),
        )
        .about(rt, name)
    }

    /// A server-side apply conflict: kube-apiserver's Status names no object, only causes.
    pub fn apply_conflict(message: String, causes: Vec<Value>) -> Self {
        let mut e = Self::new(409, "Conflict", message);
        e.details.causes = causes;
        e
    }

    pub fn invalid(rt: &ResourceType, name: &str, field: &str, value: &str, why: &str) -> Self {
        let mut e = Self::new(
            422,
            "Invalid",
            format!(
                "{} \"{name}\" is invalid: {field}: Invalid value: \"{value}\": {why}",
                rt.kind
            ),
        )
        .about(rt, name);
        e.details.kind = Some(rt.kind.clone());
        e.details.causes = vec![
            json!({"reason": "FieldValueInvalid", "message": format!("Invalid value: \"{value}\": {why}"), "field": field}),
        ];
        e
    }

    pub fn invalid_message(rt: &ResourceType, name: &str, message: &str) -> Self {
        let mut e = Self::new(
            422,
            "Invalid",
            format!("{} \"{name}\" is invalid: {message}", rt.kind),
        )
        .about(rt, name);
        e.details.kind = Some(rt.kind.clone());
        e
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    pub fn forbidden(rt: &ResourceType, name: &str, why: &str) -> Self {
        Self::new(
            403,
            "Forbidden",
            format!("{} \"{name}\" is forbidden: {why}", rt.qualified()),
        )
        .about(rt, name)
    }

    /// A request without the server's bearer token, as kube-apiserver refuses it.
    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized")
    }

    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(405, "MethodNotAllowed", message)
    }

    pub fn not_found_path(path: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("the server could not find the requested resource ({path})"),
        )
    }

    pub fn unsupported_media(ct: &str) -> Self {
        Self::new(415, "UnsupportedMediaType", format!("the body of the request was in an unknown format - accepted media types include: application/json, application/yaml ({ct} is not)"))
    }

    pub fn gone(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "InternalError", message)
    }

    pub fn too_many_requests() -> Self {
        Self::new(
            429,
            "TooManyRequests",
            "the server has received too many requests and has asked us to try again later",
        )
    }

    /// A write against an object that changed meanwhile (optimistic concurrency).
    pub fn stale_write() -> Self {
        Self::new(
            409,
            "Conflict",
            "Operation cannot be fulfilled: the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// A 429 asking the client to wait `seconds`.
    pub fn too_many_requests_for(seconds: u32) -> Self {
        let mut e = Self::too_many_requests();
        e.details.retry_after_seconds = Some(seconds);
        e
    }

    /// The `Status` object.
    pub fn status(&self) -> Value {
        let mut details = serde_json::Map::new();
        if let Some(n) = &self.details.name {
            details.insert("name".into(), n.clone().into());
        }
        if let Some(g) = &self.details.group {
            if !g.is_empty() {
                details.insert("group".into(), g.clone().into());
            }
        }
        if let Some(k) = &self.details.kind {
            details.insert("kind".into(), k.clone().into());
        }
        if !self.details.causes.is_empty() {
            details.insert("causes".into(), Value::Array(self.details.causes.clone()));
        }
        if let Some(s) = self.details.retry_after_seconds {
            details.insert("retryAfterSeconds".into(), s.into());
        }
        let mut s = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if !details.is_empty() {
            s["details"] = Value::Object(details);
        }
        s
    }
}
