//! `spec.wandb.ingress`: the chart's Ingress, for the AWS Load Balancer Controller with the
//! annotations terraform-aws-wandb gives it (a named load balancer, IP targets, HTTPS on 443
//! with the ACM certificate, its scheme and inbound CIDRs), or another ingress class.

use crate::build::Builder;
use crate::check::Checker;
use crate::model::IngressSpec;
use crate::resolve::Resolved;
use serde_json::{json, Map, Value};

const ALB: &str = "alb.ingress.kubernetes.io";

pub(super) fn check(c: &mut Checker, r: &Resolved) {
    let Some(i) = &r.spec.wandb.ingress else {
        return;
    };
    if i.class.trim().is_empty() {
        c.value("spec.wandb.ingress.class", "the ingress class is empty");
    }
    if i.class != "alb" {
        for (field, set) in [
            ("scheme", i.scheme.is_some()),
            ("certificateArn", i.certificate_arn.is_some()),
            ("sslRedirect", i.ssl_redirect.is_some()),
            ("inboundCidrs", !i.inbound_cidrs.is_empty()),
            ("subnets", !i.subnets.is_empty()),
        ] {
            if set {
                c.at(
                    &format!("spec.wandb.ingress.{field}"),
                    true,
                    format!("`{field}` is for the AWS Load Balancer Controller (class alb)"),
                    Some("set class: alb, or put the class's own settings in annotations"),
                );
            }
        }
        return;
    }
    if let Some(s) = &i.scheme {
        if s != "internet-facing" && s != "internal" {
            c.value(
                "spec.wandb.ingress.scheme",
                format!("`{s}` is not an ALB scheme: internet-facing or internal"),
            );
        }
    }
    if let Some(arn) = &i.certificate_arn {
        if !arn.starts_with("arn:aws") || !arn.contains(":acm:") {
            c.value(
                "spec.wandb.ingress.certificateArn",
                format!("`{arn}` is not an ACM certificate ARN"),
            );
        }
    }
    if r.spec.wandb.host.starts_with("https://") && i.certificate_arn.is_none() {
        c.value_help(
            "spec.wandb.ingress",
            "the host is https:// but the ALB has no certificate to serve it with",
            "set certificateArn, or use an http:// host",
        );
    }
}

/// `ingress.class` and its annotations.
pub(super) fn compile(b: &mut Builder, r: &Resolved) {
    let Some(i) = &r.spec.wandb.ingress else {
        return;
    };
    b.set("/ingress/class", json!(i.class));
    let mut a = if i.class == "alb" {
        alb(i, r.env)
    } else {
        Map::new()
    };
    for (k, v) in &i.annotations {
        a.insert(k.clone(), json!(v));
    }
    if !a.is_empty() {
        b.set("/ingress/annotations", Value::Object(a));
    }
}

fn alb(i: &IngressSpec, env: &str) -> Map<String, Value> {
    let mut a = Map::new();
    let mut set = |k: &str, v: String| {
        a.insert(format!("{ALB}/{k}"), json!(v));
    };
    // An ALB name is at most 32 characters.
    let prefix: String = env.chars().take(32 - "-alb-k8s".len()).collect();
    set("load-balancer-name", format!("{prefix}-alb-k8s"));
    set(
        "scheme",
        i.scheme.clone().unwrap_or_else(|| "internet-facing".into()),
    );
    set("target-type", "ip".into());
    match &i.certificate_arn {
        Some(arn) => {
            set("certificate-arn", arn.clone());
            if i.ssl_redirect.unwrap_or(true) {
                set("listen-ports", r#"[{"HTTP": 80}, {"HTTPS": 443}]"#.into());
                set("ssl-redirect", "443".into());
            } else {
                set("listen-ports", r#"[{"HTTPS": 443}]"#.into());
            }
        }
        None => set("listen-ports", r#"[{"HTTP": 80}]"#.into()),
    }
    if !i.inbound_cidrs.is_empty() {
        set("inbound-cidrs", i.inbound_cidrs.join(","));
    }
    if !i.subnets.is_empty() {
        set("subnets", i.subnets.join(","));
    }
    a
}

#[cfg(test)]
mod tests {
    use crate::sections::test_values as values;

    #[test]
    fn an_alb_gets_what_terraform_aws_wandb_gives_it() {
        let v = values("    ingress:\n      class: alb\n      scheme: internal\n      certificateArn: arn:aws:acm:us-west-2:123456789012:certificate/abc\n      inboundCidrs: [10.0.0.0/8]\n").unwrap();
        let a = &v["ingress"]["annotations"];
        assert_eq!(v["ingress"]["class"], "alb");
        assert_eq!(a["alb.ingress.kubernetes.io/scheme"], "internal");
        assert_eq!(a["alb.ingress.kubernetes.io/target-type"], "ip");
        assert_eq!(
            a["alb.ingress.kubernetes.io/load-balancer-name"],
            "dev-alb-k8s"
        );
        assert_eq!(a["alb.ingress.kubernetes.io/ssl-redirect"], "443");
        assert_eq!(a["alb.ingress.kubernetes.io/inbound-cidrs"], "10.0.0.0/8");
        assert_eq!(
            a["alb.ingress.kubernetes.io/certificate-arn"],
            "arn:aws:acm:us-west-2:123456789012:certificate/abc"
        );
    }

    #[test]
    fn mistakes_are_named_where_they_are() {
        let e = values("    ingress:\n      class: alb\n").unwrap_err();
        assert!(
            e.0[0].message.contains("no certificate"),
            "{}",
            e.0[0].message
        );
        let e = values("    ingress:\n      class: nginx\n      scheme: internal\n").unwrap_err();
        assert_eq!(e.0[0].path, "spec.wandb.ingress.scheme");
        assert_eq!(e.0[0].line, 10);
        let e = values("    ingress:\n      class: alb\n      certificateArn: nope\n").unwrap_err();
        assert_eq!(e.0[0].path, "spec.wandb.ingress.certificateArn");
        let ok = values("    ingress:\n      class: nginx\n      annotations: {nginx.ingress.kubernetes.io/proxy-body-size: 0}\n").unwrap();
        assert_eq!(ok["ingress"]["class"], "nginx");
    }
}
