//! `meta.k8s.io/v1` Tables, as `kubectl get` asks for them: the column definitions
//! kube-apiserver 1.37.2 serves for each built-in kind (`columns.json`, read from its Table
//! responses), cells computed as its printers compute them, and a custom resource's columns from
//! its CRD's `additionalPrinterColumns`.

mod cells;

use crate::registry::ResourceType;
use crate::util::{age, now_secs, parse_rfc3339};
use serde_json::{json, Value};
use std::sync::OnceLock;

fn builtin_columns() -> &'static Value {
    static COLS: OnceLock<Value> = OnceLock::new();
    COLS.get_or_init(|| {
        serde_json::from_str(include_str!("columns.json")).expect("columns.json is JSON")
    })
}

/// The Table of `items` of one resource type.
pub(crate) fn table(rt: &ResourceType, items: &[Value], rv: Option<u64>) -> Value {
    let now = now_secs();
    let (cols, rows): (Value, Vec<Value>) = if rt.crd.is_some() {
        custom(rt, items, now)
    } else {
        builtin(rt, items, now)
    };
    let rows: Vec<Value> = items
        .iter()
        .zip(rows)
        .map(|(o, cells)| json!({
            "cells": cells,
            "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o["metadata"].clone()}
        }))
        .collect();
    let mut t = json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {}, "columnDefinitions": cols, "rows": rows});
    if let Some(rv) = rv {
        t["metadata"]["resourceVersion"] = rv.to_string().into();
    }
    t
}

fn builtin(rt: &ResourceType, items: &[Value], now: i64) -> (Value, Vec<Value>) {
    let all = builtin_columns();
    match (&all[rt.kind.as_str()], cells::for_kind(&rt.kind)) {
        (Value::Array(_), Some(f)) => (
            all[rt.kind.as_str()].clone(),
            items.iter().map(|o| Value::Array(f(o, now))).collect(),
        ),
        // A kind without its own printer: the name and age, as a custom resource's.
        _ => (
            all["<custom>"].clone(),
            items
                .iter()
                .map(|o| json!([o["metadata"]["name"], created_age(o, now)]))
                .collect(),
        ),
    }
}

/// A custom resource: Name, then the CRD version's printer columns (or Age if it has none).
fn custom(rt: &ResourceType, items: &[Value], now: i64) -> (Value, Vec<Value>) {
    let all = builtin_columns();
    if rt.printer_columns.is_empty() {
        return builtin(rt, items, now);
    }
    let mut cols = vec![all["<custom>"][0].clone()];
    for c in &rt.printer_columns {
        let path = c["jsonPath"].as_str().unwrap_or("");
        cols.push(json!({
            "name": c["name"], "type": c["type"], "format": c["format"].as_str().unwrap_or(""),
            "description": c["description"].as_str().map(str::to_owned)
                .unwrap_or_else(|| format!("Custom resource definition column (in JSONPath format): {path}")),
            "priority": c["priority"].as_i64().unwrap_or(0),
        }));
    }
    let rows = items
        .iter()
        .map(|o| {
            let mut cells = vec![o["metadata"]["name"].clone()];
            for c in &rt.printer_columns {
                let v = json_path(o, c["jsonPath"].as_str().unwrap_or(""));
                cells.push(match (c["type"].as_str(), v) {
                    (Some("date"), Some(Value::String(t))) => {
                        parse_rfc3339(&t).map(|t| age(t, now)).unwrap_or(t).into()
                    }
                    (_, Some(v)) => v,
                    (_, None) => Value::Null,
                });
            }
            Value::Array(cells)
        })
        .collect();
    (Value::Array(cols), rows)
}

/// A simple JSONPath (`.status.phase`, `.spec.items[0].name`) into an object.
fn json_path(o: &Value, path: &str) -> Option<Value> {
    let mut cur = o;
    for seg in path
        .trim_start_matches('.')
        .split('.')
        .filter(|s| !s.is_empty())
    {
        let (field, index) = match seg.split_once('[') {
            Some((f, i)) => (f, i.trim_end_matches(']').parse::<usize>().ok()),
            None => (seg, None),
        };
        cur = cur.get(field)?;
        if let Some(i) = index {
            cur = cur.get(i)?;
        }
    }
    Some(cur.clone())
}

pub(crate) fn created_age(o: &Value, now: i64) -> Value {
    o["metadata"]["creationTimestamp"]
        .as_str()
        .and_then(parse_rfc3339)
        .map(|t| age(t, now))
        .unwrap_or_else(|| "<unknown>".into())
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_with_columns_has_cells_of_the_same_width() {
        let all = builtin_columns().as_object().unwrap();
        for (kind, cols) in all.iter().filter(|(k, _)| *k != "<custom>") {
            let f = cells::for_kind(kind).unwrap_or_else(|| panic!("no cells for {kind}"));
            let o = json!({"metadata": {"name": "x", "creationTimestamp": "2026-01-01T00:00:00Z"}});
            assert_eq!(f(&o, 0).len(), cols.as_array().unwrap().len(), "{kind}");
        }
    }

    #[test]
    fn json_paths_reach_fields_and_list_items() {
        let o = json!({"status": {"phase": "Ready", "items": [{"n": 1}]}});
        assert_eq!(json_path(&o, ".status.phase"), Some(json!("Ready")));
        assert_eq!(json_path(&o, ".status.items[0].n"), Some(json!(1)));
        assert_eq!(json_path(&o, ".spec.x"), None);
    }
}
