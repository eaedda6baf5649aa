//! The emulator judged by a real kube-apiserver: the same request sequences go to both (through
//! curl, a client neither side wrote), and the responses are compared after normalising what
//! differs by nature (uids, timestamps, resourceVersions). Every difference is either fixed in the
//! emulator or listed, with its reason, in `tests/differential-known.tsv`.

use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Stdio};
use wbstack_test_support::Env;

/// One server and how to reach it.
struct Api {
    base: String,
    token: String,
    ca: Option<std::path::PathBuf>,
}

impl Api {
    fn from_kubeconfig(path: &std::path::Path) -> Api {
        let kc: Value = serde_yaml_ng::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let cluster = &kc["clusters"][0]["cluster"];
        Api {
            base: cluster["server"].as_str().unwrap().to_owned(),
            token: kc["users"][0]["user"]["token"].as_str().unwrap().to_owned(),
            ca: cluster["certificate-authority"]
                .as_str()
                .map(std::path::PathBuf::from),
        }
    }

    /// (status code, body as JSON, or as newline-separated JSON documents for a watch).
    fn call(&self, s: &Step, path: &str, body: Option<&str>) -> (u16, Value) {
        let mut c = Command::new("curl");
        c.args(["-sS", "--max-time", "10", "-X", s.method])
            .args(["-H", &format!("Authorization: Bearer {}", self.token)])
            .args(["-w", "\n%{http_code}"]);
        if let Some(ca) = &self.ca {
            c.arg("--cacert").arg(ca);
        }
        if let Some(a) = s.accept {
            c.args(["-H", &format!("Accept: {a}")]);
        }
        if let Some(b) = body {
            c.args(["-H", &format!("Content-Type: {}", s.content_type)])
                .args(["--data-binary", b]);
        }
        let out = c
            .arg(format!("{}{path}", self.base))
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
        let code: u16 = code.trim().parse().unwrap_or(0);
        // One JSON document (pretty-printed by kube-apiserver), or a watch's one per line.
        let v = match serde_json::from_str::<Value>(body) {
            Ok(v) if !s.path.contains("watch=1") => v,
            _ => Value::Array(
                body.lines()
                    .filter(|l| !l.trim().is_empty())
                    .map(|l| serde_json::from_str(l).unwrap_or(json!({ "text": l })))
                    .collect(),
            ),
        };
        (code, v)
    }
}

/// One request; `{name}` in the path or body is a resourceVersion saved earlier by `save`.
struct Step {
    id: &'static str,
    method: &'static str,
    path: &'static str,
    content_type: &'static str,
    accept: Option<&'static str>,
    body: Option<Value>,
    save: Option<&'static str>,
    /// Poll until the response satisfies this (a CRD becoming served, a namespace gone).
    until: Option<fn(u16, &Value) -> bool>,
}

fn step(id: &'static str, method: &'static str, path: &'static str) -> Step {
    Step {
        id,
        method,
        path,
        content_type: "application/json",
        accept: None,
        body: None,
        save: None,
        until: None,
    }
}

impl Step {
    fn body(mut self, b: Value) -> Self {
        self.body = Some(b);
        self
    }
    fn ct(mut self, c: &'static str) -> Self {
        self.content_type = c;
        self
    }
    fn accept(mut self, a: &'static str) -> Self {
        self.accept = Some(a);
        self
    }
    fn save(mut self, s: &'static str) -> Self {
        self.save = Some(s);
        self
    }
    fn until(mut self, done: fn(u16, &Value) -> bool) -> Self {
        self.until = Some(done);
        self
    }
}

const NS: &str = "/api/v1/namespaces";
const CMS: &str = "/api/v1/namespaces/diff/configmaps";

fn cm(name: &str, labels: Value, data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "labels": labels}, "data": data})
}

fn sequences() -> Vec<Step> {
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "diff"}});
    let widget_crd = json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.diff.example.com"},
        "spec": {"group": "diff.example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "additionalPrinterColumns": [
                    {"name": "Size", "type": "integer", "jsonPath": ".spec.size", "description": "How big"},
                    {"name": "Colour", "type": "string", "jsonPath": ".spec.colour", "priority": 1},
                    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}],
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "properties": {"size": {"type": "integer"}}}}}}}]}});
    let pending_pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
        "spec": {"nodeName": "no-such-node", "containers": [{"name": "c", "image": "busybox"}]}});
    let event = json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "a.1"},
        "involvedObject": {"kind": "ConfigMap", "namespace": "diff", "name": "a", "apiVersion": "v1"},
        "reason": "Tested", "message": "a test event", "type": "Normal", "count": 2,
        "source": {"component": "differential"},
        "firstTimestamp": "2026-01-01T00:00:00Z", "lastTimestamp": "2026-01-01T00:00:00Z"});
    vec![
        // Namespaces.
        step("ns-create", "POST", NS).body(ns.clone()),
        step("ns-get", "GET", "/api/v1/namespaces/diff"),
        step("ns-create-again", "POST", NS).body(ns),
        // Create, get, list with selectors and limits.
        step("cm-create-a", "POST", CMS)
            .body(cm("a", json!({"app": "x"}), json!({"k": "v"})))
            .save("a"),
        step("cm-create-b", "POST", CMS).body(cm("b", json!({"app": "y"}), json!({}))),
        step("cm-get", "GET", "/api/v1/namespaces/diff/configmaps/a"),
        step("cm-get-missing", "GET", "/api/v1/namespaces/diff/configmaps/nope"),
        step(
            "cm-list-selector",
            "GET",
            "/api/v1/namespaces/diff/configmaps?labelSelector=app%3Dx",
        ),
        step(
            "cm-list-set-selector",
            "GET",
            "/api/v1/namespaces/diff/configmaps?labelSelector=app%20in%20(x,y)",
        ),
        step(
            "cm-list-limit",
            "GET",
            "/api/v1/namespaces/diff/configmaps?labelSelector=app&limit=1",
        ),
        // Update, and an update with a stale resourceVersion.
        step("cm-update", "PUT", "/api/v1/namespaces/diff/configmaps/a").body(json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "a", "resourceVersion": "{a}", "labels": {"app": "x"}},
            "data": {"k": "v2"}})),
        step("cm-update-stale", "PUT", "/api/v1/namespaces/diff/configmaps/a").body(json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "a", "resourceVersion": "{a}"}, "data": {"k": "v3"}})),
        // Patches.
        step("cm-merge-patch", "PATCH", "/api/v1/namespaces/diff/configmaps/a")
            .ct("application/merge-patch+json")
            .body(json!({"data": {"m": "1"}})),
        step("cm-json-patch", "PATCH", "/api/v1/namespaces/diff/configmaps/a")
            .ct("application/json-patch+json")
            .body(json!([{"op": "add", "path": "/data/j", "value": "2"}])),
        step("cm-json-patch-test-fails", "PATCH", "/api/v1/namespaces/diff/configmaps/a")
            .ct("application/json-patch+json")
            .body(json!([{"op": "test", "path": "/data/k", "value": "nope"}])),
        step("cm-strategic-patch", "PATCH", "/api/v1/namespaces/diff/configmaps/a")
            .ct("application/strategic-merge-patch+json")
            .body(json!({"data": {"s": "3"}})),
        // Server-side apply: ownership, a conflict, force.
        step(
            "ssa-alice",
            "PATCH",
            "/api/v1/namespaces/diff/configmaps/c?fieldManager=alice",
        )
        .ct("application/apply-patch+yaml")
        .body(cm("c", json!({}), json!({"owner": "alice"}))),
        step(
            "ssa-bob-conflict",
            "PATCH",
            "/api/v1/namespaces/diff/configmaps/c?fieldManager=bob",
        )
        .ct("application/apply-patch+yaml")
        .body(cm("c", json!({}), json!({"owner": "bob"}))),
        step(
            "ssa-bob-force",
            "PATCH",
            "/api/v1/namespaces/diff/configmaps/c?fieldManager=bob&force=true",
        )
        .ct("application/apply-patch+yaml")
        .body(cm("c", json!({}), json!({"owner": "bob"}))),
        step("ssa-get", "GET", "/api/v1/namespaces/diff/configmaps/c"),
        // Invalid objects.
        step("cm-invalid-name", "POST", CMS).body(cm("Bad_Name", json!({}), json!({}))),
        // Finalizers and deletion.
        step("fin-create", "POST", CMS).body(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "f", "finalizers": ["example.com/hold"]}})),
        step("fin-delete", "DELETE", "/api/v1/namespaces/diff/configmaps/f"),
        step("fin-get-terminating", "GET", "/api/v1/namespaces/diff/configmaps/f"),
        step("fin-release", "PATCH", "/api/v1/namespaces/diff/configmaps/f")
            .ct("application/merge-patch+json")
            .body(json!({"metadata": {"finalizers": null}})),
        step("fin-get-gone", "GET", "/api/v1/namespaces/diff/configmaps/f"),
        step("cm-delete-missing", "DELETE", "/api/v1/namespaces/diff/configmaps/f"),
        // Watch from a resourceVersion: only what came after it.
        step("watch-mark", "POST", CMS)
            .body(cm("w1", json!({"w": "1"}), json!({})))
            .save("w"),
        step("watch-create", "POST", CMS).body(cm("w2", json!({"w": "1"}), json!({}))),
        step("watch-modify", "PATCH", "/api/v1/namespaces/diff/configmaps/w2")
            .ct("application/merge-patch+json")
            .body(json!({"data": {"x": "y"}})),
        step("watch-delete", "DELETE", "/api/v1/namespaces/diff/configmaps/w1"),
        step(
            "watch-from",
            "GET",
            "/api/v1/namespaces/diff/configmaps?watch=1&labelSelector=w&resourceVersion={w}&timeoutSeconds=1",
        ),
        // A watch from the first resourceVersion: every event since the server started (both
        // keep their whole history while nothing has been evicted from it).
        step(
            "watch-from-start",
            "GET",
            "/api/v1/namespaces/diff/configmaps?watch=1&labelSelector=w&resourceVersion=1&timeoutSeconds=1",
        ),
        // A watch that sends the current objects first, then a bookmark marking their end.
        step(
            "watch-initial-events",
            "GET",
            "/api/v1/namespaces/diff/configmaps?watch=1&labelSelector=app&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=1",
        ),
        step(
            "list-bad-continue",
            "GET",
            "/api/v1/namespaces/diff/configmaps?limit=1&continue=bm90LWEtdG9rZW4",
        ),
        // Table output, as kubectl asks for it.
        step(
            "table",
            "GET",
            "/api/v1/namespaces/diff/configmaps?labelSelector=app",
        )
        .accept("application/json;as=Table;v=v1;g=meta.k8s.io"),
        // Tables of pods and events, the columns kubectl shows for them.
        step("pod-create", "POST", "/api/v1/namespaces/diff/pods").body(pending_pod),
        step("pod-table", "GET", "/api/v1/namespaces/diff/pods")
            .accept("application/json;as=Table;v=v1;g=meta.k8s.io"),
        step(
            "pod-delete-now",
            "DELETE",
            "/api/v1/namespaces/diff/pods/p?gracePeriodSeconds=0",
        ),
        step("event-create", "POST", "/api/v1/namespaces/diff/events").body(event),
        step("event-table", "GET", "/api/v1/namespaces/diff/events")
            .accept("application/json;as=Table;v=v1;g=meta.k8s.io"),
        // CRD registration and structural pruning.
        step(
            "crd-create",
            "POST",
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        )
        .body(widget_crd),
        step(
            "crd-served",
            "GET",
            "/apis/diff.example.com/v1/namespaces/diff/widgets",
        )
        .until(|code, _| code == 200),
        step(
            "cr-create-pruned",
            "POST",
            "/apis/diff.example.com/v1/namespaces/diff/widgets",
        )
        .body(json!({"apiVersion": "diff.example.com/v1", "kind": "Widget",
            "metadata": {"name": "w"}, "spec": {"size": 3, "colour": "red"}, "extra": 1})),
        step(
            "cr-wrong-type",
            "POST",
            "/apis/diff.example.com/v1/namespaces/diff/widgets",
        )
        .body(json!({"apiVersion": "diff.example.com/v1", "kind": "Widget",
            "metadata": {"name": "v"}, "spec": {"size": "big"}})),
        step(
            "cr-list",
            "GET",
            "/apis/diff.example.com/v1/namespaces/diff/widgets",
        ),
        // A custom resource's Table: the CRD's printer columns.
        step(
            "cr-table",
            "GET",
            "/apis/diff.example.com/v1/namespaces/diff/widgets",
        )
        .accept("application/json;as=Table;v=v1;g=meta.k8s.io"),
        // Namespace deletion: held by an object's finalizer, refusing new content, its
        // content deleted, then gone once the finalizer is released.
        step("ns-hold", "POST", CMS).body(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "held", "finalizers": ["example.com/hold"]}})),
        step("ns-delete", "DELETE", "/api/v1/namespaces/diff"),
        step("ns-create-in-terminating", "POST", CMS).body(cm("late", json!({}), json!({}))),
        step("ns-content-deleting", "GET", "/api/v1/namespaces/diff/configmaps/held")
            .until(|_, v| !v["metadata"]["deletionTimestamp"].is_null()),
        step("ns-content-left", "GET", CMS)
            .until(|_, v| v["items"].as_array().is_some_and(|i| i.len() == 1)),
        step("ns-release", "PATCH", "/api/v1/namespaces/diff/configmaps/held")
            .ct("application/merge-patch+json")
            .body(json!({"metadata": {"finalizers": null}})),
        step("ns-gone", "GET", "/api/v1/namespaces/diff").until(|code, _| code == 404),
        step("ns-list-gone", "GET", CMS),
    ]
}

/// Removes what differs by nature between two servers.
fn normalise(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for k in [
                "uid",
                "creationTimestamp",
                "resourceVersion",
                "time",
                "selfLink",
            ] {
                m.remove(k);
            }
            if m.get("continue").is_some_and(|c| c == "") {
                m.remove("continue");
            }
            for k in ["deletionTimestamp", "continue"] {
                if let Some(x) = m.get_mut(k) {
                    *x = json!("<set>");
                }
            }
            // A Table's cells are compared, but for ages and times (columns of type date, and
            // Age, Last Seen and First Seen); its rows' objects are compared as any object.
            let timed: Vec<usize> = m
                .get("columnDefinitions")
                .and_then(Value::as_array)
                .map(|cols| {
                    cols.iter()
                        .enumerate()
                        .filter(|(_, c)| {
                            c["format"] == "date"
                                || c["type"] == "date"
                                || matches!(
                                    c["name"].as_str(),
                                    Some("Age" | "Last Seen" | "First Seen")
                                )
                        })
                        .map(|(i, _)| i)
                        .collect()
                })
                .unwrap_or_default();
            if let Some(Value::Array(rows)) = m.get_mut("rows") {
                for r in rows {
                    if let Some(Value::Array(cells)) = r.get_mut("cells") {
                        for i in &timed {
                            if let Some(c) = cells.get_mut(*i) {
                                *c = json!("<time>");
                            }
                        }
                    }
                }
            }
            m.values_mut().for_each(normalise);
        }
        Value::Array(a) => a.iter_mut().for_each(normalise),
        _ => {}
    }
}

/// Every path where the two values differ, with both sides.
fn diff(path: &str, a: &Value, b: &Value, out: &mut Vec<(String, String, String)>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let p = format!("{path}/{k}");
                diff(
                    &p,
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                    out,
                );
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                diff(&format!("{path}/{i}"), p, q, out);
            }
        }
        _ if a != b => out.push((path.to_owned(), a.to_string(), b.to_string())),
        _ => {}
    }
}

fn run(api: &Api) -> Vec<(u16, Value)> {
    let mut saved: BTreeMap<&str, String> = BTreeMap::new();
    let fill = |s: &str, saved: &BTreeMap<&str, String>| {
        saved
            .iter()
            .fold(s.to_owned(), |s, (k, v)| s.replace(&format!("{{{k}}}"), v))
    };
    let mut out = Vec::new();
    for s in sequences() {
        let path = fill(s.path, &saved);
        let body = s.body.as_ref().map(|b| fill(&b.to_string(), &saved));
        let mut r = api.call(&s, &path, body.as_deref());
        for _ in 0..200 {
            if s.until.is_none_or(|done| done(r.0, &r.1)) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
            r = api.call(&s, &path, body.as_deref());
        }
        if let Some(name) = s.save {
            saved.insert(
                name,
                r.1["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned(),
            );
        }
        normalise(&mut r.1);
        out.push(r);
    }
    out
}

/// `step<TAB>path<TAB>reason` lines.
fn known() -> BTreeMap<(String, String), String> {
    let text = include_str!("differential-known.tsv");
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let mut f = l.splitn(3, '\t');
            let (s, p, r) = (
                f.next().unwrap(),
                f.next().unwrap_or(""),
                f.next().unwrap_or(""),
            );
            assert!(
                !r.trim().is_empty(),
                "differential-known.tsv: no reason for {s} {p}"
            );
            ((s.to_owned(), p.to_owned()), r.to_owned())
        })
        .collect()
}

#[cfg(feature = "testbed")]
mod testbed {
    /// Needs the test bed (feature `testbed`).
    #[test]
    fn the_emulator_answers_request_sequences_as_kube_apiserver_does() {
        super::the_emulator_answers_request_sequences_as_kube_apiserver_does();
    }
}

fn the_emulator_answers_request_sequences_as_kube_apiserver_does() {
    let emulator = Env::new(0);
    let server = Env::testbed();
    let ours = run(&Api::from_kubeconfig(&emulator.kubeconfig));
    let theirs = run(&Api::from_kubeconfig(&server.admin));
    let known = known();
    let mut found = Vec::new();
    for ((s, a), b) in sequences().iter().zip(&ours).zip(&theirs) {
        if a.0 != b.0 {
            found.push((
                s.id.to_owned(),
                "code".to_owned(),
                a.0.to_string(),
                b.0.to_string(),
            ));
        }
        let mut d = Vec::new();
        diff("", &a.1, &b.1, &mut d);
        found.extend(d.into_iter().map(|(p, x, y)| (s.id.to_owned(), p, x, y)));
    }
    let unexplained: Vec<_> = found
        .iter()
        .filter(|(s, p, _, _)| !known.contains_key(&(s.clone(), p.clone())))
        .collect();
    let stale: Vec<_> = known
        .keys()
        .filter(|(s, p)| !found.iter().any(|(fs, fp, _, _)| fs == s && fp == p))
        .collect();
    eprintln!(
        "differential: {} requests compared on each server, {} differences ({} known and accepted, {} unexplained)",
        ours.len(),
        found.len(),
        found.len() - unexplained.len(),
        unexplained.len()
    );
    let show: Vec<String> = unexplained
        .iter()
        .map(|(s, p, a, b)| format!("{s}\t{p}\temulator {a} | kube-apiserver {b}"))
        .collect();
    assert!(
        unexplained.is_empty(),
        "differences neither fixed nor listed in tests/differential-known.tsv:\n{}",
        show.join("\n")
    );
    assert!(
        stale.is_empty(),
        "listed but no longer different: {stale:?}"
    );
}
