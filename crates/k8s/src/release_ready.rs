//! What the operator really installed for a `WeightsAndBiases` resource: the Helm release it
//! wrote (Helm's `secrets` storage driver, one Secret per revision), read back and judged. The
//! workloads awaited are the ones in the manifest of the revision that carries the resource's
//! values, whatever chart version or component made them. When no release can be read (no
//! permission, another storage driver, an operator that does not deploy through Helm), the chart
//! table predicts them instead, and the reason is given.

use crate::client::Kube;
use serde_json::Value;
use wbstack_chart::{HelmRelease, ManifestObject};
use wbstack_engine::StepError;

/// The kinds a release's readiness waits for.
const AWAITED: [&str; 4] = ["Deployment", "StatefulSet", "DaemonSet", "Job"];

/// One workload to wait for.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Awaited {
    pub kind: String,
    pub name: String,
    pub namespace: String,
}

/// What readiness is judged on.
#[derive(Debug)]
pub(crate) enum Installed {
    /// The revision that carries the resource's values, deployed: its workloads.
    Release {
        version: i64,
        workloads: Vec<Awaited>,
    },
    /// The operator is still installing (no revision with these values yet, or one pending).
    Pending(String),
    /// The revision with these values failed, or one of its hooks did.
    Failed(String),
    /// No release to read: the chart table's prediction, and why.
    Table {
        why: String,
        workloads: Vec<Awaited>,
    },
}

/// The newest revision of release `release` in `ns`, where it can be read.
pub(crate) async fn latest_revision(kube: &Kube, ns: &str, release: &str) -> Option<i64> {
    let secrets = kube
        .list_if_allowed("v1", "Secret", Some(ns), &HelmRelease::selector(release))
        .await
        .ok()??;
    HelmRelease::latest(&secrets)?.ok().map(|r| r.version)
}

/// Reads the release `release` in `ns` and judges it against the resource's `values`; when
/// this run changed the resource, only a revision newer than `newer_than` can carry the change.
pub(crate) async fn installed(
    kube: &Kube,
    ns: &str,
    release: &str,
    want: Wanted<'_>,
    newer_than: Option<i64>,
) -> Result<Installed, StepError> {
    let values = want.values;
    let table = |why: String| Installed::Table {
        why,
        workloads: predicted(ns, release, values),
    };
    let Some(secrets) = kube
        .list_if_allowed("v1", "Secret", Some(ns), &HelmRelease::selector(release))
        .await?
    else {
        return Ok(table(format!(
            "this identity may not list Secrets in {ns}, where the operator keeps the Helm release"
        )));
    };
    let latest = match HelmRelease::latest(&secrets) {
        None => {
            return Ok(table(format!(
                "no Helm release Secret sh.helm.release.v1.{release}.v* in {ns} (the operator stores releases elsewhere, or has not installed one)"
            )))
        }
        Some(Err(e)) => return Ok(table(e.to_string())),
        Some(Ok(r)) => r,
    };
    if let Some(n) = newer_than.filter(|n| latest.version <= *n) {
        return Ok(Installed::Pending(format!(
            "waiting for the operator to install the change (Helm release {release} is still at revision {n}, from before it)"
        )));
    }
    judge(&latest, ns, want)
}

/// What the resource asks the operator to install: its `spec.values` and `spec.chart`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Wanted<'a> {
    pub values: &'a Value,
    pub chart: &'a Value,
}

impl Wanted<'_> {
    /// The chart version the resource names: `spec.chart.version`, or the version in the name
    /// of an archive `spec.chart.path` as `helm package` names it (`operator-wandb-0.43.8.tgz`).
    fn chart_version(&self) -> Option<String> {
        if let Some(v) = self.chart["version"].as_str().filter(|v| !v.is_empty()) {
            return Some(v.to_owned());
        }
        let path = self.chart["path"].as_str()?;
        let file = path.rsplit('/').next()?.strip_suffix(".tgz")?;
        let name = self.chart["name"].as_str().unwrap_or("operator-wandb");
        file.strip_prefix(&format!("{name}-")).map(str::to_owned)
    }
}

/// The verdict on the newest revision.
fn judge(r: &HelmRelease, ns: &str, want: Wanted<'_>) -> Result<Installed, StepError> {
    let v = r.version;
    let installed_version = r.chart.as_ref().map(|c| c.metadata.version.as_str());
    if let (Some(wanted), Some(have)) = (want.chart_version(), installed_version) {
        if wanted != have {
            return Ok(Installed::Pending(format!(
                "the operator has not installed chart version {wanted} yet (Helm release {} revision {v} is version {have})",
                r.name
            )));
        }
    }
    if !contains(&r.config, want.values) {
        return Ok(Installed::Pending(format!(
            "the operator has not installed the resource's values yet (Helm release {} revision {v} carries older ones)",
            r.name
        )));
    }
    if let Some(h) = r.hooks.iter().find(|h| h.last_run.phase == "Failed") {
        return Ok(Installed::Failed(format!(
            "Helm release {} revision {v}: hook {} {} failed",
            r.name, h.kind, h.name
        )));
    }
    match r.info.status.as_str() {
        "deployed" => {}
        "failed" => {
            return Ok(Installed::Pending(format!(
                "Helm release {} revision {v} failed ({}); the operator retries",
                r.name, r.info.description
            )))
        }
        s => {
            return Ok(Installed::Pending(format!(
                "Helm release {} revision {v} is {s}",
                r.name
            )))
        }
    }
    let objects = r
        .objects()
        .map_err(|e| StepError::permanent(e.to_string()))?;
    Ok(Installed::Release {
        version: v,
        workloads: from_manifest(&objects, ns),
    })
}

/// The manifest's workloads, each in its own namespace or the release's.
fn from_manifest(objects: &[ManifestObject], ns: &str) -> Vec<Awaited> {
    objects
        .iter()
        .filter(|o| AWAITED.contains(&o.kind.as_str()))
        .map(|o| Awaited {
            kind: o.kind.clone(),
            name: o.name.clone(),
            namespace: o.namespace.clone().unwrap_or_else(|| ns.to_owned()),
        })
        .collect()
}

/// The chart table's long-running workloads for these values.
pub(crate) fn predicted(ns: &str, release: &str, values: &Value) -> Vec<Awaited> {
    wbstack_chart::operator_wandb()
        .workloads(release, values)
        .filter(|w| w.awaited())
        .map(|w| Awaited {
            kind: w.kind,
            name: w.name,
            namespace: ns.to_owned(),
        })
        .collect()
}

/// Whether every value set in `want` is in `have` (an operator may add values of its own).
fn contains(have: &Value, want: &Value) -> bool {
    match (have, want) {
        (_, Value::Object(w)) if w.is_empty() => true,
        (Value::Object(h), Value::Object(w)) => w
            .iter()
            .all(|(k, wv)| h.get(k).is_some_and(|hv| contains(hv, wv)) || wv.is_null()),
        (h, w) => h == w,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn release(name: &str, ns: &str, values: &Value) -> HelmRelease {
        let objects = [
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": format!("{name}-bc")}}),
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}}),
        ];
        HelmRelease::new(name, ns, 1, "deployed", values.clone(), &objects)
    }

    #[test]
    fn values_are_judged_as_a_subset_of_what_was_installed() {
        let have = json!({"global": {"host": "h", "extra": 1}, "weave": {"install": true}});
        assert!(contains(&have, &json!({"global": {"host": "h"}})));
        assert!(contains(&have, &json!({})));
        assert!(!contains(&have, &json!({"global": {"host": "other"}})));
        assert!(!contains(&have, &json!({"app": {"install": false}})));
    }

    #[test]
    fn the_newest_revision_decides() {
        let values = json!({"weave": {"install": true}});
        let chart = json!({"path": "/charts/operator-wandb-0.43.8.tgz"});
        let want = |values| Wanted {
            values,
            chart: &chart,
        };
        let mut r = release("wandb-weave", "wandb", &values);
        match judge(&r, "wandb", want(&values)).unwrap() {
            Installed::Release { version, workloads } => {
                assert_eq!(version, 1);
                assert_eq!(workloads[0].name, "wandb-weave-bc");
                assert_eq!(workloads[0].namespace, "wandb");
            }
            other => panic!("{other:?}"),
        }
        let newer = json!({"weave": {"install": false}});
        assert!(matches!(
            judge(&r, "wandb", want(&newer)).unwrap(),
            Installed::Pending(m) if m.contains("revision 1 carries older")
        ));
        // Another chart version than the resource names: not this revision.
        r.chart = Some(wbstack_chart::ChartRef {
            metadata: wbstack_chart::ChartMetadata {
                name: "operator-wandb".into(),
                version: "0.43.7".into(),
            },
        });
        assert!(
            matches!(judge(&r, "wandb", want(&values)).unwrap(), Installed::Pending(m) if m.contains("chart version 0.43.8"))
        );
        r.chart.as_mut().unwrap().metadata.version = "0.43.8".into();
        assert!(matches!(
            judge(&r, "wandb", want(&values)).unwrap(),
            Installed::Release { .. }
        ));
        r.info.status = "pending-upgrade".into();
        assert!(
            matches!(judge(&r, "wandb", want(&values)).unwrap(), Installed::Pending(m) if m.contains("pending-upgrade"))
        );
        r.hooks.push(wbstack_chart::Hook {
            name: "wandb-weave-app-rename-pre-hook".into(),
            kind: "Job".into(),
            events: vec!["pre-upgrade".into()],
            last_run: wbstack_chart::LastRun {
                phase: "Failed".into(),
            },
        });
        assert!(
            matches!(judge(&r, "wandb", want(&values)).unwrap(), Installed::Failed(m) if m.contains("app-rename-pre-hook"))
        );
    }
}
