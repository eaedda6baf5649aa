//! The HTTP face of the emulator: routing, content negotiation, lists, tables and watches.

use crate::cluster::{Change, ChangeKind, Cluster, PatchKind};
use crate::discovery;
use crate::error::ApiError;
use crate::registry::ResourceType;
use crate::selector::{FieldSelector, LabelSelector};
use crate::table::table;
use crate::Faults;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// What every request handler shares.
pub(crate) struct App {
    pub(crate) cluster: Arc<Cluster>,
    pub(crate) faults: Arc<RwLock<Faults>>,
    pub(crate) addr: String,
    /// Requests seen while faults were on; spreads injected errors evenly.
    pub(crate) fault_ticks: std::sync::atomic::AtomicU64,
    /// Updates seen while conflicts were on; spreads injected conflicts evenly.
    pub(crate) conflict_ticks: std::sync::atomic::AtomicU64,
    /// The bearer token every request must carry, if the server was given one.
    pub(crate) token: Option<String>,
    /// The server's configuration, as it is now.
    pub(crate) config: Arc<RwLock<crate::Config>>,
    /// What the pods run here printed (`pods/{name}/log`).
    pub(crate) logs: crate::kubelet::Logs,
}

pub(crate) fn json_response(code: u16, v: &Value) -> Response {
    let mut r = Response::new(Body::from(serde_json::to_vec(v).unwrap_or_default()));
    *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::OK);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        "application/json".parse().expect("static header"),
    );
    r
}

fn error_response(e: &ApiError) -> Response {
    let mut r = json_response(e.code, &e.status());
    if e.code == 429 {
        let secs = e.details.retry_after_seconds.unwrap_or(1).to_string();
        if let Ok(v) = secs.parse() {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
    }
    r
}

fn query(req: &Request) -> HashMap<String, String> {
    form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

fn truthy(q: &HashMap<String, String>, k: &str) -> bool {
    q.get(k).is_some_and(|v| v == "true" || v == "1")
}

/// A parsed resource path.
pub(crate) struct Target {
    pub(crate) rt: ResourceType,
    pub(crate) namespace: Option<String>,
    pub(crate) name: Option<String>,
    pub(crate) sub: Option<String>,
}

/// The single handler: every request comes here.
pub(crate) async fn handle(State(app): State<Arc<App>>, req: Request) -> Response {
    if let Some(t) = &app.token {
        let given = req
            .headers()
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if given != Some(format!("Bearer {t}").as_str()) {
            return error_response(&ApiError::unauthorized());
        }
    }
    let path = req.uri().path().to_owned();
    if let Some(rest) = path.strip_prefix("/emulator/v1/") {
        return emulator_api(&app, rest, req).await;
    }
    // Fault injection, for clients' retry logic.
    let faults = app.faults.read().map(|f| f.clone()).unwrap_or_default();
    if faults.error_rate > 0.0 && !path.starts_with("/openapi") {
        if let Some(nth) = injected_fault(&app.fault_ticks, faults.error_rate) {
            app.cluster.stats.injected.fetch_add(1, Ordering::Relaxed);
            let wait = faults.retry_after_seconds.unwrap_or(1);
            return if nth % 2 == 0 {
                error_response(&ApiError::too_many_requests_for(wait))
            } else {
                error_response(&ApiError::internal("injected fault"))
            };
        }
    }
    let update = req.method() == Method::PUT || req.method() == Method::PATCH;
    if faults.conflict_rate > 0.0
        && update
        && !path.starts_with("/openapi")
        && injected_fault(&app.conflict_ticks, faults.conflict_rate).is_some()
    {
        app.cluster.stats.injected.fetch_add(1, Ordering::Relaxed);
        return error_response(&ApiError::stale_write());
    }
    match route(&app, req).await {
        Ok(r) => r,
        Err(e) => error_response(&e),
    }
}

/// Whether this request gets an injected error, and if so which one (0, 1, ...).
/// Errors are spread evenly rather than drawn at random, so that exactly `rate`
/// of the requests fail and a test sees the same sequence every time.
fn injected_fault(ticks: &std::sync::atomic::AtomicU64, rate: f64) -> Option<u64> {
    let n = ticks.fetch_add(1, Ordering::Relaxed);
    let rate = rate.clamp(0.0, 1.0);
    let before = (n as f64 * rate).floor() as u64;
    let after = ((n + 1) as f64 * rate).floor() as u64;
    (after > before).then_some(before)
}

async fn emulator_api(app: &App, rest: &str, req: Request) -> Response {
    match (req.method().clone(), rest) {
        (Method::GET, "stats") => json_response(200, &app.cluster.stats.to_json()),
        (Method::POST, "stats/reset") => {
            app.cluster.stats.reads.store(0, Ordering::Relaxed);
            app.cluster.stats.mutations.store(0, Ordering::Relaxed);
            app.cluster.stats.watches.store(0, Ordering::Relaxed);
            app.cluster.stats.injected.store(0, Ordering::Relaxed);
            json_response(200, &app.cluster.stats.to_json())
        }
        (Method::POST, "faults") => {
            let body = axum::body::to_bytes(req.into_body(), 1 << 20)
                .await
                .unwrap_or_default();
            match serde_json::from_slice::<Faults>(&body) {
                Ok(f) => {
                    if let Ok(mut w) = app.faults.write() {
                        *w = f.clone();
                    }
                    app.fault_ticks.store(0, Ordering::Relaxed);
                    app.conflict_ticks.store(0, Ordering::Relaxed);
                    json_response(200, &serde_json::to_value(f).unwrap_or_default())
                }
                Err(e) => error_response(&ApiError::bad_request(e.to_string())),
            }
        }
        _ => error_response(&ApiError::not_found_path(rest)),
    }
}

async fn route(app: &Arc<App>, req: Request) -> Result<Response, ApiError> {
    let path = req.uri().path().trim_end_matches('/').to_owned();
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let reg = app.cluster.registry();
    let get = req.method() == Method::GET;
    match segs.as_slice() {
        ["version"] if get => return Ok(json_response(200, &discovery::version())),
        ["healthz"] | ["readyz"] | ["livez"] if get => {
            return Ok((StatusCode::OK, "ok").into_response())
        }
        ["api"] if get => return Ok(json_response(200, &discovery::core_versions(&app.addr))),
        ["apis"] if get => return Ok(json_response(200, &discovery::groups(&reg))),
        ["api", v] if get => {
            return discovery::resources(&reg, "", v)
                .map(|d| json_response(200, &d))
                .ok_or_else(|| ApiError::not_found_path(&path))
        }
        ["apis", g] if get => {
            return discovery::group(&reg, g)
                .map(|d| json_response(200, &d))
                .ok_or_else(|| ApiError::not_found_path(&path))
        }
        ["apis", g, v] if get => {
            return discovery::resources(&reg, g, v)
                .map(|d| json_response(200, &d))
                .ok_or_else(|| ApiError::not_found_path(&path))
        }
        ["openapi", "v3"] if get => return Ok(json_response(200, &discovery::openapi_index(&reg))),
        ["openapi", "v3", "api", v] if get => {
            return discovery::openapi_gv(&reg, "", v)
                .map(|d| json_response(200, &d))
                .ok_or_else(|| ApiError::not_found_path(&path))
        }
        ["openapi", "v3", "apis", g, v] if get => {
            return discovery::openapi_gv(&reg, g, v)
                .map(|d| json_response(200, &d))
                .ok_or_else(|| ApiError::not_found_path(&path))
        }
        _ => {}
    }
    let (g, v, rest) = match segs.as_slice() {
        ["api", v, rest @ ..] if !rest.is_empty() => ("", *v, rest),
        ["apis", g, v, rest @ ..] if !rest.is_empty() => (*g, *v, rest),
        _ => return Err(ApiError::not_found_path(&path)),
    };
    let find = |plural: &str| reg.find(g, v, plural).cloned();
    let target = match rest {
        ["namespaces", ns, plural, tail @ ..]
            if find(plural).is_some_and(|t| t.namespaced) && tail.len() <= 2 =>
        {
            Target {
                rt: find(plural).expect("checked"),
                namespace: Some((*ns).to_owned()),
                name: tail.first().map(|s| s.to_string()),
                sub: tail.get(1).map(|s| s.to_string()),
            }
        }
        [plural, tail @ ..] if find(plural).is_some() && tail.len() <= 2 => Target {
            rt: find(plural).expect("checked"),
            namespace: None,
            name: tail.first().map(|s| s.to_string()),
            sub: tail.get(1).map(|s| s.to_string()),
        },
        _ => return Err(ApiError::not_found_path(&path)),
    };
    if target.rt.namespaced && target.namespace.is_none() && target.name.is_some() {
        return Err(ApiError::not_found_path(&path));
    }
    if let Some(sub) = &target.sub {
        if sub == "token" && target.rt.plural == "serviceaccounts" && req.method() == Method::POST {
            return crate::token::request(app, req, target).await;
        }
        if sub == "log" && target.rt.plural == "pods" && req.method() == Method::GET {
            return crate::kubelet::log(app, target);
        }
        if sub != "status" || !(target.rt.status || target.rt.plural == "namespaces") {
            return Err(ApiError::not_found_path(&path));
        }
    }
    resource(app, req, target).await
}

fn content_kind(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_owned()
}

fn wants_table(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("as=Table"))
}

fn manager(q: &HashMap<String, String>, headers: &HeaderMap) -> String {
    if let Some(m) = q.get("fieldManager").filter(|m| !m.is_empty()) {
        return m.clone();
    }
    headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .and_then(|ua| ua.split('/').next())
        .filter(|s| !s.is_empty())
        .unwrap_or("unknown")
        .to_owned()
}

pub(crate) async fn body_value(req: Request, yaml_ok: bool) -> Result<Value, ApiError> {
    let ct = content_kind(req.headers());
    if ct.contains("protobuf") {
        return Err(ApiError::unsupported_media(&ct));
    }
    let bytes: Bytes = axum::body::to_bytes(req.into_body(), 64 << 20)
        .await
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    match serde_json::from_slice(&bytes) {
        Ok(v) => Ok(v),
        Err(e) if yaml_ok || ct.contains("yaml") => serde_yaml_ng::from_slice::<Value>(&bytes)
            .map_err(|y| ApiError::bad_request(format!("error decoding YAML: {y} (as JSON: {e})"))),
        Err(e) => Err(ApiError::bad_request(format!("error decoding body: {e}"))),
    }
}

async fn resource(app: &Arc<App>, req: Request, t: Target) -> Result<Response, ApiError> {
    let q = query(&req);
    let c = &app.cluster;
    let ns = t.namespace.clone().unwrap_or_default();
    let status_only = t.sub.as_deref() == Some("status");
    let method = req.method().clone();
    let mutating = !matches!(method, Method::GET | Method::HEAD);
    if mutating {
        c.stats.mutations.fetch_add(1, Ordering::Relaxed);
    } else if truthy(&q, "watch") {
        c.stats.watches.fetch_add(1, Ordering::Relaxed);
    } else {
        c.stats.reads.fetch_add(1, Ordering::Relaxed);
    }
    let dry_run = q.get("dryRun").is_some_and(|d| d == "All");
    let headers = req.headers().clone();
    let mgr = manager(&q, &headers);
    match (method, &t.name) {
        (Method::GET, None) => list(app, &t, &q, &headers),
        (Method::GET, Some(name)) => {
            if truthy(&q, "watch") {
                let fields = FieldSelector::parse(&format!("metadata.name={name}"))
                    .map_err(ApiError::bad_request)?;
                return Ok(watch(
                    app,
                    &t.rt,
                    t.namespace.clone(),
                    LabelSelector::default(),
                    fields,
                    &q,
                    wants_table(&headers),
                ));
            }
            let obj = c.get(&t.rt, &ns, name)?;
            if wants_table(&headers) {
                return Ok(json_response(200, &table(&t.rt, &[obj], None)));
            }
            Ok(json_response(200, &obj))
        }
        (Method::POST, None) => {
            let body = body_value(req, false).await?;
            if dry_run {
                return Ok(json_response(201, &body));
            }
            let obj = c.create(&t.rt, t.namespace.as_deref(), body, &mgr)?;
            Ok(json_response(201, &obj))
        }
        (Method::PUT, Some(name)) => {
            let body = body_value(req, false).await?;
            let obj = c.update(&t.rt, &ns, name, body, status_only, &mgr)?;
            Ok(json_response(200, &obj))
        }
        (Method::PATCH, Some(name)) => {
            let name = name.clone();
            patch(app, req, &t, &name, &q, mgr).await
        }
        (Method::DELETE, Some(name)) => {
            let obj = c.delete(&t.rt, &ns, name)?;
            // Like kube-apiserver: an object deleted at once is answered with a Status (a Pod,
            // and one held by finalizers, with the object).
            if obj["metadata"]["deletionTimestamp"].is_null() && t.rt.plural != "pods" {
                return Ok(json_response(200, &deleted_status(&t.rt, &obj)));
            }
            Ok(json_response(200, &obj))
        }
        (Method::DELETE, None) => delete_collection(app, &t, &q),
        (m, _) => Err(ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({m})"
        ))),
    }
}

/// GET on a collection: a list (or a Table), or a watch.
fn list(
    app: &Arc<App>,
    t: &Target,
    q: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let labels = LabelSelector::parse(q.get("labelSelector").map(String::as_str).unwrap_or(""))
        .map_err(ApiError::bad_request)?;
    let fields = FieldSelector::parse(q.get("fieldSelector").map(String::as_str).unwrap_or(""))
        .map_err(ApiError::bad_request)?;
    if truthy(q, "watch") {
        return Ok(watch(
            app,
            &t.rt,
            t.namespace.clone(),
            labels,
            fields,
            q,
            wants_table(headers),
        ));
    }
    let (items, rv) = app
        .cluster
        .list(&t.rt, t.namespace.as_deref(), &labels, &fields);
    if wants_table(headers) {
        return Ok(json_response(200, &table(&t.rt, &items, Some(rv))));
    }
    // Like kube-apiserver: a built-in type's list items carry no `apiVersion` or `kind` (a custom
    // resource's, served as unstructured objects, do).
    let items: Vec<Value> = if t.rt.crd.is_none() {
        items.into_iter().map(untyped).collect()
    } else {
        items
    };
    let (items, token, remaining) = page(items, q, rv)?;
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if let Some(t) = token {
        meta["continue"] = json!(t);
        // kube-apiserver counts the rest only when no selector filtered the list.
        if !q.contains_key("labelSelector") && !q.contains_key("fieldSelector") {
            meta["remainingItemCount"] = json!(remaining);
        }
    }
    Ok(json_response(
        200,
        &json!({
            "kind": format!("{}List", t.rt.kind),
            "apiVersion": t.rt.api_version(),
            "metadata": meta,
            "items": items,
        }),
    ))
}

fn deleted_status(rt: &ResourceType, o: &Value) -> Value {
    let mut details =
        json!({"name": o["metadata"]["name"], "kind": rt.plural, "uid": o["metadata"]["uid"]});
    if !rt.group.is_empty() {
        details["group"] = json!(rt.group);
    }
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details})
}

/// `limit` and `continue`: a page of items in key order, and a token for the rest. The token is
/// kube-apiserver's: base64 of `{"v":"meta.k8s.io/v1","rv":N,"start":"<last key>\u0000"}`.
fn page(
    items: Vec<Value>,
    q: &HashMap<String, String>,
    rv: u64,
) -> Result<(Vec<Value>, Option<String>, usize), ApiError> {
    let key = |o: &Value| {
        format!(
            "{}/{}",
            o["metadata"]["namespace"].as_str().unwrap_or(""),
            o["metadata"]["name"].as_str().unwrap_or("")
        )
    };
    let after = q.get("continue").map(|c| continue_start(c)).transpose()?;
    let mut items: Vec<Value> = items
        .into_iter()
        .filter(|o| after.as_ref().is_none_or(|a| key(o) >= *a))
        .collect();
    items.sort_by_key(key);
    let limit = q
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(0);
    if limit == 0 || items.len() <= limit {
        return Ok((items, None, 0));
    }
    let rest = items.split_off(limit);
    let start = format!("{}\u{0}", key(items.last().expect("limit > 0")));
    let token = json!({"v": "meta.k8s.io/v1", "rv": rv, "start": start}).to_string();
    use base64::Engine;
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(token);
    Ok((items, Some(token), rest.len()))
}

/// The key a continue token resumes from, or kube-apiserver's 400 for a token it cannot read.
fn continue_start(token: &str) -> Result<String, ApiError> {
    use base64::Engine;
    let invalid = |why: String| {
        ApiError::bad_request(format!(
            "invalid continue token: continue key is not valid: {why}"
        ))
    };
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token.trim_end_matches('='))
        .map_err(|e| invalid(e.to_string()))?;
    let v: Value = serde_json::from_slice(&raw).map_err(|e| invalid(e.to_string()))?;
    if v["v"] != "meta.k8s.io/v1" {
        return Err(invalid(
            "the continue token version is not supported".into(),
        ));
    }
    v["start"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| invalid("the continue token has no start key".into()))
}

fn untyped(mut o: Value) -> Value {
    if let Some(m) = o.as_object_mut() {
        m.remove("apiVersion");
        m.remove("kind");
    }
    o
}

/// PATCH of one object, by the content type's patch kind.
async fn patch(
    app: &Arc<App>,
    req: Request,
    t: &Target,
    name: &str,
    q: &HashMap<String, String>,
    mgr: String,
) -> Result<Response, ApiError> {
    let kind = match content_kind(req.headers()).as_str() {
        "application/json-patch+json" => PatchKind::Json,
        "application/merge-patch+json" => PatchKind::Merge,
        "application/strategic-merge-patch+json" => PatchKind::Strategic,
        "application/apply-patch+yaml" | "application/apply-patch+json" => PatchKind::Apply,
        other => return Err(ApiError::unsupported_media(other)),
    };
    let body = body_value(req, kind == PatchKind::Apply).await?;
    let mgr = if kind == PatchKind::Apply {
        q.get("fieldManager").cloned().unwrap_or_default()
    } else {
        mgr
    };
    let ns = t.namespace.clone().unwrap_or_default();
    let status_only = t.sub.as_deref() == Some("status");
    let (obj, created) = app.cluster.patch(
        &t.rt,
        &ns,
        name,
        kind,
        body,
        status_only,
        &mgr,
        truthy(q, "force"),
    )?;
    Ok(json_response(if created { 201 } else { 200 }, &obj))
}

/// DELETE on a collection: every object the label selector matches.
fn delete_collection(
    app: &Arc<App>,
    t: &Target,
    q: &HashMap<String, String>,
) -> Result<Response, ApiError> {
    let labels = LabelSelector::parse(q.get("labelSelector").map(String::as_str).unwrap_or(""))
        .map_err(ApiError::bad_request)?;
    let (items, _) = app.cluster.list(
        &t.rt,
        t.namespace.as_deref(),
        &labels,
        &FieldSelector::default(),
    );
    for i in &items {
        let n = i["metadata"]["name"].as_str().unwrap_or_default();
        let ins = i["metadata"]["namespace"].as_str().unwrap_or_default();
        let _ = app.cluster.delete(&t.rt, ins, n);
    }
    Ok(json_response(
        200,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}),
    ))
}

/// Computes one table cell from an object.
fn matches(
    rt: &ResourceType,
    ns: &Option<String>,
    labels: &LabelSelector,
    fields: &FieldSelector,
    obj: &Value,
) -> bool {
    (!rt.namespaced
        || ns
            .as_deref()
            .is_none_or(|n| obj["metadata"]["namespace"].as_str() == Some(n)))
        && labels.matches(obj)
        && fields.matches(obj)
}

/// The watch event (if any) a change produces for this watcher, honouring selectors: an object
/// that stops matching is reported DELETED.
fn event_for(
    rt: &ResourceType,
    ns: &Option<String>,
    labels: &LabelSelector,
    fields: &FieldSelector,
    c: &Change,
    as_table: bool,
) -> Option<Value> {
    if c.group != rt.group || c.plural != rt.plural {
        return None;
    }
    let now = matches(rt, ns, labels, fields, &c.object);
    let before = c
        .prev
        .as_ref()
        .is_some_and(|p| matches(rt, ns, labels, fields, p));
    let kind = match (c.kind, now, before) {
        (ChangeKind::Deleted, _, true) | (ChangeKind::Deleted, true, _) => "DELETED",
        (ChangeKind::Deleted, false, false) => return None,
        (ChangeKind::Added, true, _) => "ADDED",
        (ChangeKind::Modified, true, true) => "MODIFIED",
        (ChangeKind::Modified, true, false) => "ADDED",
        (ChangeKind::Modified, false, true) => "DELETED",
        _ => return None,
    };
    let obj = crate::cluster::with_version(&c.object, rt);
    let obj = if as_table {
        table(rt, &[obj], Some(c.rv))
    } else {
        obj
    };
    Some(json!({"type": kind, "object": obj}))
}

fn line(v: &Value) -> Bytes {
    let mut b = serde_json::to_vec(v).unwrap_or_default();
    b.push(b'\n');
    Bytes::from(b)
}

/// A streaming watch: current objects (resourceVersion 0 or absent) or the history after the
/// given resourceVersion, then live events, as newline-delimited JSON.
fn watch(
    app: &Arc<App>,
    rt: &ResourceType,
    ns: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
    q: &HashMap<String, String>,
    as_table: bool,
) -> Response {
    let cluster = app.cluster.clone();
    // Subscribe before reading the snapshot, so nothing falls in between.
    let mut rx = cluster.subscribe();
    let rv: u64 = q
        .get("resourceVersion")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let bookmarks = truthy(q, "allowWatchBookmarks");
    let timeout = q
        .get("timeoutSeconds")
        .and_then(|s| s.parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(1800));
    let drop_after = app
        .faults
        .read()
        .ok()
        .and_then(|f| f.drop_watches_after_ms)
        .map(Duration::from_millis);
    let (tx, out_rx) = tokio::sync::mpsc::channel::<Bytes>(1024);
    let rt = rt.clone();
    tokio::spawn(async move {
        let mut last = rv;
        let mut initial = Vec::new();
        if rv == 0 {
            let (items, list_rv) = cluster.list(&rt, ns.as_deref(), &labels, &fields);
            for o in items {
                let o = if as_table {
                    table(&rt, &[o], Some(list_rv))
                } else {
                    o
                };
                initial.push(json!({"type": "ADDED", "object": o}));
            }
            last = list_rv;
        } else {
            match cluster.changes_since(rv) {
                Ok(changes) => {
                    for c in changes {
                        if let Some(e) = event_for(&rt, &ns, &labels, &fields, &c, as_table) {
                            initial.push(e);
                        }
                        last = c.rv;
                    }
                }
                Err(e) => {
                    let _ = tx
                        .send(line(&json!({"type": "ERROR", "object": e.status()})))
                        .await;
                    return;
                }
            }
        }
        for e in initial {
            if tx.send(line(&e)).await.is_err() {
                return;
            }
        }
        let bookmark = |rv: u64| json!({"type": "BOOKMARK", "object": {"kind": rt.kind, "apiVersion": rt.api_version(), "metadata": {"resourceVersion": rv.to_string(), "annotations": {"k8s.io/initial-events-end": "true"}}}});
        if bookmarks
            && tx
                .send(line(&bookmark(last.max(cluster.resource_version()))))
                .await
                .is_err()
        {
            return;
        }
        let deadline = tokio::time::Instant::now() + timeout;
        let drop_at = drop_after.map(|d| tokio::time::Instant::now() + d);
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        tick.tick().await;
        loop {
            tokio::select! {
                r = rx.recv() => match r {
                    Ok(c) => {
                        if c.rv <= last { continue; }
                        last = c.rv;
                        if let Some(e) = event_for(&rt, &ns, &labels, &fields, &c, as_table) {
                            if tx.send(line(&e)).await.is_err() { return; }
                        }
                    }
                    // Fell behind or the cluster is gone: end the stream; the client re-watches.
                    Err(_) => return,
                },
                _ = tick.tick(), if bookmarks => {
                    if tx.send(line(&bookmark(last))).await.is_err() { return; }
                }
                _ = tokio::time::sleep_until(deadline) => return,
                _ = async { match drop_at { Some(t) => tokio::time::sleep_until(t).await, None => futures::future::pending().await } } => return,
                _ = tx.closed() => return,
            }
        }
    });
    let stream = futures::stream::unfold(out_rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, std::convert::Infallible>(b), rx))
    });
    let mut r = Response::new(Body::from_stream(stream.boxed()));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        "application/json".parse().expect("static header"),
    );
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        "no-cache, private".parse().expect("static header"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::injected_fault;
    use std::sync::atomic::AtomicU64;

    #[test]
    fn injected_faults_hit_exactly_the_share_asked_for_and_alternate() {
        let ticks = AtomicU64::new(0);
        let hits: Vec<u64> = (0..100)
            .filter_map(|_| injected_fault(&ticks, 0.3))
            .collect();
        assert_eq!(hits.len(), 30);
        assert_eq!(hits, (0..30).collect::<Vec<_>>());
        let ticks = AtomicU64::new(0);
        assert_eq!(
            (0..50).filter_map(|_| injected_fault(&ticks, 1.0)).count(),
            50
        );
    }
}
