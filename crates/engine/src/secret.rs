//! Secret values that cannot be persisted.
//!
//! A [`Secret`] holds a value and a [`SecretRef`] saying where the value lives (Secrets Manager, a
//! Kubernetes Secret). Serializing a `Secret` writes only the reference; `Debug` and `Display`
//! print a placeholder. Every secret made in this process is also registered with a redactor, so
//! [`redact`] can scrub it out of free text (hook output, error messages from remote services).

use serde::{Deserialize, Serialize, Serializer};
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};

/// Where a secret value lives. This is what journals, events and reports hold.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SecretRef {
    /// The store: `aws-secretsmanager`, `kubernetes`, ...
    pub store: String,
    /// The locator within the store: an ARN, `namespace/name`, ...
    pub id: String,
    /// The key within the secret, when it holds several.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// One version of the secret (a Secrets Manager version id), when not the current one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

impl SecretRef {
    /// A reference to `id` in `store`.
    pub fn new(store: impl Into<String>, id: impl Into<String>) -> Self {
        SecretRef {
            store: store.into(),
            id: id.into(),
            key: None,
            version: None,
        }
    }

    /// The same reference pinned to one version.
    pub fn at_version(mut self, version: impl Into<String>) -> Self {
        self.version = Some(version.into());
        self
    }

    /// The same reference narrowed to one key.
    pub fn with_key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }
}

impl SecretRef {
    /// Reads a reference from a step output: a `SecretRef` itself, or a serialized [`Secret`]
    /// (`{"secret_ref": ...}`).
    pub fn from_output(v: &serde_json::Value) -> Option<SecretRef> {
        let inner = v.get("secret_ref").unwrap_or(v);
        serde_json::from_value(inner.clone()).ok()
    }
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.store, self.id)?;
        if let Some(v) = &self.version {
            write!(f, "@{v}")?;
        }
        match &self.key {
            Some(k) => write!(f, "#{k}"),
            None => Ok(()),
        }
    }
}

/// A secret value together with its reference. Serializes as `{"secret_ref": ...}` only.
#[derive(Clone)]
pub struct Secret {
    reference: SecretRef,
    value: Arc<str>,
}

impl Secret {
    /// Wraps a value. The value is registered with the process-wide redactor.
    pub fn new(reference: SecretRef, value: impl Into<String>) -> Self {
        let value: Arc<str> = Arc::from(value.into());
        register_redaction(&value);
        Secret { reference, value }
    }

    /// Where the value lives.
    pub fn reference(&self) -> &SecretRef {
        &self.reference
    }

    /// The value itself. Name the call site: every use is a place a secret leaves this type.
    pub fn expose(&self) -> &str {
        &self.value
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({} = ***)", self.reference)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (***)", self.reference)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct AsRef<'a> {
            secret_ref: &'a SecretRef,
        }
        AsRef {
            secret_ref: &self.reference,
        }
        .serialize(serializer)
    }
}

const REDACTED: &str = "***";

fn redactor() -> &'static Mutex<Vec<Arc<str>>> {
    static R: OnceLock<Mutex<Vec<Arc<str>>>> = OnceLock::new();
    R.get_or_init(|| Mutex::new(Vec::new()))
}

/// Registers a value to be scrubbed by [`redact`]. Values shorter than 8 characters are ignored:
/// they would mangle ordinary text (a sandbox's placeholder license `sandbox`), and none of the
/// real ones is that short (RDS passwords have at least 8, Redis AUTH tokens at least 16).
///
/// The value's base64 form is registered too: that is how a Kubernetes Secret's `data` carries it.
pub fn register_redaction(value: &str) {
    use base64::Engine as _;
    if value.len() < 8 {
        return;
    }
    let encoded = base64::engine::general_purpose::STANDARD.encode(value);
    let mut list = redactor().lock().unwrap_or_else(|e| e.into_inner());
    for form in [value, encoded.as_str()] {
        if !list.iter().any(|v| &**v == form) {
            list.push(Arc::from(form));
        }
    }
    // Longest first, so a secret that contains another is scrubbed whole.
    list.sort_by_key(|v| std::cmp::Reverse(v.len()));
}

/// Replaces every registered secret value in `text` with `***`.
pub fn redact(text: &str) -> String {
    let list = redactor().lock().unwrap_or_else(|e| e.into_inner());
    let mut out = text.to_owned();
    for v in list.iter() {
        if out.contains(&**v) {
            out = out.replace(&**v, REDACTED);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_serializes_only_as_its_reference() {
        let s = Secret::new(
            SecretRef::new("aws-secretsmanager", "arn:aws:secretsmanager:x:1:secret:db")
                .with_key("password"),
            "hunter2-very-secret",
        );
        let json = serde_json::to_string(&s).unwrap();
        assert!(!json.contains("hunter2"), "{json}");
        assert!(json.contains("secret_ref") && json.contains("arn:aws:secretsmanager"));
        assert!(!format!("{s:?}").contains("hunter2"));
        assert!(!format!("{s}").contains("hunter2"));
        // Nested in outputs, still only the reference.
        let outputs = serde_json::json!({ "password": s });
        assert!(!outputs.to_string().contains("hunter2"));
        assert_eq!(s.expose(), "hunter2-very-secret");
    }

    #[test]
    fn redact_scrubs_registered_values() {
        let _s = Secret::new(SecretRef::new("k8s", "ns/x"), "p4ssw0rd-xyz");
        assert_eq!(redact("login with p4ssw0rd-xyz now"), "login with *** now");
        assert_eq!(redact("nothing here"), "nothing here");
        // As a Kubernetes Secret's data carries it.
        assert_eq!(
            redact("{\"password\":\"cDRzc3cwcmQteHl6\"}"),
            "{\"password\":\"***\"}"
        );
    }
}
