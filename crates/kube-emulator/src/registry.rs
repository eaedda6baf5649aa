//! The kinds the server knows: built-in ones and those registered by CustomResourceDefinitions.

use serde_json::{json, Value};

/// One resource type served at one group/version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceType {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub plural: String,
    pub singular: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    /// Whether `/status` is a subresource (main-resource writes keep status).
    pub status: bool,
    /// The CRD that registered it, if any.
    pub crd: Option<String>,
    /// Whether objects are stored at this version (a CRD's other served versions are converted).
    pub storage: bool,
    /// A CRD version's `additionalPrinterColumns` (the Table kubectl shows).
    pub printer_columns: Vec<Value>,
}

impl ResourceType {
    fn builtin(
        group: &str,
        version: &str,
        kind: &str,
        plural: &str,
        namespaced: bool,
        short: &[&str],
        status: bool,
    ) -> Self {
        ResourceType {
            group: group.into(),
            version: version.into(),
            kind: kind.into(),
            plural: plural.into(),
            singular: kind.to_ascii_lowercase(),
            namespaced,
            short_names: short.iter().map(|s| s.to_string()).collect(),
            status,
            crd: None,
            storage: true,
            printer_columns: Vec::new(),
        }
    }

    /// `v1` or `apps/v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `secrets` or `deployments.apps`, as Kubernetes names a resource in messages.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// The discovery entries (`APIResource`) for this type and its status subresource.
    pub fn discovery(&self) -> Vec<Value> {
        let mut out = vec![json!({
            "name": self.plural,
            "singularName": self.singular,
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
            "shortNames": self.short_names,
            "storageVersionHash": "",
        })];
        if self.status {
            out.push(json!({
                "name": format!("{}/status", self.plural),
                "singularName": "",
                "namespaced": self.namespaced,
                "kind": self.kind,
                "verbs": ["get", "patch", "update"],
            }));
        }
        out
    }
}

/// Every served type.
#[derive(Clone, Debug)]
pub struct Registry {
    types: Vec<ResourceType>,
}

impl Default for Registry {
    fn default() -> Self {
        Self::builtins()
    }
}

impl Registry {
    /// The built-in kinds wbstack and its tests use.
    pub fn builtins() -> Self {
        let types = BUILTINS
            .iter()
            .map(|(g, v, kind, plural, namespaced, short, status)| {
                ResourceType::builtin(g, v, kind, plural, *namespaced, short, *status)
            })
            .collect();
        Registry { types }
    }

    /// Every type.
    pub fn types(&self) -> &[ResourceType] {
        &self.types
    }

    /// The type served at `group/version` under `plural`.
    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<&ResourceType> {
        self.types
            .iter()
            .find(|t| t.group == group && t.version == version && t.plural == plural)
    }

    /// The type of `apiVersion` + `kind`.
    pub fn find_kind(&self, api_version: &str, kind: &str) -> Option<&ResourceType> {
        self.types
            .iter()
            .find(|t| t.api_version() == api_version && t.kind == kind)
    }

    /// Group names in discovery order (core excluded).
    pub fn groups(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for t in &self.types {
            if !t.group.is_empty() && !out.contains(&t.group) {
                out.push(t.group.clone());
            }
        }
        out
    }

    /// Versions served for a group, preferred first.
    pub fn versions(&self, group: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for t in &self.types {
            if t.group == group && !out.contains(&t.version) {
                out.push(t.version.clone());
            }
        }
        out
    }

    /// Types served at a group/version.
    pub fn in_group_version(&self, group: &str, version: &str) -> Vec<&ResourceType> {
        self.types
            .iter()
            .filter(|t| t.group == group && t.version == version)
            .collect()
    }

    /// Registers the kinds of a CRD (one per served version). Returns an error message when the
    /// CRD is not acceptable.
    pub fn add_crd(&mut self, crd: &Value) -> Result<(), String> {
        let types = crd_types(crd)?;
        let name = crd["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        self.types
            .retain(|t| t.crd.as_deref() != Some(name.as_str()));
        self.types.extend(types);
        Ok(())
    }

    /// Unregisters the kinds of a CRD.
    pub fn remove_crd(&mut self, name: &str) {
        self.types.retain(|t| t.crd.as_deref() != Some(name));
    }
}

/// The types a CRD defines, validated.
pub fn crd_types(crd: &Value) -> Result<Vec<ResourceType>, String> {
    let spec = &crd["spec"];
    let name = crd["metadata"]["name"].as_str().unwrap_or_default();
    let group = spec["group"].as_str().unwrap_or_default();
    let names = &spec["names"];
    let plural = names["plural"].as_str().unwrap_or_default();
    let kind = names["kind"].as_str().unwrap_or_default();
    if group.is_empty() || !group.contains('.') {
        return Err("spec.group: Invalid value: should be a domain with at least one dot".into());
    }
    if plural.is_empty() {
        return Err("spec.names.plural: Required value".into());
    }
    if kind.is_empty() {
        return Err("spec.names.kind: Required value".into());
    }
    if name != format!("{plural}.{group}") {
        return Err(format!(
            "metadata.name: Invalid value: \"{name}\": must be spec.names.plural+\".\"+spec.group"
        ));
    }
    let scope = spec["scope"].as_str().unwrap_or_default();
    if scope != "Namespaced" && scope != "Cluster" {
        return Err("spec.scope: Unsupported value: must be Namespaced or Cluster".into());
    }
    let versions = spec["versions"].as_array().cloned().unwrap_or_default();
    if versions.is_empty() {
        return Err(
            "spec.versions: Invalid value: must have exactly one version marked as storage version"
                .into(),
        );
    }
    let storage = versions.iter().filter(|v| v["storage"] == true).count();
    if storage != 1 {
        return Err(
            "spec.versions: Invalid value: must have exactly one version marked as storage version"
                .into(),
        );
    }
    let short: Vec<String> = names["shortNames"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let singular = names["singular"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| kind.to_ascii_lowercase());
    Ok(versions
        .iter()
        .filter(|v| v["served"] != false)
        .map(|v| ResourceType {
            group: group.into(),
            version: v["name"].as_str().unwrap_or("v1").into(),
            kind: kind.into(),
            plural: plural.into(),
            singular: singular.clone(),
            namespaced: scope == "Namespaced",
            short_names: short.clone(),
            status: v["subresources"]["status"].is_object(),
            crd: Some(name.into()),
            storage: v["storage"] == true,
            printer_columns: v["additionalPrinterColumns"]
                .as_array()
                .cloned()
                .unwrap_or_default(),
        })
        .collect())
}

/// The built-in kinds: (group, version, kind, plural, namespaced, short names, has a status
/// subresource).
type Builtin = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    bool,
    &'static [&'static str],
    bool,
);

#[rustfmt::skip]
const BUILTINS: &[Builtin] = &[
    ("", "v1", "Namespace", "namespaces", false, &["ns"], true),
    ("", "v1", "Node", "nodes", false, &["no"], true),
    ("storage.k8s.io", "v1", "StorageClass", "storageclasses", false, &["sc"], false),
    ("storage.k8s.io", "v1", "CSIStorageCapacity", "csistoragecapacities", true, &[], false),
    ("networking.k8s.io", "v1", "IngressClass", "ingressclasses", false, &[], false),
    ("", "v1", "Secret", "secrets", true, &[], false),
    ("", "v1", "ConfigMap", "configmaps", true, &["cm"], false),
    ("", "v1", "Service", "services", true, &["svc"], true),
    ("", "v1", "ServiceAccount", "serviceaccounts", true, &["sa"], false),
    ("", "v1", "Pod", "pods", true, &["po"], true),
    ("", "v1", "Event", "events", true, &["ev"], false),
    ("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", true, &["pvc"], true),
    ("apps", "v1", "Deployment", "deployments", true, &["deploy"], true),
    ("apps", "v1", "StatefulSet", "statefulsets", true, &["sts"], true),
    ("apps", "v1", "DaemonSet", "daemonsets", true, &["ds"], true),
    ("batch", "v1", "Job", "jobs", true, &[], true),
    ("batch", "v1", "CronJob", "cronjobs", true, &["cj"], true),
    ("rbac.authorization.k8s.io", "v1", "Role", "roles", true, &[], false),
    ("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", true, &[], false),
    ("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", false, &[], false),
    ("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", false, &[], false),
    ("apiextensions.k8s.io", "v1", "CustomResourceDefinition", "customresourcedefinitions", false, &["crd", "crds"], true),
    ("coordination.k8s.io", "v1", "Lease", "leases", true, &[], false),
    ("networking.k8s.io", "v1", "Ingress", "ingresses", true, &["ing"], true),
    ("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", true, &["netpol"], false),
];
