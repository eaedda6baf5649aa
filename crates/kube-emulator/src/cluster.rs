//! The cluster's state: objects, the global resourceVersion, the change history that watches
//! replay, and every write operation with Kubernetes' semantics.

use crate::error::ApiError;
use crate::patch::{
    changed_paths, display_path, fields_v1, get_path, json_patch, leaf_paths, merge_patch,
    paths_of_fields_v1, remove_path, strategic_merge, Path,
};
use crate::registry::{Registry, ResourceType};
use crate::selector::{FieldSelector, LabelSelector};
use crate::util::{check_label, check_subdomain, now_secs, rfc3339, uuid};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::broadcast;

/// How many changes watches can replay.
const HISTORY: usize = 20_000;

/// What a watch event says happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ChangeKind {
    Added,
    Modified,
    Deleted,
}

/// One committed change.
#[derive(Clone, Debug)]
pub struct Change {
    pub rv: u64,
    pub group: String,
    pub plural: String,
    pub namespace: String,
    pub kind: ChangeKind,
    pub object: Arc<Value>,
    pub prev: Option<Arc<Value>>,
}

/// `(group, plural, namespace, name)`.
pub type Key = (String, String, String, String);

/// The kind of a PATCH body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchKind {
    Json,
    Merge,
    Strategic,
    Apply,
}

/// The persisted form of a cluster.
#[derive(Serialize, Deserialize, Default)]
pub struct Snapshot {
    pub rv: u64,
    pub objects: Vec<Value>,
}

pub(crate) struct State {
    pub(crate) registry: Registry,
    /// Shared with the history: a change holds the versions it names, not copies of them.
    objects: BTreeMap<Key, Arc<Value>>,
    rv: u64,
    history: VecDeque<Arc<Change>>,
}

/// Request counters, for tests that count what a client did.
#[derive(Debug, Default)]
pub struct Stats {
    pub reads: AtomicU64,
    pub mutations: AtomicU64,
    pub watches: AtomicU64,
    /// Requests answered with an injected fault (500, 429, 409) instead of being served.
    pub injected: AtomicU64,
}

impl Stats {
    /// `{reads, mutations, watches, injected}`.
    pub fn to_json(&self) -> Value {
        json!({
            "reads": self.reads.load(Ordering::Relaxed),
            "mutations": self.mutations.load(Ordering::Relaxed),
            "watches": self.watches.load(Ordering::Relaxed),
            "injected": self.injected.load(Ordering::Relaxed),
        })
    }
}

/// The cluster. Cheap to share behind an `Arc`.
pub struct Cluster {
    state: Mutex<State>,
    tx: broadcast::Sender<Arc<Change>>,
    pub stats: Stats,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster").finish_non_exhaustive()
    }
}

fn meta(obj: &Value) -> &Value {
    &obj["metadata"]
}

fn name_of(obj: &Value) -> &str {
    obj["metadata"]["name"].as_str().unwrap_or("")
}

fn has_finalizers(obj: &Value) -> bool {
    meta(obj)["finalizers"]
        .as_array()
        .is_some_and(|f| !f.is_empty())
}

/// Everything but metadata and status: a change here bumps `generation`.
fn spec_part(obj: &Value) -> Value {
    let mut o = obj.clone();
    if let Some(m) = o.as_object_mut() {
        m.remove("metadata");
        m.remove("status");
        m.remove("apiVersion");
        m.remove("kind");
    }
    o
}

fn comparable(obj: &Value) -> Value {
    let mut o = obj.clone();
    if let Some(m) = o["metadata"].as_object_mut() {
        m.remove("resourceVersion");
        m.remove("managedFields");
    }
    o
}

fn fold_string_data(obj: &mut Value) {
    if let Some(sd) = obj.as_object_mut().and_then(|m| m.remove("stringData")) {
        if let Some(sd) = sd.as_object() {
            let data = obj
                .as_object_mut()
                .map(|m| m.entry("data").or_insert_with(|| json!({})));
            if let Some(Value::Object(d)) = data {
                for (k, v) in sd {
                    let s = v.as_str().unwrap_or_default();
                    d.insert(
                        k.clone(),
                        base64::engine::general_purpose::STANDARD.encode(s).into(),
                    );
                }
            }
        }
    }
}

/// Field ownership as recorded in `metadata.managedFields`.
fn managers(obj: &Value) -> Vec<(String, String, Vec<Path>)> {
    obj["metadata"]["managedFields"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| {
                    (
                        e["manager"].as_str().unwrap_or("").to_owned(),
                        e["operation"].as_str().unwrap_or("Update").to_owned(),
                        paths_of_fields_v1(&e["fieldsV1"]),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn set_managers(obj: &mut Value, api_version: &str, list: &[(String, String, Vec<Path>)]) {
    let now = rfc3339(now_secs());
    let entries: Vec<Value> = list
        .iter()
        .filter(|(_, _, p)| !p.is_empty())
        .map(|(m, op, p)| {
            json!({
                "manager": m,
                "operation": op,
                "apiVersion": api_version,
                "time": now,
                "fieldsType": "FieldsV1",
                "fieldsV1": fields_v1(p),
            })
        })
        .collect();
    if let Some(md) = obj["metadata"].as_object_mut() {
        if entries.is_empty() {
            md.remove("managedFields");
        } else {
            md.insert("managedFields".into(), Value::Array(entries));
        }
    }
}

/// Records that `manager` (an Update) changed `paths`: it owns them, others no longer do.
fn record_update(obj: &mut Value, api_version: &str, manager: &str, paths: Vec<Path>) {
    if paths.is_empty() {
        return;
    }
    let mut list = managers(obj);
    for (m, op, owned) in list.iter_mut() {
        if !(m == manager && op == "Update") {
            owned.retain(|p| !paths.contains(p));
        }
    }
    match list
        .iter_mut()
        .find(|(m, op, _)| m == manager && op == "Update")
    {
        Some((_, _, owned)) => {
            for p in paths {
                if !owned.contains(&p) {
                    owned.push(p);
                }
            }
        }
        None => list.push((manager.to_owned(), "Update".into(), paths)),
    }
    set_managers(obj, api_version, &list);
}

impl Default for Cluster {
    fn default() -> Self {
        Self::new()
    }
}

impl Cluster {
    /// An empty cluster with the `default` and `kube-system` namespaces.
    pub fn new() -> Self {
        let (tx, _) = broadcast::channel(65_536);
        let c = Cluster {
            state: Mutex::new(State {
                registry: Registry::builtins(),
                objects: BTreeMap::new(),
                // A fresh etcd's first revision: watches and lists from it behave as there.
                rv: 1,
                history: VecDeque::new(),
            }),
            tx,
            stats: Stats::default(),
        };
        for ns in ["default", "kube-system", "kube-public"] {
            let rt = c
                .resource("", "v1", "namespaces")
                .expect("namespaces are built in");
            let _ = c.create(
                &rt,
                None,
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
                "kube-apiserver",
            );
        }
        c.seed_nodes_and_storage();
        c
    }

    /// Three Ready nodes (64 CPU, 512 GiB each, one per zone), the StorageClasses `standard`
    /// (the default), `gp2` and `gp3`, and the IngressClasses `alb` (the AWS Load Balancer
    /// Controller's) and `nginx`, as the test bed has them.
    fn seed_nodes_and_storage(&self) {
        let node = self
            .resource("", "v1", "nodes")
            .expect("nodes are built in");
        for (i, zone) in ["us-east-1a", "us-east-1b", "us-east-1c"]
            .iter()
            .enumerate()
        {
            let name = format!("emulated-node-{i}");
            let cap =
                json!({"cpu": "64", "memory": "512Gi", "pods": "250", "ephemeral-storage": "1Ti"});
            let _ = self.create(&node, None, json!({"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64", "topology.kubernetes.io/zone": zone}},
                "status": {"capacity": cap, "allocatable": cap,
                    "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "emulated"}],
                    "nodeInfo": {"kubeletVersion": "v1.31.0-kube-emulator", "osImage": "emulated", "kernelVersion": "emulated",
                        "containerRuntimeVersion": "emulated", "architecture": "amd64", "operatingSystem": "linux",
                        "machineID": "", "systemUUID": "", "bootID": "", "kubeProxyVersion": ""}}}), "kube-apiserver");
        }
        let sc = self
            .resource("storage.k8s.io", "v1", "storageclasses")
            .expect("storage classes are built in");
        for name in ["standard", "gp2", "gp3"] {
            let default = if name == "standard" { "true" } else { "false" };
            let _ = self.create(&sc, None, json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
                "metadata": {"name": name, "annotations": {"storageclass.kubernetes.io/is-default-class": default}},
                "provisioner": "kubernetes.io/host-path", "reclaimPolicy": "Delete", "volumeBindingMode": "Immediate"}), "kube-apiserver");
        }
        let ic = self
            .resource("networking.k8s.io", "v1", "ingressclasses")
            .expect("ingress classes are built in");
        for (name, controller) in [
            ("alb", "ingress.k8s.aws/alb"),
            ("nginx", "k8s.io/ingress-nginx"),
        ] {
            let _ = self.create(
                &ic,
                None,
                json!({"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
                "metadata": {"name": name}, "spec": {"controller": controller}}),
                "kube-apiserver",
            );
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The registry (cloned).
    pub fn registry(&self) -> Registry {
        self.lock().registry.clone()
    }

    /// The type served at `group/version/plural`.
    pub fn resource(&self, group: &str, version: &str, plural: &str) -> Option<ResourceType> {
        self.lock().registry.find(group, version, plural).cloned()
    }

    /// The type of an `apiVersion` and `kind`.
    pub fn resource_for_kind(&self, api_version: &str, kind: &str) -> Option<ResourceType> {
        self.lock().registry.find_kind(api_version, kind).cloned()
    }

    /// The current global resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.lock().rv
    }

    /// Subscribes to changes committed from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Change>> {
        self.tx.subscribe()
    }

    /// Changes after `rv`, or an error if the history no longer reaches back that far.
    pub fn changes_since(&self, rv: u64) -> Result<Vec<Arc<Change>>, ApiError> {
        let st = self.lock();
        if let Some(first) = st.history.front() {
            if rv + 1 < first.rv && rv < st.rv {
                return Err(ApiError::gone(format!(
                    "too old resource version: {rv} ({})",
                    first.rv - 1
                )));
            }
        }
        Ok(st.history.iter().filter(|c| c.rv > rv).cloned().collect())
    }

    /// A custom resource pruned to, and type-checked against, its CRD's schema; a built-in
    /// object without the empty maps its Go type omits.
    fn conform_to_crd(st: &State, rt: &ResourceType, obj: &mut Value) -> Result<(), ApiError> {
        let Some(crd) = &rt.crd else {
            crate::schema::omit_empty_maps(rt, obj);
            return Ok(());
        };
        let key: Key = (
            "apiextensions.k8s.io".into(),
            "customresourcedefinitions".into(),
            String::new(),
            crd.clone(),
        );
        // Objects are kept at the version they were written in, not converted to the storage
        // version; so the schema is applied for CRDs of one version only.
        let schema = st.objects.get(&key).and_then(|c| {
            let versions = c["spec"]["versions"].as_array()?;
            (versions.len() == 1).then(|| versions[0]["schema"]["openAPIV3Schema"].clone())
        });
        let Some(schema) = schema.filter(|s| s.is_object()) else {
            return Ok(());
        };
        let errors = crate::schema::conform(obj, &schema);
        if errors.is_empty() {
            return Ok(());
        }
        Err(ApiError::invalid_message(
            rt,
            name_of(obj),
            &errors.join(", "),
        ))
    }

    fn key(rt: &ResourceType, ns: &str, name: &str) -> Key {
        (
            rt.group.clone(),
            rt.plural.clone(),
            if rt.namespaced {
                ns.to_owned()
            } else {
                String::new()
            },
            name.to_owned(),
        )
    }

    /// Stores (or removes) an object under a new resourceVersion, records and broadcasts it.
    fn commit(
        st: &mut State,
        tx: &broadcast::Sender<Arc<Change>>,
        rt: &ResourceType,
        key: Key,
        new: Option<Value>,
        prev: Option<Arc<Value>>,
    ) -> Value {
        st.rv += 1;
        let rv = st.rv;
        let (kind, mut object) = match (&new, &prev) {
            (Some(n), None) => (ChangeKind::Added, n.clone()),
            (Some(n), Some(_)) => (ChangeKind::Modified, n.clone()),
            (None, Some(p)) => (ChangeKind::Deleted, (**p).clone()),
            (None, None) => return Value::Null,
        };
        object["metadata"]["resourceVersion"] = rv.to_string().into();
        let object = Arc::new(object);
        match kind {
            ChangeKind::Deleted => {
                st.objects.remove(&key);
            }
            _ => {
                st.objects.insert(key.clone(), object.clone());
            }
        }
        let change = Arc::new(Change {
            rv,
            group: rt.group.clone(),
            plural: rt.plural.clone(),
            namespace: key.2.clone(),
            kind,
            object: object.clone(),
            prev,
        });
        st.history.push_back(change.clone());
        while st.history.len() > HISTORY {
            st.history.pop_front();
        }
        let _ = tx.send(change);
        Value::clone(&object)
    }

    /// Reads one object.
    pub fn get(&self, rt: &ResourceType, ns: &str, name: &str) -> Result<Value, ApiError> {
        let st = self.lock();
        st.objects
            .get(&Self::key(rt, ns, name))
            .map(|o| with_version(o, rt))
            .ok_or_else(|| ApiError::not_found(rt, name))
    }

    /// Lists objects (all namespaces when `ns` is None) with the list's resourceVersion.
    pub fn list(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        labels: &LabelSelector,
        fields: &FieldSelector,
    ) -> (Vec<Value>, u64) {
        let st = self.lock();
        let items = st
            .objects
            .iter()
            .filter(|((g, p, n, _), _)| {
                *g == rt.group && *p == rt.plural && ns.is_none_or(|x| !rt.namespaced || x == n)
            })
            .map(|(_, o)| o)
            .filter(|o| labels.matches(o) && fields.matches(o))
            .map(|o| with_version(o, rt))
            .collect();
        (items, st.rv)
    }

    /// Every stored object of a type, whatever the version it is served at.
    pub fn all(&self, group: &str, plural: &str) -> Vec<Value> {
        let st = self.lock();
        st.objects
            .iter()
            .filter(|((g, p, _, _), _)| g == group && p == plural)
            .map(|(_, o)| Value::clone(o))
            .collect()
    }

    /// Every object in a namespace, with its type.
    pub fn in_namespace(&self, ns: &str) -> Vec<(ResourceType, Value)> {
        let st = self.lock();
        st.objects
            .iter()
            .filter(|((_, _, n, _), _)| n == ns)
            .filter_map(|((g, p, _, _), o)| {
                let rt = st
                    .registry
                    .types()
                    .iter()
                    .find(|t| &t.group == g && &t.plural == p)?;
                Some((rt.clone(), Value::clone(o)))
            })
            .collect()
    }

    fn check_namespace(
        st: &State,
        rt: &ResourceType,
        ns: &str,
        name: &str,
    ) -> Result<(), ApiError> {
        if !rt.namespaced {
            return Ok(());
        }
        match st.objects.get(&(
            String::new(),
            "namespaces".into(),
            String::new(),
            ns.to_owned(),
        )) {
            None => Err(ApiError::namespace_not_found(ns)),
            Some(n) if !n["metadata"]["deletionTimestamp"].is_null() => {
                let mut e = ApiError::forbidden(
                    rt,
                    name,
                    &format!(
                        "unable to create new content in namespace {ns} because it is being terminated"
                    ),
                );
                e.details.causes.push(json!({"reason": "NamespaceTerminating",
                    "message": format!("namespace {ns} is being terminated"), "field": "metadata.namespace"}));
                Err(e)
            }
            Some(_) => Ok(()),
        }
    }

    /// Creates an object (POST).
    pub fn create(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        body: Value,
        manager: &str,
    ) -> Result<Value, ApiError> {
        let mut st = self.lock();
        let obj = self.prepare_create(&mut st, rt, ns, body)?;
        let name = name_of(&obj).to_owned();
        let ns = obj["metadata"]["namespace"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        let mut obj = obj;
        let paths = leaf_paths(&obj);
        record_update(&mut obj, &rt.api_version(), manager, paths);
        if rt.group.is_empty() && rt.plural == "events" {
            // Not omitempty in core/v1 Event: stored empty, and owned by no manager.
            for k in ["reportingComponent", "reportingInstance"] {
                if obj[k].is_null() {
                    obj[k] = "".into();
                }
            }
        }
        let key = Self::key(rt, &ns, &name);
        Ok(with_version(
            &Self::commit(&mut st, &self.tx, rt, key, Some(obj), None),
            rt,
        ))
    }

    fn prepare_create(
        &self,
        st: &mut State,
        rt: &ResourceType,
        ns: Option<&str>,
        mut obj: Value,
    ) -> Result<Value, ApiError> {
        if !obj.is_object() {
            return Err(ApiError::bad_request(
                "the body of the request is not an object",
            ));
        }
        let api_version = rt.api_version();
        match obj["apiVersion"].as_str() {
            None | Some("") => obj["apiVersion"] = api_version.clone().into(),
            Some(v) if v != api_version => {
                return Err(ApiError::bad_request(format!(
                    "the API version in the data ({v}) does not match the expected API version ({api_version})"
                )))
            }
            _ => {}
        }
        match obj["kind"].as_str() {
            None | Some("") => obj["kind"] = rt.kind.clone().into(),
            Some(k) if k != rt.kind => {
                return Err(ApiError::bad_request(format!(
                    "the kind in the data ({k}) does not match the expected kind ({})",
                    rt.kind
                )))
            }
            _ => {}
        }
        if !obj["metadata"].is_object() {
            obj["metadata"] = json!({});
        }
        let mut name = obj["metadata"]["name"].as_str().unwrap_or("").to_owned();
        if name.is_empty() {
            if let Some(prefix) = obj["metadata"]["generateName"].as_str() {
                let suffix: String = (0..5)
                    .map(|_| (b'a' + rand::random::<u8>() % 26) as char)
                    .collect();
                name = format!("{prefix}{suffix}");
                obj["metadata"]["name"] = name.clone().into();
            } else {
                return Err(ApiError::invalid_message(
                    rt,
                    "",
                    "metadata.name: Required value: name or generateName is required",
                ));
            }
        }
        let check = if rt.plural == "namespaces" {
            check_label(&name)
        } else {
            check_subdomain(&name)
        };
        if let Err(why) = check {
            return Err(ApiError::invalid(rt, &name, "metadata.name", &name, &why));
        }
        if rt.namespaced {
            let body_ns = obj["metadata"]["namespace"]
                .as_str()
                .unwrap_or("")
                .to_owned();
            let ns = match (ns, body_ns.as_str()) {
                (Some(u), "") => u.to_owned(),
                (Some(u), b) if u != b => {
                    return Err(ApiError::bad_request("the namespace of the provided object does not match the namespace sent on the request"))
                }
                (Some(u), _) => u.to_owned(),
                (None, "") => "default".to_owned(),
                (None, b) => b.to_owned(),
            };
            Self::check_namespace(st, rt, &ns, &name)?;
            obj["metadata"]["namespace"] = ns.into();
        } else if let Some(m) = obj["metadata"].as_object_mut() {
            m.remove("namespace");
        }
        let ns = obj["metadata"]["namespace"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        if st.objects.contains_key(&Self::key(rt, &ns, &name)) {
            return Err(ApiError::already_exists(rt, &name));
        }
        Self::conform_to_crd(st, rt, &mut obj)?;
        let md = obj["metadata"]
            .as_object_mut()
            .expect("metadata is an object");
        md.insert("uid".into(), uuid().into());
        md.insert("creationTimestamp".into(), rfc3339(now_secs()).into());
        // Only kinds with a spec to observe get a generation (no ConfigMap, Secret, Namespace).
        if !(rt.group.is_empty()
            && matches!(
                rt.plural.as_str(),
                "configmaps"
                    | "secrets"
                    | "namespaces"
                    | "serviceaccounts"
                    | "events"
                    | "endpoints"
            ))
        {
            md.insert("generation".into(), 1.into());
        }
        md.remove("resourceVersion");
        md.remove("deletionTimestamp");
        md.remove("managedFields");
        // As kube-apiserver: a created object's status is the server's, except a Node's (its
        // kubelet registers it with its capacity and conditions).
        if rt.status && !(rt.group.is_empty() && rt.plural == "nodes") {
            if let Some(m) = obj.as_object_mut() {
                m.remove("status");
            }
        }
        self.defaults(st, rt, &mut obj)?;
        Ok(obj)
    }

    /// Server-side defaults and kind-specific behaviour on create.
    fn defaults(&self, st: &mut State, rt: &ResourceType, obj: &mut Value) -> Result<(), ApiError> {
        match (rt.group.as_str(), rt.plural.as_str()) {
            ("", "secrets") => {
                fold_string_data(obj);
                if obj["type"].is_null() {
                    obj["type"] = "Opaque".into();
                }
            }
            ("", "namespaces") => {
                obj["spec"] = json!({"finalizers": ["kubernetes"]});
                obj["status"] = json!({"phase": "Active"});
                let name = name_of(obj).to_owned();
                if let Some(l) = obj["metadata"].as_object_mut() {
                    let labels = l.entry("labels").or_insert_with(|| json!({}));
                    labels["kubernetes.io/metadata.name"] = name.into();
                }
            }
            ("", "pods") if obj["status"]["phase"].is_null() => {
                obj["status"] = json!({"phase": "Pending", "qosClass": qos_class(&obj["spec"])});
            }
            ("", "services") => {
                if obj["spec"]["clusterIP"].is_null() {
                    let n: u16 = rand::random();
                    obj["spec"]["clusterIP"] =
                        format!("10.96.{}.{}", n >> 8, (n & 0xff).max(2)).into();
                }
                if obj["spec"]["type"].is_null() {
                    obj["spec"]["type"] = "ClusterIP".into();
                }
                obj["status"] = json!({"loadBalancer": {}});
            }
            ("apps", "deployments") | ("apps", "statefulsets") => {
                if obj["spec"]["replicas"].is_null() {
                    obj["spec"]["replicas"] = 1.into();
                }
                obj["status"] = json!({});
            }
            ("apiextensions.k8s.io", "customresourcedefinitions") => {
                st.registry
                    .add_crd(obj)
                    .map_err(|why| ApiError::invalid_message(rt, name_of(obj), &why))?;
                let now = rfc3339(now_secs());
                let stored: Vec<Value> = obj["spec"]["versions"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter(|v| v["storage"] == true)
                            .map(|v| v["name"].clone())
                            .collect()
                    })
                    .unwrap_or_default();
                obj["status"] = json!({
                    "acceptedNames": obj["spec"]["names"].clone(),
                    "storedVersions": stored,
                    "conditions": [
                        {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": now},
                        {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": now}
                    ]
                });
                obj["metadata"]["finalizers"] =
                    json!(["customresourcecleanup.apiextensions.k8s.io"]);
            }
            _ => {}
        }
        Ok(())
    }

    /// Replaces an object (PUT), or its status (`status_only`).
    pub fn update(
        &self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        body: Value,
        status_only: bool,
        manager: &str,
    ) -> Result<Value, ApiError> {
        let mut st = self.lock();
        let key = Self::key(rt, ns, name);
        let old = st
            .objects
            .get(&key)
            .cloned()
            .ok_or_else(|| ApiError::not_found(rt, name))?;
        if let Some(want) = body["metadata"]["resourceVersion"]
            .as_str()
            .filter(|s| !s.is_empty())
        {
            if Some(want) != old["metadata"]["resourceVersion"].as_str() {
                return Err(ApiError::conflict(rt, name, "the object has been modified; please apply your changes to the latest version and try again"));
            }
        }
        if !body["metadata"]["name"].is_null() && body["metadata"]["name"].as_str() != Some(name) {
            return Err(ApiError::bad_request(
                "the name of the object does not match the name on the URL",
            ));
        }
        self.write(&mut st, rt, key, old, body, status_only, manager, None)
    }

    /// Turns a requested new state into the stored one and commits it if anything changed.
    #[allow(clippy::too_many_arguments)]
    fn write(
        &self,
        st: &mut State,
        rt: &ResourceType,
        key: Key,
        old: Arc<Value>,
        body: Value,
        status_only: bool,
        manager: &str,
        managers_override: Option<Vec<(String, String, Vec<Path>)>>,
    ) -> Result<Value, ApiError> {
        let mut new = if status_only {
            let mut n = Value::clone(&old);
            n["status"] = body["status"].clone();
            n
        } else {
            let mut n = body;
            if !n.is_object() {
                return Err(ApiError::bad_request(
                    "the body of the request is not an object",
                ));
            }
            n["apiVersion"] = old["apiVersion"].clone();
            n["kind"] = old["kind"].clone();
            if !n["metadata"].is_object() {
                n["metadata"] = json!({});
            }
            for k in [
                "name",
                "namespace",
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "generation",
                "managedFields",
            ] {
                match old["metadata"].get(k) {
                    Some(v) => n["metadata"][k] = v.clone(),
                    None => {
                        if let Some(m) = n["metadata"].as_object_mut() {
                            m.remove(k);
                        }
                    }
                }
            }
            if rt.status || rt.plural == "namespaces" {
                match old.get("status") {
                    Some(s) => n["status"] = s.clone(),
                    None => {
                        if let Some(m) = n.as_object_mut() {
                            m.remove("status");
                        }
                    }
                }
            }
            if rt.group.is_empty() && rt.plural == "secrets" {
                fold_string_data(&mut n);
            }
            if rt.plural == "namespaces" && rt.group.is_empty() {
                n["spec"] = old["spec"].clone();
            }
            n
        };
        if status_only && !new["status"].is_null() {
            // A status write leaves the rest of the object as it is stored.
            let mut st_only = json!({"status": new["status"].take()});
            Self::conform_to_crd(st, rt, &mut st_only)?;
            new["status"] = st_only["status"].take();
        } else if !status_only {
            Self::conform_to_crd(st, rt, &mut new)?;
        }
        if spec_part(&new) != spec_part(&old) && !old["metadata"]["generation"].is_null() {
            let g = old["metadata"]["generation"].as_i64().unwrap_or(1);
            new["metadata"]["generation"] = (g + 1).into();
        }
        match managers_override {
            Some(list) => set_managers(&mut new, &rt.api_version(), &list),
            None => {
                // Removed fields belong to nobody; set or changed ones to this manager.
                let (set, removed): (Vec<Path>, Vec<Path>) = changed_paths(&old, &new)
                    .into_iter()
                    .partition(|p| get_path(&new, p).is_some());
                if !removed.is_empty() {
                    let mut list = managers(&new);
                    for (_, _, owned) in list.iter_mut() {
                        owned.retain(|p| !removed.contains(p));
                    }
                    set_managers(&mut new, &rt.api_version(), &list);
                }
                record_update(&mut new, &rt.api_version(), manager, set);
            }
        }
        if comparable(&new) == comparable(&old) {
            return Ok(with_version(&old, rt));
        }
        if !new["metadata"]["deletionTimestamp"].is_null()
            && !has_finalizers(&new)
            && rt.plural != "namespaces"
        {
            let stored = Self::commit(st, &self.tx, rt, key.clone(), Some(new), Some(old));
            let gone = Self::commit(st, &self.tx, rt, key, None, Some(Arc::new(stored)));
            return Ok(with_version(&gone, rt));
        }
        Ok(with_version(
            &Self::commit(st, &self.tx, rt, key, Some(new), Some(old)),
            rt,
        ))
    }

    /// Patches an object (or its status). Server-side apply creates an absent object.
    /// Returns the result and whether it was created.
    #[allow(clippy::too_many_arguments)]
    pub fn patch(
        &self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        kind: PatchKind,
        body: Value,
        status_only: bool,
        manager: &str,
        force: bool,
    ) -> Result<(Value, bool), ApiError> {
        let mut st = self.lock();
        let key = Self::key(rt, ns, name);
        let old = st.objects.get(&key).cloned();
        if kind == PatchKind::Apply {
            if manager.is_empty() {
                return Err(ApiError::bad_request(
                    "PATCH requests with apply content type require the fieldManager parameter",
                ));
            }
            if body["metadata"]["name"].as_str().is_some_and(|n| n != name) {
                return Err(ApiError::bad_request(
                    "the name of the object does not match the name on the URL",
                ));
            }
            let Some(old) = old else {
                if status_only {
                    return Err(ApiError::not_found(rt, name));
                }
                let mut body = body;
                body["metadata"]["name"] = name.into();
                let obj = self.prepare_create(
                    &mut st,
                    rt,
                    Some(ns).filter(|n| !n.is_empty()),
                    body.clone(),
                )?;
                let mut obj = obj;
                let paths = leaf_paths(&body);
                set_managers(
                    &mut obj,
                    &rt.api_version(),
                    &[(manager.to_owned(), "Apply".into(), paths)],
                );
                let key = Self::key(
                    rt,
                    obj["metadata"]["namespace"].as_str().unwrap_or(""),
                    name,
                );
                return Ok((
                    with_version(
                        &Self::commit(&mut st, &self.tx, rt, key, Some(obj), None),
                        rt,
                    ),
                    true,
                ));
            };
            return self
                .apply(&mut st, rt, key, old, body, status_only, manager, force)
                .map(|o| (o, false));
        }
        let old = old.ok_or_else(|| ApiError::not_found(rt, name))?;
        let mut target = Value::clone(&old);
        match kind {
            PatchKind::Json => json_patch(&mut target, &body)
                .map_err(|e| ApiError::invalid_message(rt, name, &e))?,
            PatchKind::Merge => merge_patch(&mut target, &body),
            PatchKind::Strategic => strategic_merge(&mut target, &body),
            PatchKind::Apply => unreachable!("handled above"),
        }
        if let Some(want) = body["metadata"]["resourceVersion"]
            .as_str()
            .filter(|s| !s.is_empty())
        {
            if Some(want) != old["metadata"]["resourceVersion"].as_str() {
                return Err(ApiError::conflict(rt, name, "the object has been modified; please apply your changes to the latest version and try again"));
            }
        }
        self.write(&mut st, rt, key, old, target, status_only, manager, None)
            .map(|o| (o, false))
    }

    #[allow(clippy::too_many_arguments)]
    fn apply(
        &self,
        st: &mut State,
        rt: &ResourceType,
        key: Key,
        old: Arc<Value>,
        applied: Value,
        status_only: bool,
        manager: &str,
        force: bool,
    ) -> Result<Value, ApiError> {
        let applied_paths: Vec<Path> = if status_only {
            let mut p = Vec::new();
            if let Some(s) = applied.get("status") {
                crate::patch::leaf_paths(&json!({"spec": s}))
                    .into_iter()
                    .for_each(|mut x| {
                        x[0] = "f:status".into();
                        p.push(x)
                    });
            }
            p
        } else {
            leaf_paths(&applied)
        };
        let mut list = managers(&old);
        // Conflicts: fields another manager owns, set here to a different value.
        let mut conflicts = Vec::new();
        for (m, op, owned) in &list {
            if m == manager && op == "Apply" {
                continue;
            }
            for p in owned {
                if applied_paths.contains(p) && get_path(&old, p) != get_path(&applied, p) {
                    conflicts.push((m.clone(), p.clone()));
                }
            }
        }
        if !conflicts.is_empty() && !force {
            let causes = conflicts
                .iter()
                .map(|(m, p)| json!({"reason": "FieldManagerConflict", "message": format!("conflict with \"{m}\""), "field": display_path(p)}))
                .collect();
            let shown: Vec<(String, String)> = conflicts
                .iter()
                .map(|(m, p)| (m.clone(), display_path(p)))
                .collect();
            return Err(ApiError::apply_conflict(
                crate::error::conflict_message(&shown),
                causes,
            ));
        }
        // Fields this manager applied before and no longer applies are removed, unless another
        // manager also owns them.
        let previously: Vec<Path> = list
            .iter()
            .find(|(m, op, _)| m == manager && op == "Apply")
            .map(|(_, _, p)| p.clone())
            .unwrap_or_default();
        let mut target = Value::clone(&old);
        for p in previously.iter().filter(|p| !applied_paths.contains(p)) {
            let shared = list
                .iter()
                .any(|(m, op, owned)| !(m == manager && op == "Apply") && owned.contains(p));
            if !shared {
                remove_path(&mut target, p);
            }
        }
        if status_only {
            if let Some(s) = applied.get("status") {
                strategic_merge(&mut target["status"], s);
            }
        } else {
            let mut a = applied.clone();
            if let Some(m) = a.as_object_mut() {
                m.remove("status");
            }
            strategic_merge(&mut target, &a);
        }
        for (m, op, owned) in list.iter_mut() {
            if !(m == manager && op == "Apply") {
                owned.retain(|p| !applied_paths.contains(p));
            }
        }
        match list
            .iter_mut()
            .find(|(m, op, _)| m == manager && op == "Apply")
        {
            Some((_, _, owned)) => *owned = applied_paths,
            None => list.push((manager.to_owned(), "Apply".into(), applied_paths)),
        }
        let body = if status_only {
            json!({"status": target["status"].clone()})
        } else {
            target
        };
        self.write(st, rt, key, old, body, status_only, manager, Some(list))
    }

    /// Deletes an object. With finalizers it is only marked (deletionTimestamp) and stays until
    /// they are removed; a namespace is emptied first.
    pub fn delete(&self, rt: &ResourceType, ns: &str, name: &str) -> Result<Value, ApiError> {
        let mut st = self.lock();
        let key = Self::key(rt, ns, name);
        let old = st
            .objects
            .get(&key)
            .cloned()
            .ok_or_else(|| ApiError::not_found(rt, name))?;
        let special = (rt.group.is_empty() && rt.plural == "namespaces")
            || (rt.group == "apiextensions.k8s.io" && rt.plural == "customresourcedefinitions");
        if has_finalizers(&old) || special {
            if !old["metadata"]["deletionTimestamp"].is_null() {
                return Ok(with_version(&old, rt));
            }
            let mut new = Value::clone(&old);
            new["metadata"]["deletionTimestamp"] = rfc3339(now_secs()).into();
            new["metadata"]["deletionGracePeriodSeconds"] = 0.into();
            if rt.plural == "namespaces" {
                new["status"]["phase"] = "Terminating".into();
            }
            return Ok(with_version(
                &Self::commit(&mut st, &self.tx, rt, key, Some(new), Some(old)),
                rt,
            ));
        }
        Ok(with_version(
            &Self::commit(&mut st, &self.tx, rt, key, None, Some(old)),
            rt,
        ))
    }

    /// Removes an object whatever its finalizers (controllers finishing a namespace or a CRD).
    pub(crate) fn purge(&self, rt: &ResourceType, ns: &str, name: &str) {
        let mut st = self.lock();
        let key = Self::key(rt, ns, name);
        if let Some(old) = st.objects.get(&key).cloned() {
            if rt.group == "apiextensions.k8s.io" && rt.plural == "customresourcedefinitions" {
                st.registry.remove_crd(name);
            }
            Self::commit(&mut st, &self.tx, rt, key, None, Some(old));
        }
    }

    /// A snapshot of every object, for persistence.
    pub fn snapshot(&self) -> Snapshot {
        let st = self.lock();
        Snapshot {
            rv: st.rv,
            objects: st.objects.values().map(|o| Value::clone(o)).collect(),
        }
    }

    /// Restores a snapshot (CRDs first, so their kinds are known).
    pub fn restore(&self, snap: Snapshot) {
        let mut st = self.lock();
        st.objects.clear();
        st.history.clear();
        let mut objs = snap.objects;
        objs.sort_by_key(|o| o["kind"] != "CustomResourceDefinition");
        for o in objs {
            if o["kind"] == "CustomResourceDefinition" {
                let _ = st.registry.add_crd(&o);
            }
            let Some(rt) = st
                .registry
                .find_kind(
                    o["apiVersion"].as_str().unwrap_or(""),
                    o["kind"].as_str().unwrap_or(""),
                )
                .cloned()
            else {
                continue;
            };
            let key = Self::key(
                &rt,
                o["metadata"]["namespace"].as_str().unwrap_or(""),
                name_of(&o),
            );
            st.objects.insert(key, Arc::new(o));
        }
        st.rv = st.rv.max(snap.rv);
    }

    /// Objects, for callers that inspect the whole store (counting duplicates in tests).
    pub fn count(&self) -> usize {
        self.lock().objects.len()
    }

    /// What the store holds, for benchmarks: the objects and the history's changes, and the
    /// serialized bytes of the objects and of the versions only the history still holds (a
    /// change shares the stored version it names).
    pub fn footprint(&self) -> Footprint {
        let st = self.lock();
        let size = |v: &Value| serde_json::to_vec(v).map_or(0, |b| b.len());
        let mut f = Footprint {
            objects: st.objects.len(),
            changes: st.history.len(),
            object_bytes: st.objects.values().map(|o| size(o)).sum(),
            history_bytes: 0,
        };
        let stored: std::collections::HashSet<*const Value> =
            st.objects.values().map(Arc::as_ptr).collect();
        for c in &st.history {
            for v in std::iter::once(&c.object).chain(c.prev.as_ref()) {
                if !stored.contains(&Arc::as_ptr(v)) {
                    f.history_bytes += size(v);
                }
            }
        }
        f
    }
}

/// See [`Cluster::footprint`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Footprint {
    pub objects: usize,
    pub changes: usize,
    pub object_bytes: usize,
    pub history_bytes: usize,
}

/// The object as served at `rt`'s version (a CRD's objects may be read at any served version).
/// The W&B operator v2's conversion webhook copies metadata and spec into v1, not status: a
/// `WeightsAndBiases` stored at v2 and read at v1 has none.
pub(crate) fn with_version(obj: &Value, rt: &ResourceType) -> Value {
    let mut o = obj.clone();
    o["apiVersion"] = rt.api_version().into();
    if rt.group == "apps.wandb.com" && !rt.storage {
        if let Some(m) = o.as_object_mut() {
            m.remove("status");
        }
    }
    o
}

/// A pod's QoS class: BestEffort without requests or limits, Guaranteed when every container's
/// CPU and memory limits equal its requests, Burstable otherwise.
fn qos_class(spec: &Value) -> &'static str {
    let cs: Vec<&Value> = spec["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    let none = cs.iter().all(|c| {
        c["resources"]["requests"]
            .as_object()
            .is_none_or(|m| m.is_empty())
            && c["resources"]["limits"]
                .as_object()
                .is_none_or(|m| m.is_empty())
    });
    if none {
        return "BestEffort";
    }
    let guaranteed = cs.iter().all(|c| {
        ["cpu", "memory"].iter().all(|r| {
            let l = &c["resources"]["limits"][*r];
            let q = &c["resources"]["requests"][*r];
            !l.is_null() && (q.is_null() || q == l)
        })
    });
    if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}
