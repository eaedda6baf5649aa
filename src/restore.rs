//! `restore`: a new environment from another's data. Its plan is the source's saved plan under
//! the new name, in its own namespace, with `spec.restore` naming where the data comes from and
//! the source's bucket used as it is (`mode: existing`, with the source's key). The plan is
//! validated and saved as the new environment's copy before anything is touched; `up` then runs
//! it like any other plan.

use crate::cli::Target;
use crate::env::{location, parse};
use crate::exit::CliError;
use crate::state::Store;
use serde_yaml_ng::{Mapping, Value};
use wbstack_engine::JournalState;

/// What the user asked for.
pub struct Ask {
    pub env: String,
    pub from: String,
    pub to_time: Option<String>,
    pub snapshot: Option<String>,
    pub redis_snapshot: Option<String>,
    pub namespace: Option<String>,
}

/// Derives, checks and saves the new environment's plan; returns the target `up` runs.
pub async fn prepare(
    flag: Option<&str>,
    ask: &Ask,
    context: Option<String>,
) -> Result<Target, CliError> {
    let store = Store::open(&location(flag, None)).await?;
    let source = store.env(&ask.from, false)?;
    let Some(text) = source.plan_copy().await? else {
        return Err(CliError::invalid(format!(
            "no environment `{}` in {} to restore from",
            ask.from,
            store.describe()
        )));
    };
    let recorded = source.read_state().await?;
    let derived = derive(&text, &recorded, ask)?;
    let target = store.env(&ask.env, false)?;
    let file = target.plan_copy_name();
    // Checked in full before the first call anywhere: a bad time or source fails here.
    let loaded = parse(file, derived.clone())?;
    if let Some(existing) = target.plan_copy().await? {
        let same = parse(target.plan_copy_name(), existing)
            .is_ok_and(|e| e.plan.spec.restore == loaded.plan.spec.restore);
        if !same {
            return Err(CliError::invalid(format!(
                "environment `{}` already exists in {}; restore into a new name (or `wbstack resume --env {}` to continue its own run)",
                ask.env,
                store.describe(),
                ask.env
            )));
        }
    }
    target.save_plan(&derived).await?;
    eprintln!(
        "{}: restoring from {} ({}); plan saved as {}",
        ask.env,
        ask.from,
        match (&ask.to_time, &ask.snapshot) {
            (_, Some(s)) => format!("database snapshot {s}"),
            (Some(t), None) => format!("database as of {t}"),
            (None, None) => "database as of its latest restorable time".into(),
        },
        target.plan_copy_name()
    );
    Ok(Target {
        plan: None,
        env: Some(ask.env.clone()),
        sandbox: false,
        context,
    })
}

/// The new environment's plan text, from the source's.
fn derive(source: &str, recorded: &JournalState, ask: &Ask) -> Result<String, CliError> {
    let mut plan: Value = serde_yaml_ng::from_str(source)
        .map_err(|e| CliError::invalid(format!("the saved plan of {}: {e}", ask.from)))?;
    set(
        &mut plan,
        &["metadata", "name"],
        Value::from(ask.env.as_str()),
    );
    let ns = ask.namespace.clone().unwrap_or_else(|| ask.env.clone());
    set(
        &mut plan,
        &["spec", "kubernetes", "namespace"],
        Value::from(ns),
    );
    set(
        &mut plan,
        &["spec", "wandb", "name"],
        Value::from(ask.env.as_str()),
    );
    if let Some(bucket) = source_bucket(&plan, recorded, &ask.from)? {
        set(&mut plan, &["spec", "bucket"], bucket);
    }
    let mut restore = Mapping::new();
    restore.insert("from".into(), ask.from.as_str().into());
    if let Some(t) = &ask.to_time {
        restore.insert("toTime".into(), t.as_str().into());
    }
    if let Some(s) = &ask.snapshot {
        restore.insert("snapshot".into(), s.as_str().into());
    }
    if let Some(s) = &ask.redis_snapshot {
        restore.insert("redisSnapshot".into(), s.as_str().into());
    }
    set(&mut plan, &["spec", "restore"], Value::Mapping(restore));
    serde_yaml_ng::to_string(&plan).map_err(|e| CliError::environment("").because(e))
}

/// The source's bucket as the new environment uses it: as it is, with the source's key, which
/// the new environment's role is granted. `None` when the source made no bucket.
fn source_bucket(
    plan: &Value,
    recorded: &JournalState,
    from: &str,
) -> Result<Option<Value>, CliError> {
    let b = &plan["spec"]["bucket"];
    if b["mode"].as_str() != Some("s3") {
        return Ok(None);
    }
    let bucket = recorded
        .steps
        .get(&wbstack_engine::StepId::new("aws.bucket"));
    if bucket.is_some_and(|s| !s.may_exist()) {
        // Torn down with the source: the new environment makes a bucket of its own.
        eprintln!("the bucket of {from} was removed by its teardown: the restored environment gets a new, empty one");
        let mut own = b.clone();
        if let Some(m) = own.as_mapping_mut() {
            m.remove("name");
        }
        return Ok(Some(own));
    }
    let output = |step: &str, key: &str| {
        recorded
            .steps
            .get(&wbstack_engine::StepId::new(step))
            .filter(|s| s.may_exist())
            .and_then(|s| s.outputs.as_ref())
            .and_then(|o| o.get(key))
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    };
    let (Some(name), Some(key)) = (output("aws.bucket", "name"), output("aws.kms", "arn")) else {
        return Err(CliError::invalid(format!(
            "the state of {from} records no bucket and key (aws.bucket, aws.kms): its bucket cannot be used by the restored environment"
        )));
    };
    let mut m = Mapping::new();
    m.insert("mode".into(), "existing".into());
    m.insert("name".into(), name.into());
    m.insert("provider".into(), "s3".into());
    if let Some(region) = plan["spec"]["aws"]["region"].as_str() {
        m.insert("region".into(), region.into());
    }
    m.insert("kmsKeyArn".into(), key.into());
    if let Some(path) = b["path"].as_str() {
        m.insert("path".into(), path.into());
    }
    Ok(Some(Value::Mapping(m)))
}

/// Sets `path` in a YAML document, making the mappings on the way.
fn set(doc: &mut Value, path: &[&str], value: Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut at = doc;
    for p in parents {
        if !at[*p].is_mapping() {
            if let Some(m) = at.as_mapping_mut() {
                m.insert((*p).into(), Value::Mapping(Mapping::new()));
            }
        }
        at = &mut at[*p];
    }
    if let Some(m) = at.as_mapping_mut() {
        m.insert((*last).into(), value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_new_plan_is_the_sources_under_its_name_with_the_restore_and_the_bucket_as_it_is() {
        let source = "apiVersion: wbstack.dev/v1\nkind: Plan\nmetadata:\n  name: prod\nspec:\n  kubernetes:\n    namespace: wandb\n  wandb:\n    name: prod\n  bucket:\n    mode: s3\n    name: prod-artifacts\n  aws:\n    region: us-west-2\n";
        let mut recorded = JournalState::default();
        for (step, key, v) in [
            ("aws.bucket", "name", "prod-artifacts"),
            ("aws.kms", "arn", "arn:aws:kms:us-west-2:1:key/k"),
        ] {
            let mut outputs = wbstack_engine::Outputs::new();
            outputs.insert(key.into(), v.into());
            recorded.apply(&wbstack_engine::Record::Ready {
                run: wbstack_engine::RunId(1),
                step: wbstack_engine::StepId::new(step),
                fingerprint: wbstack_engine::Fingerprint::of(&step),
                outputs,
                at_ms: 0,
            });
        }
        let ask = Ask {
            env: "dr".into(),
            from: "prod".into(),
            to_time: Some("latest".into()),
            snapshot: None,
            redis_snapshot: None,
            namespace: None,
        };
        let out: Value =
            serde_yaml_ng::from_str(&derive(source, &recorded, &ask).unwrap()).unwrap();
        assert_eq!(out["metadata"]["name"], "dr");
        assert_eq!(out["spec"]["kubernetes"]["namespace"], "dr");
        assert_eq!(out["spec"]["wandb"]["name"], "dr");
        assert_eq!(out["spec"]["bucket"]["mode"], "existing");
        assert_eq!(out["spec"]["bucket"]["name"], "prod-artifacts");
        assert_eq!(
            out["spec"]["bucket"]["kmsKeyArn"],
            "arn:aws:kms:us-west-2:1:key/k"
        );
        assert_eq!(out["spec"]["restore"]["from"], "prod");
        assert_eq!(out["spec"]["restore"]["toTime"], "latest");
    }
}
