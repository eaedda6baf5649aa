//! Patch semantics: JSON patch, merge patch, strategic merge patch (lists merged by key), and
//! server-side apply with field managers.

use serde_json::{Map, Value};

/// The merge key of a list item, if the list merges by key rather than being replaced.
fn merge_key(item: &Value) -> Option<(&'static str, Value)> {
    for k in [
        "name",
        "containerPort",
        "mountPath",
        "port",
        "ip",
        "devicePath",
    ] {
        if let Some(v) = item.get(k) {
            if !v.is_null() {
                return Some((k, v.clone()));
            }
        }
    }
    None
}

fn is_keyed_list(items: &[Value]) -> bool {
    !items.is_empty()
        && items
            .iter()
            .all(|i| i.is_object() && merge_key(i).is_some())
}

/// Applies a strategic merge patch: maps merge, `null` deletes, lists of objects with a merge
/// key (`name`, `containerPort`, ...) merge item by item, other lists are replaced. Directives
/// (`$patch`, `$setElementOrder/...`, `$retainKeys`, `$deleteFromPrimitiveList/...`) are honoured
/// or dropped.
pub fn strategic_merge(target: &mut Value, patch: &Value) {
    let Some(pm) = patch.as_object() else {
        *target = patch.clone();
        return;
    };
    if pm.get("$patch").and_then(|v| v.as_str()) == Some("replace") {
        let mut p = pm.clone();
        p.remove("$patch");
        *target = Value::Object(p);
        return;
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Some(tm) = target.as_object_mut() else {
        return;
    };
    for (k, v) in pm {
        if let Some(list) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(cur)), Some(del)) = (tm.get_mut(list), v.as_array()) {
                cur.retain(|x| !del.contains(x));
            }
            continue;
        }
        if k.starts_with('$') {
            continue;
        }
        match v {
            Value::Null => {
                tm.remove(k);
            }
            Value::Array(items) => {
                let cur = tm.get_mut(k);
                match cur {
                    Some(Value::Array(existing))
                        if is_keyed_list(existing)
                            && items
                                .iter()
                                .all(|i| i.is_object() && merge_key(i).is_some()) =>
                    {
                        for item in items {
                            let (mk, mv) = merge_key(item).unwrap_or(("name", Value::Null));
                            let pos = existing.iter().position(|e| e.get(mk) == Some(&mv));
                            let delete =
                                item.get("$patch").and_then(|d| d.as_str()) == Some("delete");
                            match (pos, delete) {
                                (Some(p), true) => {
                                    existing.remove(p);
                                }
                                (None, true) => {}
                                (Some(p), false) => strategic_merge(&mut existing[p], item),
                                (None, false) => {
                                    let mut fresh = Value::Object(Map::new());
                                    strategic_merge(&mut fresh, item);
                                    existing.push(fresh);
                                }
                            }
                        }
                    }
                    _ => {
                        let cleaned: Vec<Value> = items
                            .iter()
                            .filter(|i| i.get("$patch").and_then(|d| d.as_str()) != Some("delete"))
                            .map(|i| {
                                let mut fresh = Value::Object(Map::new());
                                if i.is_object() {
                                    strategic_merge(&mut fresh, i);
                                    fresh
                                } else {
                                    i.clone()
                                }
                            })
                            .collect();
                        tm.insert(k.clone(), Value::Array(cleaned));
                    }
                }
            }
            Value::Object(_) => {
                if v.get("$patch").and_then(|d| d.as_str()) == Some("delete") {
                    tm.remove(k);
                    continue;
                }
                let entry = tm
                    .entry(k.clone())
                    .or_insert_with(|| Value::Object(Map::new()));
                strategic_merge(entry, v);
            }
            _ => {
                tm.insert(k.clone(), v.clone());
            }
        }
    }
}

/// RFC 7386 merge patch.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    json_patch::merge(target, patch);
}

/// RFC 6902 JSON patch.
pub fn json_patch(target: &mut Value, patch: &Value) -> Result<(), String> {
    let p: json_patch::Patch =
        serde_json::from_value(patch.clone()).map_err(|e| format!("invalid JSON patch: {e}"))?;
    json_patch::patch(target, &p).map_err(|e| e.to_string())
}

/// One step of a field path, as in `managedFields` (`f:spec`, `k:{"name":"x"}`).
pub type Path = Vec<String>;

const SKIP_TOP: [&str; 2] = ["apiVersion", "kind"];
const SKIP_META: [&str; 8] = [
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "deletionTimestamp",
];

/// The leaf field paths set in an object (what a manager owns when it sets that object).
pub fn leaf_paths(obj: &Value) -> Vec<Path> {
    let mut out = Vec::new();
    if let Some(m) = obj.as_object() {
        for (k, v) in m {
            if SKIP_TOP.contains(&k.as_str()) || k == "status" {
                continue;
            }
            if k == "metadata" {
                if let Some(mm) = v.as_object() {
                    for (mk, mv) in mm {
                        if SKIP_META.contains(&mk.as_str()) {
                            continue;
                        }
                        walk(mv, vec!["f:metadata".into(), format!("f:{mk}")], &mut out);
                    }
                }
                continue;
            }
            walk(v, vec![format!("f:{k}")], &mut out);
        }
    }
    out
}

fn walk(v: &Value, path: Path, out: &mut Vec<Path>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, c) in m {
                let mut p = path.clone();
                p.push(format!("f:{k}"));
                walk(c, p, out);
            }
        }
        Value::Array(items) if is_keyed_list(items) => {
            for item in items {
                let (mk, mv) = merge_key(item).unwrap_or(("name", Value::Null));
                let mut key = Map::new();
                key.insert(mk.to_owned(), mv);
                let mut p = path.clone();
                p.push(format!("k:{}", Value::Object(key)));
                // The key field itself is part of the item's identity, not a leaf of its own.
                let mut rest = item.clone();
                if let Some(o) = rest.as_object_mut() {
                    o.remove(mk);
                }
                if rest.as_object().is_some_and(|o| o.is_empty()) {
                    out.push(p);
                } else {
                    walk(&rest, p, out);
                }
            }
        }
        _ => out.push(path),
    }
}

/// The value at a field path.
pub fn get_path<'a>(obj: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut cur = obj;
    for seg in path {
        cur = step(cur, seg)?;
    }
    Some(cur)
}

fn step<'a>(cur: &'a Value, seg: &str) -> Option<&'a Value> {
    if let Some(f) = seg.strip_prefix("f:") {
        cur.get(f)
    } else if let Some(k) = seg.strip_prefix("k:") {
        let key: Map<String, Value> = serde_json::from_str(k).ok()?;
        cur.as_array()?
            .iter()
            .find(|i| key.iter().all(|(kk, kv)| i.get(kk) == Some(kv)))
    } else {
        None
    }
}

/// Removes the field at a path (and empty parents it leaves behind are kept, as Kubernetes does).
pub fn remove_path(obj: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cur = obj;
    for seg in parents {
        let next = if let Some(f) = seg.strip_prefix("f:") {
            cur.get_mut(f)
        } else if let Some(k) = seg.strip_prefix("k:") {
            let Ok(key) = serde_json::from_str::<Map<String, Value>>(k) else {
                return;
            };
            cur.as_array_mut().and_then(|a| {
                a.iter_mut()
                    .find(|i| key.iter().all(|(kk, kv)| i.get(kk) == Some(kv)))
            })
        } else {
            None
        };
        match next {
            Some(n) => cur = n,
            None => return,
        }
    }
    if let Some(f) = last.strip_prefix("f:") {
        if let Some(m) = cur.as_object_mut() {
            m.remove(f);
        }
    } else if let Some(k) = last.strip_prefix("k:") {
        if let (Ok(key), Some(a)) = (
            serde_json::from_str::<Map<String, Value>>(k),
            cur.as_array_mut(),
        ) {
            a.retain(|i| !key.iter().all(|(kk, kv)| i.get(kk) == Some(kv)));
        }
    }
}

/// Encodes paths as a `fieldsV1` trie.
pub fn fields_v1(paths: &[Path]) -> Value {
    let mut root = Map::new();
    for p in paths {
        let mut cur = &mut root;
        for seg in p {
            let e = cur
                .entry(seg.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            let Some(m) = e.as_object_mut() else { break };
            cur = m;
        }
    }
    Value::Object(root)
}

/// Decodes a `fieldsV1` trie into its leaf paths.
pub fn paths_of_fields_v1(v: &Value) -> Vec<Path> {
    fn rec(v: &Value, prefix: &mut Path, out: &mut Vec<Path>) {
        match v.as_object() {
            Some(m) if !m.is_empty() => {
                for (k, c) in m {
                    if k == "." {
                        continue;
                    }
                    prefix.push(k.clone());
                    rec(c, prefix, out);
                    prefix.pop();
                }
            }
            _ => out.push(prefix.clone()),
        }
    }
    let mut out = Vec::new();
    rec(v, &mut Vec::new(), &mut out);
    out
}

/// The paths whose values differ between two objects (added, removed or changed leaves).
pub fn changed_paths(old: &Value, new: &Value) -> Vec<Path> {
    let mut out: Vec<Path> = leaf_paths(new)
        .into_iter()
        .filter(|p| get_path(old, p) != get_path(new, p))
        .collect();
    for p in leaf_paths(old) {
        if get_path(new, &p).is_none() && !out.contains(&p) {
            out.push(p);
        }
    }
    out
}

/// Renders a path as Kubernetes does in conflict messages: `.spec.replicas`, `.data.key`.
pub fn display_path(p: &[String]) -> String {
    let mut s = String::new();
    for seg in p {
        if let Some(f) = seg.strip_prefix("f:") {
            s.push('.');
            s.push_str(f);
        } else if let Some(k) = seg.strip_prefix("k:") {
            s.push('[');
            s.push_str(&k.replace(['{', '}', '"'], "").replace(':', "="));
            s.push(']');
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strategic_merge_merges_named_lists_and_honours_directives() {
        let mut t = json!({"spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}], "replicas": 1}});
        strategic_merge(
            &mut t,
            &json!({"spec": {"$setElementOrder/containers": [{"name": "a"}], "containers": [{"name": "a", "image": "z"}, {"name": "b", "$patch": "delete"}], "replicas": null}}),
        );
        assert_eq!(
            t,
            json!({"spec": {"containers": [{"name": "a", "image": "z"}]}})
        );
        let mut t = json!({"args": ["1", "2"]});
        strategic_merge(&mut t, &json!({"args": ["3"]}));
        assert_eq!(t, json!({"args": ["3"]}));
    }

    #[test]
    fn leaf_paths_round_trip_through_fields_v1() {
        let o = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "labels": {"a": "b"}}, "data": {"k": "v"}, "spec": {"ports": [{"name": "http", "port": 80}]}});
        let mut paths = leaf_paths(&o);
        paths.sort();
        let mut back = paths_of_fields_v1(&fields_v1(&paths));
        back.sort();
        assert_eq!(paths, back);
        assert!(paths.contains(&vec!["f:data".to_string(), "f:k".to_string()]));
        assert!(paths.contains(&vec![
            "f:spec".into(),
            "f:ports".into(),
            "k:{\"name\":\"http\"}".into(),
            "f:port".into()
        ]));
        let mut o2 = o.clone();
        remove_path(
            &mut o2,
            &[
                "f:spec".into(),
                "f:ports".into(),
                "k:{\"name\":\"http\"}".into(),
            ],
        );
        assert_eq!(o2["spec"]["ports"], json!([]));
        assert_eq!(display_path(&["f:data".into(), "f:k".into()]), ".data.k");
    }
}
