//! The table and the questions asked of it.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::OnceLock;

use crate::naming::fullname;

/// The placeholder for the Helm release name in workload names and labels.
pub const RELEASE: &str = "{release}";

/// A chart: its version and components.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Chart {
    pub name: String,
    pub version: String,
    pub components: Vec<Component>,
}

/// One part of the chart that a values switch installs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Component {
    /// The alias (`app`, `weave-trace`) or subchart name (`mysql`, `redis`).
    pub name: String,
    /// The chart it is built from (`wandb-base` for every W&B service).
    pub chart: String,
    /// The dotted values path that installs it (`app.install`, `global.api.enabled`).
    pub switch: String,
    /// That path's value in the chart's `values.yaml`.
    pub default: bool,
    /// For a W&B service, the chart's own `<alias>.serviceAccount` defaults, where it has any
    /// (`lumen-agent` runs as `lumen`; `clickhouseMigrationJob` makes no account).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<Account>,
    pub workloads: Vec<Workload>,
}

/// A `serviceAccount` section of the chart's values.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Account {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create: Option<bool>,
}

/// A Deployment, StatefulSet, DaemonSet, Job or CronJob the chart renders for a component.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Workload {
    pub kind: String,
    /// With `{release}` for the release name.
    pub name: String,
    /// `spec.replicas` as the chart renders it by default (1 where the kind has none).
    pub replicas: i64,
    /// The Helm hook it runs as (`post-install,pre-upgrade`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hook: Option<String>,
    /// Rendered only when a template condition of the chart holds (not a plain values switch):
    /// it may or may not exist when its component is installed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub conditional: bool,
    /// The labels every render gives it, with `{release}`.
    pub labels: BTreeMap<String, String>,
    /// `spec.selector.matchLabels` (or `spec.jobTemplate`'s pod labels), with `{release}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub selector: BTreeMap<String, String>,
    /// The pod's containers as most renders have them (sidecars included), in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub containers: Vec<Container>,
}

/// A container of a workload's pod: its name and the image the chart's defaults give it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Container {
    pub name: String,
    pub image: String,
}

/// A workload a release of given values makes, with the release name filled in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expected {
    pub component: String,
    pub kind: String,
    pub name: String,
    pub replicas: i64,
    pub hook: Option<String>,
    pub conditional: bool,
    pub labels: BTreeMap<String, String>,
    pub selector: BTreeMap<String, String>,
    pub containers: Vec<Container>,
}

impl Expected {
    /// Whether readiness waits for it: a long-running workload (not a hook, not conditional).
    pub fn awaited(&self) -> bool {
        matches!(
            self.kind.as_str(),
            "Deployment" | "StatefulSet" | "DaemonSet"
        ) && self.hook.is_none()
            && !self.conditional
    }
}

static OPERATOR_WANDB: OnceLock<Chart> = OnceLock::new();

/// The operator-wandb chart this build deploys with (0.43.8).
pub fn operator_wandb() -> &'static Chart {
    OPERATOR_WANDB.get_or_init(|| {
        serde_json::from_str(include_str!("../data/operator-wandb-0.43.8.json"))
            .expect("the embedded chart table is valid (checked by the crate's tests)")
    })
}

/// The value at a dotted path.
fn at<'a>(values: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(values, |v, k| v.get(k))
}

impl Chart {
    /// A component by name.
    pub fn component(&self, name: &str) -> Option<&Component> {
        self.components.iter().find(|c| c.name == name)
    }

    /// The components given values install (their switches, over the chart's defaults).
    pub fn installed<'a>(&'a self, values: &'a Value) -> impl Iterator<Item = &'a Component> {
        self.components.iter().filter(move |c| c.enabled(values))
    }

    /// The workloads a release of these values makes.
    pub fn workloads<'a>(
        &'a self,
        release: &'a str,
        values: &'a Value,
    ) -> impl Iterator<Item = Expected> + 'a {
        self.installed(values).flat_map(move |c| {
            c.workloads.iter().map(move |w| Expected {
                component: c.name.clone(),
                kind: w.kind.clone(),
                name: c.object_name(&w.name, release, values),
                replicas: c.replicas(w, values),
                hook: w.hook.clone(),
                conditional: w.conditional,
                labels: fill(&w.labels, release),
                selector: fill(&w.selector, release),
                containers: w.containers.clone(),
            })
        })
    }
}

/// Installed components whose objects would get one name in a release: the chart renders them
/// over each other.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Collision {
    /// The object name they share (`weave-app`, or `weave-app-bc` for their Deployments).
    pub name: String,
    /// The components, in the chart's order.
    pub components: Vec<String>,
}

impl Chart {
    /// The names two or more installed components would both give an object in a release of
    /// these values (the services' `fullname`s and every workload name).
    pub fn collisions(&self, release: &str, values: &Value) -> Vec<Collision> {
        let mut by_name: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut add = |name: String, component: &str| {
            let v = by_name.entry(name).or_default();
            if !v.iter().any(|c| c == component) {
                v.push(component.to_owned());
            }
        };
        for c in self.installed(values) {
            if let Some(full) = c.fullname(release, values) {
                add(full, &c.name);
            }
        }
        for w in self.workloads(release, values) {
            add(w.name, &w.component);
        }
        by_name
            .into_iter()
            .filter(|(_, cs)| cs.len() > 1)
            .map(|(name, components)| Collision { name, components })
            .collect()
    }
}

/// `appRenamePreHook` as `app-rename-pre-hook`; names already in kebab case are kept.
fn kebab(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for ch in name.chars() {
        if ch.is_ascii_uppercase() {
            out.push('-');
            out.push(ch.to_ascii_lowercase());
        } else {
            out.push(ch);
        }
    }
    out
}

fn fill(m: &BTreeMap<String, String>, release: &str) -> BTreeMap<String, String> {
    m.iter()
        .map(|(k, v)| (k.clone(), v.replace(RELEASE, release)))
        .collect()
}

impl Component {
    /// Whether these values install it. Like Helm, a switch that is absent (or not a boolean)
    /// leaves the chart's default.
    pub fn enabled(&self, values: &Value) -> bool {
        at(values, &self.switch)
            .and_then(Value::as_bool)
            .unwrap_or(self.default)
    }

    /// A W&B service (a `wandb-base` alias) rather than a bundled data store or add-on.
    pub fn is_service(&self) -> bool {
        self.chart == "wandb-base"
    }

    /// The name `wandb-base` knows this alias by in a release of these values: its
    /// `nameOverride`, else the alias.
    fn base_name<'a>(&'a self, values: &'a Value) -> &'a str {
        self.value_str(values, "nameOverride")
            .unwrap_or(self.name.as_str())
    }

    fn value_str<'a>(&self, values: &'a Value, key: &str) -> Option<&'a str> {
        at(values, &format!("{}.{key}", self.name))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    }

    /// The `fullname` a W&B service names its objects by (its Service, ServiceAccount and
    /// PodDisruptionBudget; its Deployment adds a postfix): Helm's rule, so a release name that
    /// contains the alias is used alone. None for a bundled subchart.
    pub fn fullname(&self, release: &str, values: &Value) -> Option<String> {
        self.is_service().then(|| {
            fullname(
                release,
                self.base_name(values),
                self.value_str(values, "fullnameOverride"),
            )
        })
    }

    /// The name of one of its objects from the table's `{release}-<alias>...` form: a W&B
    /// service's objects that start with its `fullname` take the real one; the rest (Jobs named
    /// after their key, bundled subcharts) keep `<release>-...`.
    pub fn object_name(&self, template: &str, release: &str, values: &Value) -> String {
        let prefix = format!("{RELEASE}-{}", self.name);
        let rest = template
            .strip_prefix(&prefix)
            .filter(|r| r.is_empty() || r.starts_with('-'));
        match (rest, self.fullname(release, values)) {
            (Some(rest), Some(full)) => format!("{full}{rest}"),
            _ => template.replace(RELEASE, release),
        }
    }

    /// The ServiceAccount a W&B service's pods run as, for a release of these values: the
    /// `<alias>.serviceAccount.name` the values give, else its `fullname` with the alias
    /// in kebab case (`<release>-<alias>`, or the release name alone when it contains the alias) (`appRenamePreHook` runs as `<release>-app-rename-pre-hook`). None for a
    /// bundled subchart, or where the values make no account (`serviceAccount.create: false`
    /// without a name).
    pub fn service_account(&self, release: &str, values: &Value) -> Option<String> {
        if !self.is_service() {
            return None;
        }
        let sa = at(values, &format!("{}.serviceAccount", self.name));
        let chart = self.account.clone().unwrap_or_default();
        let named = sa
            .and_then(|s| s.get("name"))
            .and_then(Value::as_str)
            .map(str::to_owned)
            .or(chart.name)
            .filter(|n| !n.is_empty());
        let create = sa
            .and_then(|s| s.get("create"))
            .and_then(Value::as_bool)
            .or(chart.create)
            .unwrap_or(true);
        match (named, create) {
            (Some(n), _) => Some(n),
            (None, true) => Some(fullname(
                release,
                &kebab(self.base_name(values)),
                self.value_str(values, "fullnameOverride"),
            )),
            (None, false) => None,
        }
    }

    /// The replicas of one of its workloads: a service's `replicaCount`, or the chart's.
    fn replicas(&self, w: &Workload, values: &Value) -> i64 {
        let own = at(values, &format!("{}.replicaCount", self.name)).and_then(Value::as_i64);
        match (self.is_service(), w.kind.as_str(), own) {
            (true, "Deployment" | "StatefulSet", Some(n)) => n,
            _ => w.replicas,
        }
    }
}
