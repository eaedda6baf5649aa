//! Field-level differences between a live object and the one wbstack would apply.

use serde_json::Value;
use wbstack_engine::Change;

/// Every leaf that differs between `live` and `want`, named by its dotted path under `prefix`.
/// A value shown is at most 80 characters.
pub fn changes(prefix: &str, live: &Value, want: &Value) -> Vec<Change> {
    let mut out = Vec::new();
    walk(prefix, live, want, &mut out);
    out
}

fn walk(path: &str, live: &Value, want: &Value, out: &mut Vec<Change>) {
    match (live, want) {
        (Value::Object(l), Value::Object(w)) => {
            let mut keys: Vec<&String> = l.keys().chain(w.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let (a, b) = (
                    l.get(k).unwrap_or(&Value::Null),
                    w.get(k).unwrap_or(&Value::Null),
                );
                walk(&format!("{path}.{k}"), a, b, out);
            }
        }
        (a, b) if a != b => out.push(Change::in_place(path, shown(a), shown(b))),
        _ => {}
    }
}

fn shown(v: &Value) -> String {
    let s = match v {
        Value::Null => "(none)".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if s.chars().count() > 80 {
        format!("{}...", s.chars().take(77).collect::<String>())
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn leaves_that_differ_are_named_by_their_path() {
        let live =
            json!({"global": {"host": "https://edited.example.com", "extra": 1}, "same": true});
        let want = json!({"global": {"host": "https://wandb.example.com"}, "same": true});
        let c = changes("spec.values", &live, &want);
        let shown: Vec<String> = c.iter().map(|c| c.to_string()).collect();
        assert_eq!(
            shown,
            [
                "spec.values.global.extra: 1 -> (none)",
                "spec.values.global.host: https://edited.example.com -> https://wandb.example.com"
            ]
        );
        assert!(changes("x", &want, &want).is_empty());
    }
}
