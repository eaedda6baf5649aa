//! The release Secrets the W&B operator's Helm writes (`secrets` storage driver): each install
//! or upgrade adds revision `v<N>` with the objects it made as the manifest and marks the
//! previous one `superseded`; an uninstall removes them all.

use crate::controllers::{meta_str, rt, Controllers};
use serde_json::Value;
use wbstack_chart::{ChartMetadata, ChartRef, HelmRelease, Hook, LastRun};

impl Controllers {
    /// Records a new deployed revision of `release` in `ns`: `objects` as its manifest (hook
    /// objects as its hooks, succeeded), `values` as its config, the chart's version if known.
    pub(crate) fn record_release(
        &self,
        ns: &str,
        release: &str,
        values: &Value,
        chart_version: Option<&str>,
        objects: &[Value],
    ) {
        let Some(r) = rt(&self.cluster, "", "v1", "secrets") else {
            return;
        };
        let revisions = self.revisions(ns, release);
        let mut version = 0;
        for s in &revisions {
            let Ok(mut old) = HelmRelease::from_secret(s) else {
                continue;
            };
            version = version.max(old.version);
            if old.info.status == "deployed" {
                old.info.status = "superseded".into();
                let mut body = old.to_secret();
                body["metadata"]["resourceVersion"] = s["metadata"]["resourceVersion"].clone();
                let _ = self
                    .cluster
                    .update(&r, ns, meta_str(s, "name"), body, false, "helm");
            }
        }
        let (hooks, manifest): (Vec<&Value>, Vec<&Value>) = objects
            .iter()
            .partition(|o| !o["metadata"]["annotations"]["helm.sh/hook"].is_null());
        let manifest: Vec<Value> = manifest.into_iter().map(manifest_object).collect();
        let mut rel = HelmRelease::new(
            release,
            ns,
            version + 1,
            "deployed",
            values.clone(),
            &manifest,
        );
        rel.chart = chart_version.map(|v| ChartRef {
            metadata: ChartMetadata {
                name: "operator-wandb".into(),
                version: v.to_owned(),
            },
        });
        rel.hooks = hooks
            .into_iter()
            .map(|h| Hook {
                name: meta_str(h, "name").to_owned(),
                kind: h["kind"].as_str().unwrap_or("").to_owned(),
                events: h["metadata"]["annotations"]["helm.sh/hook"]
                    .as_str()
                    .unwrap_or("")
                    .split(',')
                    .map(str::to_owned)
                    .collect(),
                last_run: LastRun {
                    phase: "Succeeded".into(),
                },
            })
            .collect();
        let _ = self.cluster.create(&r, Some(ns), rel.to_secret(), "helm");
    }

    /// Removes every revision of `release` (`helm uninstall`).
    pub(crate) fn forget_release(&self, ns: &str, release: &str) {
        let Some(r) = rt(&self.cluster, "", "v1", "secrets") else {
            return;
        };
        for s in self.revisions(ns, release) {
            let _ = self.cluster.delete(&r, ns, meta_str(&s, "name"));
        }
    }

    fn revisions(&self, ns: &str, release: &str) -> Vec<Value> {
        self.cluster
            .all("", "secrets")
            .into_iter()
            .filter(|s| {
                let l = &s["metadata"]["labels"];
                meta_str(s, "namespace") == ns && l["owner"] == "helm" && l["name"] == release
            })
            .collect()
    }
}

/// An object as a chart renders it: without what the server and controllers add.
fn manifest_object(o: &Value) -> Value {
    let mut m = serde_json::json!({
        "apiVersion": o["apiVersion"],
        "kind": o["kind"],
        "metadata": {"name": o["metadata"]["name"], "labels": o["metadata"]["labels"]},
        "spec": o["spec"],
    });
    if let Some(a) = o["metadata"]["annotations"].as_object() {
        m["metadata"]["annotations"] = Value::Object(a.clone());
    }
    m
}
