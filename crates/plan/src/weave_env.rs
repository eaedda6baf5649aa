//! `WF_*` variables in the plan's values that Weave's trace server does not read: a name with a
//! typo (`WF_CLICKHOUSE_PASSWORD` for `WF_CLICKHOUSE_PASS`) is silently ignored by Weave, so
//! `up` stops on it before any change (its `weave-env` preflight).

use serde_json::Value;

/// The `WF_*` names Weave reads: its trace server's settings (`weave/trace_server/environment.py`)
/// and those the operator-wandb chart sets for it (its values and renders, checked by this
/// crate's tests).
pub const WEAVE_VARIABLES: &[&str] = &[
    "WF_CLICKHOUSE_DATABASE",
    "WF_CLICKHOUSE_HOST",
    "WF_CLICKHOUSE_MAX_EXECUTION_TIME",
    "WF_CLICKHOUSE_MAX_MEMORY_USAGE",
    "WF_CLICKHOUSE_PASS",
    "WF_CLICKHOUSE_PORT",
    "WF_CLICKHOUSE_REPLICATED",
    "WF_CLICKHOUSE_REPLICATED_CLUSTER",
    "WF_CLICKHOUSE_USER",
    "WF_ENFORCE_PASSWORD_LENGTH",
    "WF_FILE_STORAGE_AWS_ACCESS_KEY_ID",
    "WF_FILE_STORAGE_AWS_KMS_KEY",
    "WF_FILE_STORAGE_AWS_REGION",
    "WF_FILE_STORAGE_AWS_SECRET_ACCESS_KEY",
    "WF_FILE_STORAGE_AWS_SESSION_TOKEN",
    "WF_FILE_STORAGE_AZURE_ACCESS_KEY",
    "WF_FILE_STORAGE_AZURE_ACCOUNT_URL",
    "WF_FILE_STORAGE_AZURE_CONNECTION_STRING",
    "WF_FILE_STORAGE_GCP_CREDENTIALS_JSON_B64",
    "WF_FILE_STORAGE_PROJECT_ALLOW_LIST",
    "WF_FILE_STORAGE_PROJECT_RAMP_PCT",
    "WF_FILE_STORAGE_URI",
    "WF_SCORING_WORKER_BATCH_SIZE",
    "WF_SCORING_WORKER_BATCH_TIMEOUT",
    "WF_TRACE_SERVER_URL",
];

/// One `WF_*` name Weave does not read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownVariable {
    /// Where it is: `spec.wandb.values.weave-trace.extraEnv.WF_CLICKHOUSE_PASSWORD`.
    pub path: String,
    pub name: String,
    /// The known name it is closest to, if one is close.
    pub closest: Option<&'static str>,
}

/// Every `WF_*` variable under an `env` or `extraEnv` of the plan's values (a mapping of names,
/// or a list of `{name, value}`) that Weave does not read.
pub fn unknown_weave_variables(plan: &crate::Plan) -> Vec<UnknownVariable> {
    let mut out = Vec::new();
    walk(&plan.spec.wandb.values, "spec.wandb.values", &mut out);
    out
}

fn walk(v: &Value, path: &str, out: &mut Vec<UnknownVariable>) {
    let Some(map) = v.as_object() else { return };
    for (k, child) in map {
        let here = format!("{path}.{k}");
        if k == "env" || k == "extraEnv" {
            let names: Vec<String> = match child {
                Value::Object(m) => m.keys().cloned().collect(),
                Value::Array(items) => items
                    .iter()
                    .filter_map(|i| i["name"].as_str().map(str::to_owned))
                    .collect(),
                _ => Vec::new(),
            };
            for name in names {
                if name.starts_with("WF_") && !WEAVE_VARIABLES.contains(&name.as_str()) {
                    out.push(UnknownVariable {
                        path: format!("{here}.{name}"),
                        closest: closest(&name),
                        name,
                    });
                }
            }
        } else {
            walk(child, &here, out);
        }
    }
}

fn closest(name: &str) -> Option<&'static str> {
    // The most similar known name, if it is at least three quarters the same.
    WEAVE_VARIABLES
        .iter()
        .map(|k| (strsim::normalized_damerau_levenshtein(name, k), *k))
        .filter(|(s, _)| *s >= 0.75)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| k)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn plan(values: Value) -> crate::Plan {
        let mut p: crate::Plan = serde_yaml_ng::from_str(
            "apiVersion: wbstack.dev/v1\nkind: Plan\nmetadata: {name: t}\nspec:\n  wandb:\n    host: https://w.example\n    license: {env: WANDB_LICENSE}\n",
        )
        .unwrap();
        p.spec.wandb.values = values;
        p
    }

    #[test]
    fn a_misspelled_name_is_found_with_the_name_meant() {
        let p = plan(json!({
            "weave-trace": {"extraEnv": {"WF_CLICKHOUSE_PASSWORD": "x", "WF_CLICKHOUSE_HOST": "h", "OTHER": "1"}},
            "global": {"env": [{"name": "WF_TRACE_SERVERURL", "value": "u"}]}
        }));
        let u = unknown_weave_variables(&p);
        assert_eq!(u.len(), 2, "{u:?}");
        assert_eq!(u[0].path, "spec.wandb.values.global.env.WF_TRACE_SERVERURL");
        assert_eq!(u[0].closest, Some("WF_TRACE_SERVER_URL"));
        assert_eq!(u[1].name, "WF_CLICKHOUSE_PASSWORD");
        assert_eq!(u[1].closest, Some("WF_CLICKHOUSE_PASS"));
        assert!(unknown_weave_variables(&plan(
            json!({"app": {"env": {"WF_NOT_EVEN_CLOSE_TO_ANYTHING_AT_ALL": 1}}})
        ))[0]
            .closest
            .is_none());
    }
}
