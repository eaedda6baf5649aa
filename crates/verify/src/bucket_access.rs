//! Who the bucket probe acts as: the pods' identity, found as the pods find it. Access keys in
//! the Secret the values name (`global.bucket.secret`); else the IAM role on the pods'
//! ServiceAccount (IRSA), taken on with a token the cluster issues for that ServiceAccount;
//! else (the pods use the node's role) wbstack's own credentials, said as a warning.

use crate::bucket_probe::S3Access;
use crate::wiring::{Source, Wiring};
use aws_sdk_s3::config::Credentials;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::PostParams;
use wbstack_k8s::Kube;

const ROLE: &str = "eks.amazonaws.com/role-arn";

/// The identity could not be taken on: the role refused the ServiceAccount's token.
#[derive(Debug)]
pub struct Refused {
    pub who: String,
    pub why: String,
}

fn client(base: &aws_sdk_s3::Client, creds: Credentials) -> aws_sdk_s3::Client {
    let conf = base
        .config()
        .to_builder()
        .credentials_provider(creds)
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

/// The pods' identity for S3.
pub async fn access(
    w: &Wiring,
    s3: &aws_sdk_s3::Client,
    sts: &aws_sdk_sts::Client,
) -> Result<S3Access, Refused> {
    let secret = &w.values["global"]["bucket"]["secret"];
    if let Some(name) = secret["secretName"].as_str().filter(|n| !n.is_empty()) {
        let key = |k: &str, d: &str| secret[k].as_str().unwrap_or(d).to_owned();
        let who = format!("the access keys in Secret {}/{name}", w.namespace);
        let id = w.secret(name, &key("accessKeyName", "ACCESS_KEY")).await;
        let sk = w.secret(name, &key("secretKeyName", "SECRET_KEY")).await;
        return match (id, sk) {
            (Ok(id), Ok(sk)) => Ok(S3Access {
                client: client(
                    s3,
                    Credentials::new(id.expose(), sk.expose(), None, None, "pods"),
                ),
                who,
                not_the_pods: None,
            }),
            (Err(why), _) | (_, Err(why)) => Err(Refused { who, why }),
        };
    }
    match &w.source {
        Source::Api(kube) => as_the_pods(kube, w, s3, sts).await,
        Source::Env(_) => in_the_pod(s3, sts).await,
    }
}

/// From outside: the role on the pods' ServiceAccount, with a token the cluster issues for it.
async fn as_the_pods(
    kube: &Kube,
    w: &Wiring,
    s3: &aws_sdk_s3::Client,
    sts: &aws_sdk_sts::Client,
) -> Result<S3Access, Refused> {
    let ambient = |why: String| S3Access {
        client: s3.clone(),
        who: "wbstack's own credentials".into(),
        not_the_pods: Some(why),
    };
    let Some((sa, role)) = pods_role(kube, w).await else {
        return Ok(ambient(
            "no pod's ServiceAccount names an IAM role: the pods use the node's role, which verify cannot take on from here".into(),
        ));
    };
    let who = format!("role {role} as ServiceAccount {}/{sa}", w.namespace);
    let token = match token(kube, &w.namespace, &sa).await {
        Ok(t) => t,
        Err(e) => {
            return Ok(ambient(format!(
                "the cluster issued no token for ServiceAccount {}/{sa}: {e}",
                w.namespace
            )))
        }
    };
    assume(s3, sts, &role, &token, who).await
}

/// Inside the probe pod: the role EKS gave the pod's ServiceAccount (the token file and role
/// its webhook put in the environment), else the pod's own credentials (the node's role).
async fn in_the_pod(
    s3: &aws_sdk_s3::Client,
    sts: &aws_sdk_sts::Client,
) -> Result<S3Access, Refused> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let (Some(role), Some(file)) = (var("AWS_ROLE_ARN"), var("AWS_WEB_IDENTITY_TOKEN_FILE")) else {
        return Ok(S3Access {
            client: s3.clone(),
            who: "the probe pod's own credentials (its ServiceAccount names no role)".into(),
            not_the_pods: None,
        });
    };
    let who = match (
        var(crate::job::POD_NAMESPACE),
        var(crate::job::POD_SERVICE_ACCOUNT),
    ) {
        (Some(ns), Some(sa)) => format!("role {role} as ServiceAccount {ns}/{sa}"),
        _ => format!("role {role} as the probe pod's ServiceAccount"),
    };
    let token = std::fs::read_to_string(&file).map_err(|e| Refused {
        who: who.clone(),
        why: format!("{file}: {e}"),
    })?;
    assume(s3, sts, &role, token.trim(), who).await
}

async fn assume(
    s3: &aws_sdk_s3::Client,
    sts: &aws_sdk_sts::Client,
    role: &str,
    token: &str,
    who: String,
) -> Result<S3Access, Refused> {
    wbstack_engine::register_redaction(token);
    let assumed = sts
        .assume_role_with_web_identity()
        .role_arn(role)
        .role_session_name("wbstack-verify")
        .web_identity_token(token)
        .duration_seconds(900)
        .send()
        .await
        .map_err(|e| Refused {
            who: who.clone(),
            why: format!(
                "AssumeRoleWithWebIdentity: {}",
                wbstack_engine::redact(&aws_sdk_sts::error::DisplayErrorContext(&e).to_string())
            ),
        })?;
    let Some(c) = assumed.credentials() else {
        let why = "AssumeRoleWithWebIdentity answered no credentials".into();
        return Err(Refused { who, why });
    };
    wbstack_engine::register_redaction(c.secret_access_key());
    wbstack_engine::register_redaction(c.session_token());
    let creds = Credentials::new(
        c.access_key_id(),
        c.secret_access_key(),
        Some(c.session_token().to_owned()),
        None,
        "irsa",
    );
    Ok(S3Access {
        client: client(s3, creds),
        who,
        not_the_pods: None,
    })
}

/// The ServiceAccount and role of the workload that writes the bucket (the API, else the app,
/// else any of the resource's workloads whose ServiceAccount names a role).
async fn pods_role(kube: &Kube, w: &Wiring) -> Option<(String, String)> {
    for sa in crate::pods::service_accounts(kube, &w.namespace, &w.resource).await {
        let Ok(Some(obj)) = kube
            .get("v1", "ServiceAccount", Some(&w.namespace), &sa)
            .await
        else {
            continue;
        };
        if let Some(role) = obj["metadata"]["annotations"][ROLE].as_str() {
            return Some((sa, role.to_owned()));
        }
    }
    None
}

/// A short-lived token for the ServiceAccount, for STS (`sts.amazonaws.com`), as EKS mounts one.
async fn token(kube: &Kube, ns: &str, sa: &str) -> Result<String, String> {
    let api: kube::Api<ServiceAccount> = kube::Api::namespaced(kube.client().clone(), ns);
    let req = TokenRequest {
        spec: TokenRequestSpec {
            audiences: vec!["sts.amazonaws.com".into()],
            expiration_seconds: Some(600),
            ..Default::default()
        },
        ..Default::default()
    };
    let answered = api
        .create_token_request(sa, &PostParams::default(), &req)
        .await
        .map_err(|e| e.to_string())?;
    answered
        .status
        .map(|s| s.token)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| "the TokenRequest came back without a token".into())
}
