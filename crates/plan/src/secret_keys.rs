//! Secrets stay in Secrets: the values a plan gives the resource may neither carry a secret in
//! plaintext (a password, the license, a token, an access or private key) nor redirect the
//! Secret references wbstack manages (`global.licenseSecret`, the password Secrets), unless
//! `spec.wandb.allowValues` names the key.

use crate::check::Checker;
use crate::kinds::StepKind;
use crate::model::Plan;
use serde_json::Value;

/// Whether a key names a secret held in plaintext (compared without case or separators):
/// `password`, `rootPassword`, `license`, `token`, `apiKey`, `accessKey`, `secretKey`,
/// `privateKey`, `clientSecret`, ... A key naming a Secret (`passwordSecret`, `secretName`,
/// `existingSecret`) is not one.
pub fn secret_like_key(key: &str) -> bool {
    const KEYS: [&str; 16] = [
        "password",
        "passwd",
        "license",
        "licensekey",
        "token",
        "apikey",
        "accesskey",
        "accesskeyid",
        "secretkey",
        "secretaccesskey",
        "privatekey",
        "secret",
        "clientsecret",
        "jwtsecret",
        "sessionsecret",
        "connectionstring",
    ];
    let k: String = key
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect::<String>()
        .to_ascii_lowercase();
    KEYS.contains(&k.as_str()) || k.ends_with("password") || k.ends_with("token")
}

/// Every leaf of a values tree: its dotted path and value.
fn leaves<'a>(v: &'a Value, path: &mut Vec<String>, out: &mut Vec<(Vec<String>, &'a Value)>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, x) in m {
                path.push(k.clone());
                leaves(x, path, out);
                path.pop();
            }
        }
        _ => out.push((path.clone(), v)),
    }
}

/// The Secret references among wbstack's own values: the path down to the first key that
/// names a Secret (`global.licenseSecret`, `global.mysql.passwordSecret`, ...).
fn managed(plan: &Plan) -> Vec<Vec<String>> {
    let mut own = plan.clone();
    own.spec.wandb.values = Value::Null;
    let mut refs: Vec<Vec<String>> = Vec::new();
    for step in crate::compile(&own) {
        let StepKind::WandbResource(w) = &step.kind else {
            continue;
        };
        let mut all = Vec::new();
        leaves(&w.values, &mut Vec::new(), &mut all);
        let bound = w.bindings.iter().map(|b| {
            b.pointer
                .trim_start_matches('/')
                .split('/')
                .map(str::to_owned)
                .collect::<Vec<_>>()
        });
        for path in all.into_iter().map(|(p, _)| p).chain(bound) {
            if let Some(i) = path
                .iter()
                .position(|k| k.to_ascii_lowercase().contains("secret"))
            {
                let root = path[..=i].to_vec();
                if !refs.contains(&root) {
                    refs.push(root);
                }
            }
        }
    }
    refs
}

/// Refuses values that put a secret in plaintext into the resource, or that override a Secret
/// reference wbstack manages, unless `spec.wandb.allowValues` names the key.
pub(crate) fn check_values(c: &mut Checker, plan: &Plan) {
    let values = &plan.spec.wandb.values;
    if !values.is_object() {
        return;
    }
    let allowed = &plan.spec.wandb.allow_values;
    let refs = managed(plan);
    let mut all = Vec::new();
    leaves(values, &mut Vec::new(), &mut all);
    for (path, v) in all {
        let dotted = path.join(".");
        if allowed
            .iter()
            .any(|a| dotted == *a || dotted.starts_with(&format!("{a}.")))
        {
            continue;
        }
        let at = format!("spec.wandb.values.{dotted}");
        let help = format!(
            "keep it in a Secret the chart reads (its `...Secret` keys), or name `{dotted}` in \
             spec.wandb.allowValues to take it on yourself"
        );
        if let Some(r) = refs
            .iter()
            .find(|r| path.starts_with(r) || r.starts_with(&path))
        {
            c.value_help(
                &at,
                format!(
                    "`{}` is the Secret reference wbstack manages; values may not redirect it",
                    r.join(".")
                ),
                &help,
            );
        } else if v.as_str().is_some_and(|s| !s.is_empty())
            && path.last().is_some_and(|k| secret_like_key(k))
        {
            c.value_help(
                &at,
                "a secret in plaintext would be stored in the resource's values (and shown by \
                 `render`)",
                &help,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plaintext_secrets_are_told_from_references_to_secrets() {
        for k in [
            "password",
            "rootPassword",
            "license",
            "apiKey",
            "access_key",
            "secretKey",
            "clientSecret",
            "authToken",
        ] {
            assert!(secret_like_key(k), "{k}");
        }
        for k in [
            "passwordSecret",
            "licenseSecret",
            "secretName",
            "existingSecret",
            "host",
            "tokenTTL",
        ] {
            assert!(!secret_like_key(k), "{k}");
        }
    }
}
