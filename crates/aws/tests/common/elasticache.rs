//! Where moto 5.2.5's ElastiCache falls short of AWS, a proxy in front of it answers as AWS
//! does: moto lists one member cluster whatever `NumCacheClusters` asked for, answers
//! ModifyReplicationGroup with a 500 HTML page, and has no Increase/DecreaseReplicaCount. The
//! proxy keeps each group's node count, node type and Multi-AZ setting from the requests and
//! writes them into moto's DescribeReplicationGroups answers; everything else goes to moto
//! unchanged.

use super::{forward, operation, read_request};
use std::collections::HashMap;
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

#[derive(Clone, Debug)]
struct Group {
    nodes: u32,
    node_type: String,
    multi_az: bool,
}

type Groups = Arc<Mutex<HashMap<String, Group>>>;

/// Starts the proxy in front of moto's `upstream` port; returns its URL.
pub fn start(upstream: u16) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let groups: Groups = Arc::default();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(client) = conn else { continue };
            let groups = groups.clone();
            std::thread::spawn(move || serve(client, upstream, &groups));
        }
    });
    url
}

fn params(body: &[u8]) -> HashMap<String, String> {
    String::from_utf8_lossy(body)
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.replace("%2F", "/").replace("%3A", ":")))
        .collect()
}

fn serve(mut client: TcpStream, upstream: u16, groups: &Groups) {
    let Some((text, body)) = read_request(&mut client) else {
        return;
    };
    let op = operation(&text, &body);
    let p = params(&body);
    let id = p.get("ReplicationGroupId").cloned().unwrap_or_default();
    let answer = match op.as_str() {
        "ModifyReplicationGroup" => {
            if let Some(g) = groups.lock().unwrap().get_mut(&id) {
                if let Some(t) = p.get("CacheNodeType") {
                    g.node_type = t.clone();
                }
                if let Some(m) = p.get("MultiAZEnabled") {
                    g.multi_az = m == "true";
                }
            }
            Some(result(&op, &id))
        }
        "IncreaseReplicaCount" | "DecreaseReplicaCount" => {
            let replicas: u32 = p
                .get("NewReplicaCount")
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            if let Some(g) = groups.lock().unwrap().get_mut(&id) {
                g.nodes = replicas + 1;
            }
            Some(result(&op, &id))
        }
        _ => None,
    };
    let resp = match answer {
        Some(r) => r,
        None => {
            let Some(resp) = forward(upstream, &text, &body) else {
                return;
            };
            if op == "CreateReplicationGroup" && resp.starts_with(b"HTTP/1.1 200") {
                let nodes = p
                    .get("NumCacheClusters")
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(1);
                let node_type = p.get("CacheNodeType").cloned().unwrap_or_default();
                let multi_az = p.get("MultiAZEnabled").is_some_and(|m| m == "true");
                let g = Group {
                    nodes,
                    node_type,
                    multi_az,
                };
                groups.lock().unwrap().insert(id, g);
            }
            if op == "DescribeReplicationGroups" {
                rewrite(&resp, &groups.lock().unwrap())
            } else {
                resp
            }
        }
    };
    let _ = client.write_all(&resp);
}

/// The answer AWS gives to a change it accepted: the group, now modifying.
fn result(op: &str, id: &str) -> Vec<u8> {
    let body = format!(
        "<{op}Response xmlns=\"http://elasticache.amazonaws.com/doc/2015-02-02/\"><{op}Result><ReplicationGroup><ReplicationGroupId>{id}</ReplicationGroupId><Status>modifying</Status></ReplicationGroup></{op}Result><ResponseMetadata><RequestId>1</RequestId></ResponseMetadata></{op}Response>"
    );
    http(&body)
}

fn http(body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// moto's answer with each known group's member clusters and node type as AWS would list them.
fn rewrite(resp: &[u8], groups: &HashMap<String, Group>) -> Vec<u8> {
    let text = String::from_utf8_lossy(resp);
    let Some((_, body)) = text.split_once("\r\n\r\n") else {
        return resp.to_vec();
    };
    if !text.starts_with("HTTP/1.1 200") {
        return resp.to_vec();
    }
    let mut out = String::new();
    for (i, part) in body.split("<ReplicationGroup>").enumerate() {
        if i > 0 {
            out.push_str("<ReplicationGroup>");
        }
        let id = between(part, "<ReplicationGroupId>", "</ReplicationGroupId>");
        match id.and_then(|id| groups.get(id).map(|g| (id, g))) {
            Some((id, g)) => {
                let members: String = (1..=g.nodes)
                    .map(|n| format!("<ClusterId>{id}-{n:03}</ClusterId>"))
                    .collect();
                let az = if g.multi_az { "enabled" } else { "disabled" };
                let mut part =
                    replace_between(part, "<MemberClusters>", "</MemberClusters>", &members);
                for (a, b, with) in [
                    ("<CacheNodeType>", "</CacheNodeType>", g.node_type.as_str()),
                    ("<MultiAZ>", "</MultiAZ>", az),
                    ("<AutomaticFailover>", "</AutomaticFailover>", az),
                ] {
                    part = replace_between(&part, a, b, with);
                }
                out.push_str(&part);
            }
            None => out.push_str(part),
        }
    }
    http(&out)
}

fn between<'a>(s: &'a str, a: &str, b: &str) -> Option<&'a str> {
    let i = s.find(a)? + a.len();
    let j = s[i..].find(b)? + i;
    Some(&s[i..j])
}

fn replace_between(s: &str, a: &str, b: &str, with: &str) -> String {
    match (s.find(a), s.find(b)) {
        (Some(i), Some(j)) if j >= i + a.len() => format!("{}{with}{}", &s[..i + a.len()], &s[j..]),
        _ => s.to_owned(),
    }
}
