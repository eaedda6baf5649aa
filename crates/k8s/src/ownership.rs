//! Several environments on one cluster. Everything an environment applies carries its name in
//! the `wbstack.dev/environment` label: a namespaced object labelled for another environment is
//! never adopted, changed or deleted; a shared one (the namespace, the operator, its CRD) is
//! removed by `down` only while no other environment's resource needs it, and is otherwise left
//! to (and relabelled for) an environment that still uses it.

use crate::client::Kube;
use serde_json::{json, Value};
use std::sync::Arc;
use wbstack_engine::StepError;

/// How an existing Secret stands with this environment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Standing {
    /// Made by wbstack.
    Ours,
    /// The plan adopts it: used as it is, never written.
    Adopted,
}

/// The label naming the environment an object belongs to.
pub const ENVIRONMENT_LABEL: &str = "wbstack.dev/environment";

const WANDB_V1: &str = "apps.wandb.com/v1";

impl Kube {
    /// The same client, acting for one environment.
    pub fn with_environment(mut self, env: &str) -> Self {
        self.environment = Some(Arc::from(env));
        self
    }

    /// The same client, using the Secrets the plan adopts (`spec.kubernetes.adoptSecrets`) as
    /// they are.
    pub fn with_adopted_secrets(mut self, names: &[String]) -> Self {
        self.adopted_secrets = Arc::from(names.to_vec());
        self
    }

    /// How an existing Secret stands with this environment: its own (wbstack's label), adopted
    /// by the plan by name (used as it is, never written), or refused (another environment's,
    /// or anyone else's that wbstack would otherwise overwrite).
    pub(crate) fn secret_standing(&self, o: &Value) -> Result<Standing, StepError> {
        self.refuse_foreign(o)?;
        let name = o["metadata"]["name"].as_str().unwrap_or("");
        if self.adopted_secrets.iter().any(|a| a == name) {
            return Ok(Standing::Adopted);
        }
        if o["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "wbstack" {
            return Ok(Standing::Ours);
        }
        Err(StepError::permanent(format!(
            "Secret {}/{name} exists and is not wbstack's (no label app.kubernetes.io/managed-by=wbstack): \
             wbstack would overwrite it; name it in spec.kubernetes.adoptSecrets to use it as it is \
             (never written nor deleted), or remove it",
            o["metadata"]["namespace"].as_str().unwrap_or("")
        )))
    }

    /// The environment this client acts for.
    pub fn environment(&self) -> Option<&str> {
        self.environment.as_deref()
    }

    /// The object with this environment's label.
    pub(crate) fn stamped(&self, obj: &Value) -> Value {
        let mut o = obj.clone();
        if let Some(env) = self.environment() {
            if o["metadata"].is_object() {
                o["metadata"]["labels"][ENVIRONMENT_LABEL] = json!(env);
            }
        }
        o
    }

    /// The other environment an object is labelled for, if it is not this one's.
    pub(crate) fn foreign<'a>(&self, o: &'a Value) -> Option<&'a str> {
        let theirs = o["metadata"]["labels"][ENVIRONMENT_LABEL].as_str()?;
        (Some(theirs) != self.environment()).then_some(theirs)
    }

    /// Whether an object carries this environment's label.
    pub(crate) fn is_mine(&self, o: &Value) -> bool {
        self.environment().is_some()
            && o["metadata"]["labels"][ENVIRONMENT_LABEL].as_str() == self.environment()
    }

    /// Whether the object exists and carries this environment's label.
    pub(crate) async fn marked(
        &self,
        api_version: &str,
        kind: &str,
        ns: Option<&str>,
        name: &str,
    ) -> Result<bool, StepError> {
        Ok(self
            .get(api_version, kind, ns, name)
            .await?
            .is_some_and(|o| self.is_mine(&o)))
    }

    /// [`Kube::marked`] for the object a manifest describes.
    pub(crate) async fn marked_manifest(&self, m: &Value) -> Result<bool, StepError> {
        Ok(self
            .get_manifest(m)
            .await?
            .is_some_and(|o| self.is_mine(&o)))
    }

    /// Refuses an object another environment owns: nothing of theirs is adopted or changed.
    pub(crate) fn refuse_foreign(&self, o: &Value) -> Result<(), StepError> {
        match self.foreign(o) {
            Some(other) => Err(StepError::permanent(format!(
                "{} {}{} belongs to environment {other} (label {ENVIRONMENT_LABEL}); \
                 give this environment its own namespace",
                o["kind"].as_str().unwrap_or("object"),
                o["metadata"]["namespace"]
                    .as_str()
                    .map(|n| format!("{n}/"))
                    .unwrap_or_default(),
                o["metadata"]["name"].as_str().unwrap_or(""),
            ))),
            None => Ok(()),
        }
    }

    /// Deletes an object unless another environment owns it (absent counts as done).
    pub(crate) async fn delete_own(
        &self,
        api_version: &str,
        kind: &str,
        ns: Option<&str>,
        name: &str,
    ) -> Result<(), StepError> {
        match self.get(api_version, kind, ns, name).await? {
            Some(o) if self.foreign(&o).is_some() => {
                tracing::debug!(target: "wbstack_k8s::calls", "{kind} {name} is another environment's: left");
                Ok(())
            }
            Some(_) => self.delete(api_version, kind, ns, name).await,
            None => Ok(()),
        }
    }

    /// [`Kube::delete_own`] of the object a manifest describes.
    pub(crate) async fn delete_own_manifest(&self, m: &Value) -> Result<(), StepError> {
        self.delete_own(
            m["apiVersion"].as_str().unwrap_or(""),
            m["kind"].as_str().unwrap_or(""),
            m["metadata"]["namespace"].as_str(),
            m["metadata"]["name"].as_str().unwrap_or(""),
        )
        .await
    }

    /// Sets one label on an object (a merge patch); one already gone is left gone.
    pub(crate) async fn relabel(&self, o: &Value, key: &str, value: &str) -> Result<(), StepError> {
        let (api_version, kind) = (
            o["apiVersion"].as_str().unwrap_or(""),
            o["kind"].as_str().unwrap_or(""),
        );
        let name = o["metadata"]["name"].as_str().unwrap_or("");
        let api = self.api(api_version, kind, o["metadata"]["namespace"].as_str())?;
        let patch = json!({"metadata": {"labels": {key: value}}});
        tracing::debug!(target: "wbstack_k8s::calls", "label {kind} {name} {key}={value}");
        match api
            .patch(
                name,
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
            Err(e) => Err(crate::client::classify(e, &format!("label {kind} {name}"))),
        }
    }

    /// The resources of the kinds `needers` names, in the cluster or in one namespace, that
    /// still need a shared object (an operator, its CRD, the namespace): any environment's
    /// (this one's too: one it keeps, adopted, or one still being finalized) or nobody's. One
    /// being deleted still needs them while it has finalizers: the operator's own must be
    /// removed by the operator, or the resource never goes.
    pub(crate) async fn needing_resources(
        &self,
        ns: Option<&str>,
        needers: Needers,
    ) -> Result<Vec<Value>, StepError> {
        let mut out = Vec::new();
        for (api_version, kind) in needers {
            match self.list(api_version, kind, ns, "").await {
                Ok(l) => out.extend(l.into_iter().filter(needs_shared)),
                // No CRD, no resource.
                Err(e) if e.message().contains("404") => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }
}

/// The kinds of resource that need a shared object: (apiVersion, kind).
pub(crate) type Needers = &'static [(&'static str, &'static str)];

/// What needs the W&B operator and its CRD.
pub(crate) const WANDB_RESOURCES: Needers = &[(WANDB_V1, "WeightsAndBiases")];

/// What needs the Altinity operator and its CRDs.
pub(crate) const ALTINITY_RESOURCES: Needers = &[
    ("clickhouse.altinity.com/v1", "ClickHouseInstallation"),
    (
        "clickhouse-keeper.altinity.com/v1",
        "ClickHouseKeeperInstallation",
    ),
];

/// What needs a namespace wbstack made: any resource an operator acts on.
pub(crate) const ANY_RESOURCE: Needers = &[
    (WANDB_V1, "WeightsAndBiases"),
    ("clickhouse.altinity.com/v1", "ClickHouseInstallation"),
    (
        "clickhouse-keeper.altinity.com/v1",
        "ClickHouseKeeperInstallation",
    ),
];

/// Whether a WeightsAndBiases resource needs the shared objects: it is not being deleted, or it
/// still has finalizers to run.
fn needs_shared(o: &Value) -> bool {
    let finalizing = o["metadata"]["finalizers"]
        .as_array()
        .is_some_and(|f| !f.is_empty());
    o["metadata"]["deletionTimestamp"].is_null() || finalizing
}

/// What a shared object's `down` does when other resources still need it.
pub(crate) enum Shared {
    /// Nobody else needs it: it goes.
    Remove,
    /// Left in place (the message says for whom), and handed to `heir`, the environment of a
    /// resource that needs it, if one is wbstack's.
    Leave {
        message: String,
        heir: Option<String>,
    },
}

/// Decides about a shared object (`what`, e.g. "the W&B operator") in `ns` or cluster-wide.
pub(crate) async fn shared(
    kube: &Kube,
    what: &str,
    ns: Option<&str>,
    needers: Needers,
) -> Result<Shared, StepError> {
    let others = kube.needing_resources(ns, needers).await?;
    if others.is_empty() {
        return Ok(Shared::Remove);
    }
    let names: Vec<String> = others
        .iter()
        .map(|o| {
            format!(
                "{} {}/{}{}",
                o["kind"].as_str().unwrap_or(""),
                o["metadata"]["namespace"].as_str().unwrap_or(""),
                o["metadata"]["name"].as_str().unwrap_or(""),
                if kube.is_mine(o) {
                    " (this environment's, not removed)"
                } else {
                    ""
                }
            )
        })
        .collect();
    // Handed to another environment that needs it; this environment's own resource (kept, or
    // still finalizing) keeps it this environment's.
    let heir = others
        .iter()
        .filter_map(|o| o["metadata"]["labels"][ENVIRONMENT_LABEL].as_str())
        .find(|e| Some(*e) != kube.environment())
        .filter(|_| others.iter().all(|o| !kube.is_mine(o)))
        .map(str::to_owned);
    let message = format!(
        "{what} left in place: still needed by {}{}",
        names.join(", "),
        heir.as_ref()
            .map(|e| format!("; environment {e} now owns it"))
            .unwrap_or_default()
    );
    Ok(Shared::Leave { message, heir })
}

/// Whether `down` may remove shared objects (`live`, as read): if other resources still need
/// them, they are handed to the environment of one of those (relabelled), the run is told why,
/// and false is returned.
///
/// The heir may be going down at the same moment: if its `down` read the objects before they
/// carried its label, it left them as this environment's. So once they are relabelled, the
/// need is asked again, and if nobody needs them any more, this environment removes them.
pub(crate) async fn may_remove_shared(
    kube: &Kube,
    ctx: &wbstack_engine::StepCtx,
    what: &str,
    ns: Option<&str>,
    needers: Needers,
    live: &[Value],
) -> Result<bool, StepError> {
    match shared(kube, what, ns, needers).await? {
        Shared::Remove => Ok(true),
        Shared::Leave { message, heir } => {
            if let Some(heir) = &heir {
                for o in live {
                    kube.relabel(o, ENVIRONMENT_LABEL, heir).await?;
                }
                if matches!(shared(kube, what, ns, needers).await?, Shared::Remove) {
                    tracing::info!(target: "wbstack_k8s", "{what}: no longer needed by environment {heir}");
                    return Ok(true);
                }
            }
            tracing::info!(target: "wbstack_k8s", "{message}");
            let reason = match &heir {
                Some(env) => format!("left to {env}: {message}"),
                None => message,
            };
            let to = heir;
            ctx.leave(reason, to);
            Ok(false)
        }
    }
}

/// `down` of an operator's install (`manifests`, in the order they are applied): only what this
/// environment installed goes, in reverse, and only once no resource of `needers` needs it;
/// otherwise it is left and handed on (see [`may_remove_shared`]).
pub(crate) async fn remove_installed(
    kube: &Kube,
    ctx: &wbstack_engine::StepCtx,
    manifests: &[Value],
    what: &str,
    needers: Needers,
) -> Result<(), StepError> {
    let mut live = Vec::new();
    for m in manifests.iter().rev() {
        if let Some(l) = kube.get_manifest(m).await? {
            if ours_to_remove(kube, &l) {
                live.push((m, l));
            }
        }
    }
    let objects: Vec<Value> = live.iter().map(|(_, l)| l.clone()).collect();
    if live.is_empty() || !may_remove_shared(kube, ctx, what, None, needers, &objects).await? {
        return Ok(());
    }
    for (m, _) in live {
        kube.delete_manifest(m).await?;
    }
    Ok(())
}

/// Whether this environment may change or remove a shared object wbstack made: one labelled for
/// it, or one made before objects carried an environment.
pub(crate) fn ours_to_remove(kube: &Kube, o: &Value) -> bool {
    o["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "wbstack"
        && kube.foreign(o).is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kube(env: &str) -> Kube {
        // A client that is never used: only labels are looked at.
        let config = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
        Kube::new(kube::Client::try_from(config).unwrap()).with_environment(env)
    }

    #[test]
    fn a_resource_being_deleted_needs_the_operator_while_it_has_finalizers() {
        let cr = |env: &str, deleting: bool, finalizers: &[&str]| {
            let mut o = json!({"metadata": {"labels": {ENVIRONMENT_LABEL: env}}});
            if deleting {
                o["metadata"]["deletionTimestamp"] = json!("2026-12-02T00:00:00Z");
            }
            o["metadata"]["finalizers"] = json!(finalizers);
            o
        };
        let fin = ["finalizer.app.wandb.com"];
        assert!(needs_shared(&cr("b", false, &[])));
        assert!(needs_shared(&cr("b", true, &fin)));
        assert!(!needs_shared(&cr("b", true, &[])));
        // This environment's own, kept or still finalizing, needs them as much.
        assert!(needs_shared(&cr("a", false, &fin)));
        assert!(needs_shared(&cr("a", true, &fin)));
        // Nobody's resource needs them too.
        assert!(needs_shared(&json!({"metadata": {}})));
    }

    #[tokio::test]
    async fn objects_are_stamped_and_another_environments_are_refused() {
        let k = kube("a");
        let o = k.stamped(&json!({"kind": "Secret", "metadata": {"name": "s", "namespace": "ns"}}));
        assert_eq!(o["metadata"]["labels"][ENVIRONMENT_LABEL], "a");
        assert!(k.refuse_foreign(&o).is_ok());
        let err = kube("b").refuse_foreign(&o).unwrap_err();
        assert!(
            err.message()
                .contains("Secret ns/s belongs to environment a"),
            "{}",
            err.message()
        );
        // An object of nobody's environment is not refused.
        assert!(k
            .refuse_foreign(&json!({"metadata": {"name": "x"}}))
            .is_ok());
    }
}
