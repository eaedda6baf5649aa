//! STS where moto 5.2.6 answers otherwise than AWS, answered as AWS does: moto hands out
//! credentials for `AssumeRoleWithWebIdentity` whatever the role trusts. AWS first checks the
//! role's trust policy against the token: a statement allowing `sts:AssumeRoleWithWebIdentity`
//! to the OIDC provider of the token's issuer, whose `StringEquals`/`StringLike` conditions on
//! `<issuer>:sub` and `<issuer>:aud` hold for the token's claims; else it refuses with a 403
//! `AccessDenied`. The proxy reads the role from moto (GetRole) and answers that refusal.

use crate::bucket_policy::response;
use crate::http::forward;
use base64::Engine as _;
use serde_json::Value;

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn unescape_xml(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&#34;", "\"")
        .replace("&amp;", "&")
}

fn form(body: &str) -> std::collections::HashMap<String, String> {
    body.split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), percent_decode(v)))
        .collect()
}

/// The trust policy of role `name`, from moto.
fn trust(upstream: u16, name: &str) -> Option<Value> {
    let body = format!("Action=GetRole&Version=2010-05-08&RoleName={name}");
    let head = format!(
        "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\nAuthorization: AWS4-HMAC-SHA256 Credential=t/20260101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let resp = forward(upstream, &head, body.as_bytes())?;
    let text = String::from_utf8_lossy(&resp);
    let doc = text
        .split_once("<AssumeRolePolicyDocument>")?
        .1
        .split_once("</AssumeRolePolicyDocument>")?
        .0;
    let doc = unescape_xml(doc);
    let doc = if doc.trim_start().starts_with('{') {
        doc
    } else {
        percent_decode(&doc)
    };
    serde_json::from_str(&doc).ok()
}

fn as_list(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a
            .iter()
            .filter_map(|x| x.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

fn like(pattern: &str, value: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == value,
        Some((head, tail)) => {
            value.starts_with(head)
                && value.len() >= head.len()
                && like_rest(tail, &value[head.len()..])
        }
    }
}

fn like_rest(pattern: &str, value: &str) -> bool {
    if pattern.is_empty() {
        return true;
    }
    (0..=value.len()).any(|i| value.is_char_boundary(i) && like(pattern, &value[i..]))
}

/// Whether `policy` lets a token with these claims take the role.
fn allows(policy: &Value, claims: &Value) -> bool {
    let iss = claims["iss"].as_str().unwrap_or("");
    let issuer = iss.trim_start_matches("https://");
    let sub = claims["sub"].as_str().unwrap_or("");
    let aud = as_list(&claims["aud"]);
    let statements = match &policy["Statement"] {
        Value::Array(a) => a.clone(),
        s => vec![s.clone()],
    };
    statements.iter().any(|s| {
        let action = as_list(&s["Action"]);
        let provider = as_list(&s["Principal"]["Federated"]);
        s["Effect"] == "Allow"
            && action
                .iter()
                .any(|a| a == "sts:AssumeRoleWithWebIdentity" || a == "sts:*")
            && provider
                .iter()
                .any(|p| p.ends_with(&format!(":oidc-provider/{issuer}")))
            && ["StringEquals", "StringLike"].iter().all(|op| {
                let Some(conds) = s["Condition"][op].as_object() else {
                    return true;
                };
                conds.iter().all(|(key, want)| {
                    let got: Vec<String> = match key.strip_prefix(&format!("{issuer}:")) {
                        Some("sub") => vec![sub.to_owned()],
                        Some("aud") => aud.clone(),
                        _ => return false,
                    };
                    as_list(want).iter().any(|w| {
                        got.iter().any(|g| {
                            if *op == "StringLike" {
                                like(w, g)
                            } else {
                                w == g
                            }
                        })
                    })
                })
            })
    })
}

/// The answer AWS would give where moto's differs, if `body` is such a request.
pub fn answer(body: &[u8], upstream: u16) -> Option<Vec<u8>> {
    let body = String::from_utf8_lossy(body);
    if !body.contains("Action=AssumeRoleWithWebIdentity") {
        return None;
    }
    let p = form(&body);
    let role = p.get("RoleArn")?;
    let token = p.get("WebIdentityToken")?;
    let claims: Value = token
        .split('.')
        .nth(1)
        .and_then(|c| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(c)
                .ok()
        })
        .and_then(|c| serde_json::from_slice(&c).ok())
        .unwrap_or(Value::Null);
    let name = role.rsplit('/').next()?;
    let allowed = trust(upstream, name).is_some_and(|t| allows(&t, &claims));
    (!allowed).then(|| {
        response(
            "403 Forbidden",
            "text/xml",
            "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>Not authorized to perform sts:AssumeRoleWithWebIdentity</Message></Error><RequestId>1</RequestId></ErrorResponse>",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_trust_policy_is_read_as_aws_reads_it() {
        let p = json!({"Statement": [{"Effect": "Allow", "Principal": {"Federated": "arn:aws:iam::1:oidc-provider/oidc.example/id/X"},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {"StringEquals": {"oidc.example/id/X:aud": "sts.amazonaws.com", "oidc.example/id/X:sub": ["system:serviceaccount:w:api"]}}}]});
        let c = json!({"iss": "https://oidc.example/id/X", "sub": "system:serviceaccount:w:api", "aud": ["sts.amazonaws.com"]});
        assert!(allows(&p, &c));
        assert!(!allows(
            &p,
            &json!({"iss": "https://oidc.example/id/X", "sub": "system:serviceaccount:w:other", "aud": ["sts.amazonaws.com"]})
        ));
        assert!(!allows(
            &p,
            &json!({"iss": "https://elsewhere", "sub": "system:serviceaccount:w:api", "aud": ["sts.amazonaws.com"]})
        ));
        assert!(like(
            "system:serviceaccount:w:*",
            "system:serviceaccount:w:api"
        ));
        assert!(!like(
            "system:serviceaccount:x:*",
            "system:serviceaccount:w:api"
        ));
        assert_eq!(percent_decode("a%2Fb%3Ac"), "a/b:c");
    }
}
