//! The environment itself: metadata, the namespace, the host, the license and the operator.

use crate::build::Builder;
use crate::check::{check_secret_ref, is_dns_label, is_dns_subdomain, Checker};
use crate::compile::names;
use crate::ids::{self, outputs, Input};
use crate::kinds::{LicenseSecret, Namespace, Operator, WandbCrd};
use crate::model::API_VERSION;
use crate::resolve::Resolved;
use serde_json::json;

/// Environment names wbstack uses itself: the local state's `sandbox/` holds the sandbox's
/// environments.
const RESERVED_NAMES: [&str; 1] = ["sandbox"];

pub(super) fn check(c: &mut Checker, r: &Resolved) {
    let p = r.plan;
    if let Some(reg) = &r.spec.images.registry {
        if reg.is_empty() || reg.contains("://") || reg.chars().any(|c| c.is_whitespace()) {
            c.value_help(
                "spec.images.registry",
                format!("`{reg}` is not a registry"),
                "a host and optional path, without a scheme: registry.corp.example/wandb",
            );
        }
    }
    for (i, n) in r.spec.images.pull_secrets.iter().enumerate() {
        if !is_dns_subdomain(n) {
            c.value(
                &format!("spec.images.pullSecrets[{i}]"),
                format!("`{n}` is not a Secret name (a DNS subdomain)"),
            );
        }
    }
    if p.api_version != API_VERSION {
        c.value_help(
            "apiVersion",
            format!("unsupported apiVersion `{}`", p.api_version),
            &format!("use `{API_VERSION}`"),
        );
    }
    if p.kind != "Plan" {
        c.value("kind", format!("expected kind `Plan`, found `{}`", p.kind));
    }
    if !is_dns_label(&p.metadata.name, 40) {
        c.value_help("metadata.name", format!("`{}` is not a valid environment name", p.metadata.name), "use at most 40 lowercase letters, digits and '-', starting and ending with a letter or digit");
    } else if RESERVED_NAMES.contains(&p.metadata.name.as_str()) {
        c.value_help(
            "metadata.name",
            format!("`{}` is a name wbstack keeps for itself", p.metadata.name),
            "the local state keeps the sandbox's environments under `sandbox/`: choose another name",
        );
    }
    let s = r.spec;
    if !is_dns_label(&s.kubernetes.namespace, 63) {
        c.value(
            "spec.kubernetes.namespace",
            format!(
                "`{}` is not a valid namespace name (a DNS label)",
                s.kubernetes.namespace
            ),
        );
    }
    if !is_dns_subdomain(&s.wandb.name) {
        c.value(
            "spec.wandb.name",
            format!(
                "`{}` is not a valid resource name (a DNS subdomain)",
                s.wandb.name
            ),
        );
    }
    check_host(c, &s.wandb.host);
    check_sso(c, r);
    check_license(c, r);
    check_operator(c, r);
    check_chart(c, r);
    if !s.wandb.values.is_null() && !s.wandb.values.is_object() {
        c.value("spec.wandb.values", "values must be a mapping");
    }
    if s.wandb.weave.trace_workers && !s.wandb.weave.enabled {
        c.value(
            "spec.wandb.weave.traceWorkers",
            "trace workers need weave (`enabled: true`)",
        );
    }
}

fn check_host(c: &mut Checker, host: &str) {
    let rest = host
        .strip_prefix("https://")
        .or_else(|| host.strip_prefix("http://"));
    match rest {
        None => c.value_help(
            "spec.wandb.host",
            format!("`{host}` is not an http(s) URL"),
            "like https://wandb.example.com",
        ),
        Some(r) if r.is_empty() || r.starts_with('/') => {
            c.value("spec.wandb.host", format!("`{host}` has no host name"))
        }
        _ => {}
    }
}

fn check_sso(c: &mut Checker, r: &Resolved) {
    let Some(sso) = &r.spec.wandb.sso else {
        return;
    };
    match sso.issuer.strip_prefix("https://") {
        Some(rest) if !rest.is_empty() && !rest.starts_with('/') => {}
        _ => c.value_help(
            "spec.wandb.sso.issuer",
            format!("`{}` is not an https URL", sso.issuer),
            "the provider's issuer, like https://login.example.com/realms/wandb",
        ),
    }
    if sso.client_id.trim().is_empty() {
        c.value("spec.wandb.sso.clientId", "the client id is empty");
    }
    if let Some(secret) = &sso.client_secret {
        check_secret_ref(c, "spec.wandb.sso.clientSecret", secret);
    }
}

fn check_license(c: &mut Checker, r: &Resolved) {
    let l = &r.spec.wandb.license;
    let given = [
        l.env.is_some(),
        l.file.is_some(),
        l.value.is_some(),
        l.secret.is_some(),
    ]
    .iter()
    .filter(|x| **x)
    .count();
    if given != 1 {
        c.value_help(
            "spec.wandb.license",
            if given == 0 {
                "the license is missing".to_string()
            } else {
                "give the license one way only".to_string()
            },
            "set exactly one of env, file, value or secret",
        );
    }
    if let Some(e) = &l.env {
        if e.is_empty()
            || !e.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            || e.as_bytes()[0].is_ascii_digit()
        {
            c.value(
                "spec.wandb.license.env",
                format!("`{e}` is not an environment variable name"),
            );
        }
    }
    if let Some(f) = &l.file {
        let p = std::path::Path::new(f);
        if p.is_absolute() || p.components().any(|c| c == std::path::Component::ParentDir) {
            c.value_help(
                "spec.wandb.license.file",
                format!("`{f}` is outside the plan's directory"),
                "put the license file beside the plan (or below it), or give the license with `env` or `secret`",
            );
        }
    }
    if l.value.is_some() {
        // Whatever holds the plan would hold the license: state, plan copies, the Job's
        // ConfigMap, a GitOps repository.
        c.value_help(
            "spec.wandb.license.value",
            "an inline license would be stored wherever the plan is (its copies in the state, the Job's ConfigMap)",
            "give it with `env`, `file` or `secret`",
        );
    }
    if let Some(s) = &l.secret {
        check_secret_ref(c, "spec.wandb.license.secret", s);
    }
}

fn check_operator(c: &mut Checker, r: &Resolved) {
    let o = &r.spec.wandb.operator;
    if !o.version.split('.').all(|x| x.parse::<u32>().is_ok()) || o.version.split('.').count() != 3
    {
        c.value(
            "spec.wandb.operator.version",
            format!("`{}` is not a version like 1.21.3", o.version),
        );
    }
    if !is_dns_label(&o.namespace, 63) {
        c.value(
            "spec.wandb.operator.namespace",
            format!("`{}` is not a valid namespace name", o.namespace),
        );
    }
}

fn check_chart(c: &mut Checker, r: &Resolved) {
    let ch = &r.spec.wandb.chart;
    match &ch.path {
        Some(p) if !p.ends_with(".tgz") => c.value_help(
            "spec.wandb.chart.path",
            format!("`{p}` is not a chart archive"),
            "the operator installs a local chart only from a .tgz",
        ),
        Some(_) => {}
        None if !(ch.url.starts_with("https://") || ch.url.starts_with("http://")) => c.value(
            "spec.wandb.chart.url",
            format!("`{}` is not a chart repository URL (http or https)", ch.url),
        ),
        None => {}
    }
}

pub(super) fn compile(b: &mut Builder, r: &Resolved) {
    let s = r.spec;
    b.step(ids::NAMESPACE, Namespace { name: r.ns.clone() });
    b.need(Input::new(ids::OPERATOR, outputs::NAMESPACE));
    b.set("/global/host", json!(s.wandb.host));
    b.set("/global/size", json!(s.size.as_str()));
    if let Some(reg) = &s.images.registry {
        b.set("/global/imageRegistry", json!(reg.trim_end_matches('/')));
    }
    if !s.images.pull_secrets.is_empty() {
        let names: Vec<_> = s
            .images
            .pull_secrets
            .iter()
            .map(|n| json!({"name": n}))
            .collect();
        b.set("/global/imagePullSecrets", json!(names));
    }
    if let Some(sc) = &s.kubernetes.storage_class {
        b.set("/global/storageClass", json!(sc));
    }
    if let Some(cp) = &s.wandb.cloud_provider {
        b.set("/global/cloudProvider", json!(cp));
    } else if s.aws.is_some() {
        b.set("/global/cloudProvider", json!("aws"));
    }
    match &s.wandb.license.secret {
        Some(l) => b.set(
            "/global/licenseSecret",
            json!({"name": l.name, "key": l.key}),
        ),
        None => {
            b.step(
                ids::LICENSE,
                LicenseSecret {
                    namespace: r.ns.clone(),
                    name: names::LICENSE.into(),
                    key: names::LICENSE_KEY.into(),
                    source: s.wandb.license.clone(),
                },
            );
            b.need(Input::new(ids::LICENSE, outputs::SECRET));
            b.set(
                "/global/licenseSecret",
                json!({"name": names::LICENSE, "key": names::LICENSE_KEY}),
            );
        }
    }
    if let Some(sso) = &s.wandb.sso {
        let mut oidc = json!({"clientId": sso.client_id, "issuer": sso.issuer, "authMethod": sso.auth_method.as_str()});
        if let Some(secret) = &sso.client_secret {
            oidc["oidcSecret"] = json!({"name": secret.name, "secretKey": secret.key});
        }
        b.set("/global/auth/oidc", oidc);
    }
    let o = &s.wandb.operator;
    b.step(
        ids::WANDB_CRD,
        WandbCrd {
            version: o.version.clone(),
        },
    );
    b.step(
        ids::OPERATOR,
        Operator {
            namespace: o.namespace.clone(),
            version: o.version.clone(),
            install: o.install,
            airgapped: o.airgapped,
            image: crate::digests::pinned(
                &crate::model::with_registry(
                    r.spec.images.registry.as_deref(),
                    &format!("wandb/controller:{}", o.version),
                ),
                &r.spec.images.digests,
            ),
            pull_secrets: s.images.pull_secrets.clone(),
        },
    );
}

/// The resource's `spec.chart`: a local archive, or a chart repository.
pub(crate) fn chart(r: &Resolved) -> serde_json::Value {
    let c = &r.spec.wandb.chart;
    match &c.path {
        Some(path) => json!({"path": path}),
        None => json!({"url": c.url, "name": c.name, "version": c.version}),
    }
}

#[cfg(test)]
mod tests {
    use crate::sections::test_values as values;

    #[test]
    fn sso_names_the_client_secret_by_reference_only() {
        let v = values("    sso:\n      issuer: https://login.example.com/realms/wandb\n      clientId: wandb\n      clientSecret: {name: wandb-oidc, key: OIDC_SECRET}\n").unwrap();
        assert_eq!(
            v["global"]["auth"]["oidc"],
            serde_json::json!({"clientId": "wandb", "issuer": "https://login.example.com/realms/wandb",
                "authMethod": "pkce", "oidcSecret": {"name": "wandb-oidc", "secretKey": "OIDC_SECRET"}})
        );
        let public = values("    sso:\n      issuer: https://login.example.com\n      clientId: wandb\n      authMethod: implicit\n").unwrap();
        assert_eq!(public["global"]["auth"]["oidc"]["authMethod"], "implicit");
        assert!(public["global"]["auth"]["oidc"]["oidcSecret"].is_null());
    }

    #[test]
    fn sso_mistakes_are_named_where_they_are() {
        let e = values("    sso:\n      issuer: http://login.example.com\n      clientId: ' '\n      clientSecret: {name: Bad_Name, key: k}\n").unwrap_err();
        let at: Vec<(&str, usize)> = e.0.iter().map(|d| (d.path.as_str(), d.line)).collect();
        assert_eq!(
            at,
            [
                ("spec.wandb.sso.issuer", 9),
                ("spec.wandb.sso.clientId", 10),
                ("spec.wandb.sso.clientSecret.name", 11)
            ],
            "{e}"
        );
        assert!(e.0[0].message.contains("is not an https URL"), "{e}");
        let e =
            values("    sso:\n      issuer: https://x\n      clientId: w\n      secret: s3cr3t\n")
                .unwrap_err();
        assert!(e.to_string().contains("secret"), "{e}");
        let e =
            values("    values:\n      global:\n        auth:\n          oidc: {secret: s3cr3t}\n")
                .unwrap_err();
        assert!(e.to_string().contains("global.auth.oidc.secret"), "{e}");
    }
}

#[cfg(test)]
mod weave_cache_tests {
    use crate::sections::test_values as values;

    #[test]
    fn the_weave_cache_is_the_charts_and_mistakes_are_named() {
        let w = values("    weave:\n      cache: {intervalInHours: 12, size: 40Gi}\n").unwrap();
        assert_eq!(
            w["weave"]["cache"],
            serde_json::json!({"intervalInHours": 12, "size": "40Gi"})
        );
        let e = values("    weave:\n      cache: {intervalInHours: 0, size: lots}\n").unwrap_err();
        let at: Vec<(&str, usize)> = e.0.iter().map(|d| (d.path.as_str(), d.line)).collect();
        assert_eq!(
            at,
            [
                ("spec.wandb.weave.cache.intervalInHours", 9),
                ("spec.wandb.weave.cache.size", 9)
            ],
            "{e}"
        );
    }
}
