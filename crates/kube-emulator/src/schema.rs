//! A custom resource held to its CRD's structural schema, as kube-apiserver does: fields the
//! schema does not name are pruned (unless `x-kubernetes-preserve-unknown-fields`), and a value of
//! the wrong type is refused with the path and the type it must have.

use crate::registry::ResourceType;
use serde_json::Value;

/// Drops the empty string maps a built-in type declares `omitempty` (labels, annotations, a
/// ConfigMap's or Secret's data): kube-apiserver's Go types never store `{}` for them.
pub(crate) fn omit_empty_maps(rt: &ResourceType, obj: &mut Value) {
    let empty = |v: Option<&Value>| v.and_then(Value::as_object).is_some_and(|m| m.is_empty());
    if let Some(md) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        for k in ["labels", "annotations"] {
            if empty(md.get(k)) {
                md.remove(k);
            }
        }
    }
    if rt.group.is_empty() && matches!(rt.plural.as_str(), "configmaps" | "secrets") {
        if let Some(m) = obj.as_object_mut() {
            for k in ["data", "binaryData", "stringData"] {
                if empty(m.get(k)) {
                    m.remove(k);
                }
            }
        }
    }
}

/// Prunes `obj` in place and returns the type errors (`spec.size: must be of type integer`).
pub(crate) fn conform(obj: &mut Value, schema: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    if let Some(m) = obj.as_object_mut() {
        for (k, v) in m.iter_mut() {
            // apiVersion, kind and metadata are the server's; the rest follows the schema.
            if matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                continue;
            }
            walk(v, &schema["properties"][k.as_str()], k, &mut errors);
        }
        let known = |k: &str| {
            matches!(k, "apiVersion" | "kind" | "metadata") || !schema["properties"][k].is_null()
        };
        if !preserves(schema) {
            m.retain(|k, _| known(k));
        }
    }
    errors
}

fn preserves(s: &Value) -> bool {
    s["x-kubernetes-preserve-unknown-fields"] == true
}

fn walk(v: &mut Value, s: &Value, path: &str, errors: &mut Vec<String>) {
    if s.is_null() {
        return;
    }
    if let Some(t) = s["type"].as_str() {
        let nullable = v.is_null() && s["nullable"] == true;
        if !(has_type(v, t) || nullable) {
            errors.push(format!(
                "{path}: Invalid value: \"{}\": {path} in body must be of type {t}: \"{}\"",
                type_of(v),
                type_of(v)
            ));
            return;
        }
    }
    match v {
        Value::Object(m) => {
            let props = s["properties"].as_object();
            let extra = &s["additionalProperties"];
            for (k, child) in m.iter_mut() {
                let cs = props.and_then(|p| p.get(k)).unwrap_or(extra);
                walk(child, cs, &format!("{path}.{k}"), errors);
            }
            if !preserves(s) && extra.is_null() {
                if let Some(p) = props {
                    m.retain(|k, _| p.contains_key(k));
                } else if s["type"] == "object" {
                    m.clear();
                }
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter_mut().enumerate() {
                walk(child, &s["items"], &format!("{path}[{i}]"), errors);
            }
        }
        _ => {}
    }
}

fn has_type(v: &Value, t: &str) -> bool {
    match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        _ => true,
    }
}

fn type_of(v: &Value) -> &'static str {
    match v {
        Value::Object(_) => "object",
        Value::Array(_) => "array",
        Value::String(_) => "string",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::Null => "null",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_fields_are_pruned_and_wrong_types_refused() {
        let schema = json!({"type": "object", "properties": {
            "spec": {"type": "object", "properties": {"size": {"type": "integer"}}},
            "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}});
        let mut o = json!({"apiVersion": "a/v1", "kind": "W", "metadata": {"name": "w"},
            "spec": {"size": 3, "colour": "red"}, "free": {"any": 1}, "extra": 1});
        assert!(conform(&mut o, &schema).is_empty());
        assert_eq!(
            o,
            json!({"apiVersion": "a/v1", "kind": "W", "metadata": {"name": "w"},
            "spec": {"size": 3}, "free": {"any": 1}})
        );
        let mut bad = json!({"spec": {"size": "big"}});
        assert_eq!(
            conform(&mut bad, &schema),
            vec!["spec.size: Invalid value: \"string\": spec.size in body must be of type integer: \"string\""]
        );
    }
}
