//! Where moto 5.2.6 falls short of AWS, a proxy in front of it answers as AWS does. ElastiCache:
//! moto lists one member cluster whatever `NumCacheClusters` asked for, answers
//! ModifyReplicationGroup and DeleteCacheSubnetGroup with a 500, has no
//! Increase/DecreaseReplicaCount, does not know a group's member clusters by
//! DescribeCacheClusters, ignores a final snapshot and keeps a deleted group `deleting` forever.
//! The proxy answers those as AWS does: a deleted group is listed `deleting` for a second, then
//! no longer (ReplicationGroupNotFoundFault by name), and a cache subnet group is deleted. S3: moto names
//! GetBucketVersioning's answer `GetBucketVersioningResponse` (AWS: `VersioningConfiguration`)
//! and ignores `x-amz-expected-bucket-owner` (AWS refuses another account's bucket with a 403);
//! bucket policies are kept by the proxy (`bucket_policy`); CORS preflights and SSE-KMS keys are
//! answered as S3 does (`s3_answers`), and a web identity against the role's trust as STS does
//! (`sts_answers`).
//! The proxy keeps each group's node count, node type, Multi-AZ setting, engine version and the
//! AUTH tokens it accepts from the requests (`ROTATE` adds a token, `SET` leaves only the new
//! one, as AWS documents) and the snapshot retention, writes them into moto's
//! DescribeReplicationGroups answers and answers DescribeCacheClusters for the members; a
//! DeleteReplicationGroup with a final snapshot (which moto ignores) first takes that snapshot
//! in moto (CreateSnapshot), as AWS does; everything else goes to moto unchanged. A test can
//! make it accept changes without making them (reported pending, as AWS queues one, or not, as
//! AWS drops one), fail an operation with a 500 every time, or give a bucket another owner.

use crate::http::{forward, operation, read_request};
use std::collections::HashMap;
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

#[derive(Clone, Debug)]
struct Group {
    nodes: u32,
    node_type: String,
    multi_az: bool,
    engine_version: String,
    /// The AUTH tokens the group accepts.
    tokens: Vec<String>,
    /// When the token last changed (the SDK's date-time format), once changed by the proxy.
    auth_modified: Option<String>,
    /// Days of daily snapshots kept.
    snapshot_days: u32,
}

/// What the proxy knows of the groups, for a test to read.
#[derive(Clone, Default)]
pub struct Caches {
    groups: Arc<Mutex<HashMap<String, Group>>>,
    /// Each token change: `ROTATE` or `SET`.
    auth_log: Arc<Mutex<Vec<String>>>,
    /// How many `SET`s to refuse yet (AccessDenied, as a policy without the right would).
    refuse_set: Arc<Mutex<u32>>,
    /// Changes accepted and not made: `Some(true)` reports them pending (as a change AWS has
    /// queued), `Some(false)` forgets them (as a change AWS dropped).
    stall: Arc<Mutex<Option<bool>>>,
    /// An operation answered with AWS's 500 InternalFailure every time.
    failing: Arc<Mutex<Option<String>>>,
    /// Buckets owned by an account other than moto's (`123456789012`).
    owners: Arc<Mutex<HashMap<String, String>>>,
    /// Bucket policies, kept here (see `bucket_policy`).
    policies: crate::bucket_policy::Policies,
    /// The final snapshots taken for deleted groups.
    final_snapshots: Arc<Mutex<Vec<String>>>,
    /// Performance Insights as ModifyDBInstance last set it, by instance (moto keeps only the
    /// setting CreateDBInstance gave).
    insights: crate::rds_answers::Insights,
    /// Deleted replication groups (`rg/<id>`) and cache subnet groups (`sg/<name>`), with
    /// when: gone once `DELETION` has passed.
    deleted: Arc<Mutex<HashMap<String, std::time::Instant>>>,
    /// Where a real server stands in for the Aurora cluster (`rds`) and the replication group
    /// (`redis`): the address their endpoints are answered with.
    served: Arc<Mutex<HashMap<String, String>>>,
    /// How long AWS takes to make each kind of resource available, when a test paces it.
    pace: Arc<Mutex<Option<Pace>>>,
    /// When each paced resource was asked for (`cluster/<id>`, `instance/<id>`, `rg/<id>`).
    born: Arc<Mutex<HashMap<String, std::time::Instant>>>,
}

/// How long AWS takes to make a resource available: a restored or new Aurora cluster, one of
/// its instances, a replication group. moto makes them at once; a paced proxy reports them
/// `creating` until their time has passed.
#[derive(Clone, Copy, Debug)]
pub struct Pace {
    pub cluster: std::time::Duration,
    pub instance: std::time::Duration,
    pub cache: std::time::Duration,
}

/// How long a deleted group stays `deleting` before AWS no longer lists it.
const DELETION: std::time::Duration = std::time::Duration::from_secs(1);

impl Caches {
    fn delete(&self, key: String) {
        self.deleted
            .lock()
            .unwrap()
            .entry(key)
            .or_insert_with(std::time::Instant::now);
    }

    fn gone(&self, key: &str) -> bool {
        self.deleted
            .lock()
            .unwrap()
            .get(key)
            .is_some_and(|at| at.elapsed() >= DELETION)
    }
}

impl Caches {
    /// The tokens group `id` accepts now.
    pub fn tokens(&self, id: &str) -> Vec<String> {
        let g = self.groups.lock().unwrap();
        g.get(id).map(|g| g.tokens.clone()).unwrap_or_default()
    }

    /// The strategies of the token changes so far, in order.
    pub fn auth_log(&self) -> Vec<String> {
        self.auth_log.lock().unwrap().clone()
    }

    /// Refuses the next `n` `SET`s (AccessDenied: the run stops there).
    pub fn refuse_set(&self, n: u32) {
        *self.refuse_set.lock().unwrap() = n;
    }

    /// Accepts changes from now on without making them; `pending` reports them as pending.
    pub fn stall_changes(&self, pending: bool) {
        *self.stall.lock().unwrap() = Some(pending);
    }

    /// Answers every `op` with a 500 InternalFailure from now on.
    pub fn fail(&self, op: &str) {
        *self.failing.lock().unwrap() = Some(op.to_owned());
    }

    /// Bucket `name` belongs to `account`: a request expecting another owner
    /// (`x-amz-expected-bucket-owner`) is refused with a 403, as S3 refuses it.
    pub fn own_bucket(&self, name: &str, account: &str) {
        self.owners
            .lock()
            .unwrap()
            .insert(name.to_owned(), account.to_owned());
    }

    /// Back to answering as AWS does.
    pub fn heal(&self) {
        *self.stall.lock().unwrap() = None;
        *self.failing.lock().unwrap() = None;
    }

    /// Reports resources made from now on as `creating` for as long as `pace` says.
    pub fn pace(&self, pace: Pace) {
        *self.pace.lock().unwrap() = Some(pace);
    }

    /// Whether a paced resource (`cluster/<id>`, ...) is still being made.
    fn creating(&self, key: &str) -> bool {
        let Some(pace) = *self.pace.lock().unwrap() else {
            return false;
        };
        let took = match key.split('/').next() {
            Some("cluster") => pace.cluster,
            Some("instance") => pace.instance,
            _ => pace.cache,
        };
        self.born
            .lock()
            .unwrap()
            .get(key)
            .is_some_and(|at| at.elapsed() < took)
    }

    /// Answers the endpoints of Aurora clusters (`rds`) or replication groups (`redis`) with
    /// `address`, where a real server listens (on the plan's port).
    pub fn serve_at(&self, kind: &str, address: &str) {
        self.served
            .lock()
            .unwrap()
            .insert(kind.to_owned(), address.to_owned());
    }

    fn served_at(&self, op: &str, resp: Vec<u8>) -> Vec<u8> {
        let (kind, tag) = match op {
            "DescribeDBClusters" => ("rds", "Endpoint"),
            _ => ("redis", "Address"),
        };
        let Some(address) = self.served.lock().unwrap().get(kind).cloned() else {
            return resp;
        };
        let text = String::from_utf8_lossy(&resp).into_owned();
        match text.split_once("\r\n\r\n") {
            Some((head, body)) if head.starts_with("HTTP/1.1 200") => {
                http(&replace_tag(body, tag, &address))
            }
            _ => resp,
        }
    }

    /// The final snapshots taken as groups were deleted.
    pub fn final_snapshots(&self) -> Vec<String> {
        self.final_snapshots.lock().unwrap().clone()
    }

    /// The engine version group `id` runs.
    pub fn engine_version(&self, id: &str) -> Option<String> {
        let g = self.groups.lock().unwrap();
        g.get(id).map(|g| g.engine_version.clone())
    }
}

/// Starts the proxy in front of moto's `upstream` port; returns its URL and what it knows.
pub fn start(upstream: u16) -> std::io::Result<(String, Caches)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let url = format!("http://{}", listener.local_addr()?);
    let caches = Caches::default();
    let c = caches.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(client) = conn else { continue };
            let c = c.clone();
            std::thread::spawn(move || serve(client, upstream, &c));
        }
    });
    Ok((url, caches))
}

fn now() -> String {
    aws_sdk_s3::primitives::DateTime::from(std::time::SystemTime::now())
        .fmt(aws_sdk_s3::primitives::DateTimeFormat::DateTime)
        .unwrap()
}

/// A change of the AUTH token, as ElastiCache makes it; `None` when refused.
fn change_token(c: &Caches, g: &mut Group, token: &str, strategy: &str) -> Option<()> {
    if strategy == "SET" {
        let mut refuse = c.refuse_set.lock().unwrap();
        if *refuse > 0 {
            *refuse -= 1;
            return None;
        }
        g.tokens = vec![token.to_owned()];
    } else {
        g.tokens.retain(|t| t != token);
        g.tokens.push(token.to_owned());
    }
    g.auth_modified = Some(now());
    c.auth_log.lock().unwrap().push(strategy.to_owned());
    Some(())
}

fn access_denied() -> Vec<u8> {
    crate::bucket_policy::response(
        "403 Forbidden",
        "text/xml",
        "<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>User: arn:aws:iam::123456789012:user/ci is not authorized to perform: elasticache:ModifyReplicationGroup</Message></Error><RequestId>1</RequestId></ErrorResponse>",
    )
}

/// DescribeCacheClusters for a group's member, as AWS lists it (its version in full).
fn member(c: &Caches, cluster: &str) -> Option<Vec<u8>> {
    let groups = c.groups.lock().unwrap();
    let (id, g) = groups
        .iter()
        .find(|(id, g)| (1..=g.nodes).any(|n| format!("{id}-{n:03}") == cluster))?;
    let body = format!(
        "<DescribeCacheClustersResponse xmlns=\"http://elasticache.amazonaws.com/doc/2015-02-02/\"><DescribeCacheClustersResult><CacheClusters><CacheCluster><CacheClusterId>{cluster}</CacheClusterId><ReplicationGroupId>{id}</ReplicationGroupId><CacheNodeType>{}</CacheNodeType><Engine>redis</Engine><EngineVersion>{}.0</EngineVersion><CacheClusterStatus>available</CacheClusterStatus></CacheCluster></CacheClusters></DescribeCacheClustersResult><ResponseMetadata><RequestId>1</RequestId></ResponseMetadata></DescribeCacheClustersResponse>",
        g.node_type, g.engine_version
    );
    Some(http(&body))
}

fn params(body: &[u8]) -> HashMap<String, String> {
    String::from_utf8_lossy(body)
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.replace("%2F", "/").replace("%3A", ":")))
        .collect()
}

/// One request, as the proxy reads it.
struct Request {
    text: String,
    body: Vec<u8>,
    op: String,
    p: HashMap<String, String>,
    /// The replication group it names, if any.
    id: String,
}

fn serve(mut client: TcpStream, upstream: u16, caches: &Caches) {
    let Some((text, body)) = read_request(&mut client) else {
        return;
    };
    let op = operation(&text, &body);
    let p = params(&body);
    let id = p.get("ReplicationGroupId").cloned().unwrap_or_default();
    let r = Request {
        text,
        body,
        op,
        p,
        id,
    };
    crate::rds_answers::note(&r.op, &r.p, &caches.insights);
    let resp = match answer(&r, upstream, caches) {
        Some(a) => a,
        None => match forwarded(&r, upstream, caches) {
            Some(resp) => resp,
            None => return,
        },
    };
    let resp = match r.op.as_str() {
        "DescribeDBClusters" | "DescribeReplicationGroups" => caches.served_at(&r.op, resp),
        "DescribeDBInstances" => crate::rds_answers::insights(resp, &caches.insights),
        _ => resp,
    };
    let _ = client.write_all(&resp);
}

/// The answer AWS would give where moto's differs, if this is such a request.
fn answer(r: &Request, upstream: u16, caches: &Caches) -> Option<Vec<u8>> {
    let (text, body, op, id) = (&r.text, &r.body, &r.op, &r.id);
    let stalled = *caches.stall.lock().unwrap();
    let changes = matches!(
        op.as_str(),
        "ModifyReplicationGroup" | "IncreaseReplicaCount" | "DecreaseReplicaCount"
    );
    let s3 = crate::s3_answers::answer(text, upstream)
        .or_else(|| crate::sts_answers::answer(body, upstream));
    match op.as_str() {
        _ if !expected_owner_matches(text, caches) => Some(s3_access_denied()),
        _ if s3.is_some() => s3,
        _ if crate::bucket_policy::policy_request(text).is_some() => {
            crate::bucket_policy::answer(text, body, &caches.policies)
        }
        o if caches.failing.lock().unwrap().as_deref() == Some(o) => Some(internal_failure()),
        _ if changes && stalled.is_some() => Some(result(op, id)),
        _ => cache_answer(r, upstream, caches),
    }
}

/// ElastiCache, answered as AWS does.
fn cache_answer(r: &Request, upstream: u16, caches: &Caches) -> Option<Vec<u8>> {
    let (text, op, p, id) = (&r.text, &r.op, &r.p, &r.id);
    let groups = &caches.groups;
    match op.as_str() {
        "ModifyReplicationGroup" => {
            let mut refused = false;
            if let Some(g) = groups.lock().unwrap().get_mut(id) {
                if let Some(t) = p.get("CacheNodeType") {
                    g.node_type = t.clone();
                }
                if let Some(m) = p.get("MultiAZEnabled") {
                    g.multi_az = m == "true";
                }
                if let Some(v) = p.get("EngineVersion") {
                    g.engine_version = v.clone();
                }
                if let Some(d) = p.get("SnapshotRetentionLimit").and_then(|d| d.parse().ok()) {
                    g.snapshot_days = d;
                }
                if let Some(t) = p.get("AuthToken") {
                    let strategy = p.get("AuthTokenUpdateStrategy").map_or("ROTATE", |s| s);
                    refused = change_token(caches, g, t, strategy).is_none();
                }
            }
            Some(if refused {
                access_denied()
            } else {
                result(op, id)
            })
        }
        "DescribeCacheClusters" => p.get("CacheClusterId").and_then(|c| member(caches, c)),
        "DescribeReplicationGroups" if caches.gone(&format!("rg/{id}")) => Some(not_found(
            "ReplicationGroupNotFoundFault",
            &format!("ReplicationGroup {id} not found."),
        )),
        // moto answers it with a 500; AWS deletes a group no replication group uses.
        "DeleteCacheSubnetGroup" => {
            let name = p.get("CacheSubnetGroupName").cloned().unwrap_or_default();
            caches.delete(format!("sg/{name}"));
            Some(http(
                "<DeleteCacheSubnetGroupResponse xmlns=\"http://elasticache.amazonaws.com/doc/2015-02-02/\"><ResponseMetadata><RequestId>1</RequestId></ResponseMetadata></DeleteCacheSubnetGroupResponse>",
            ))
        }
        "DescribeCacheSubnetGroups"
            if p.get("CacheSubnetGroupName")
                .is_some_and(|n| caches.gone(&format!("sg/{n}"))) =>
        {
            Some(not_found(
                "CacheSubnetGroupNotFoundFault",
                &format!("CacheSubnetGroup {} not found.", p["CacheSubnetGroupName"]),
            ))
        }
        // moto ignores a final snapshot: AWS takes it before the group goes.
        "DeleteReplicationGroup" if p.contains_key("FinalSnapshotIdentifier") => {
            let snapshot = format!(
                "Action=CreateSnapshot&Version=2015-02-02&SnapshotName={}&ReplicationGroupId={id}",
                p["FinalSnapshotIdentifier"]
            );
            let taken = forward(
                upstream,
                &with_length(text, snapshot.len()),
                snapshot.as_bytes(),
            )
            .is_some_and(|r| r.starts_with(b"HTTP/1.1 200"));
            if taken {
                caches
                    .final_snapshots
                    .lock()
                    .unwrap()
                    .push(p["FinalSnapshotIdentifier"].clone());
                None
            } else {
                Some(internal_failure())
            }
        }
        "IncreaseReplicaCount" | "DecreaseReplicaCount" => {
            let replicas: u32 = p
                .get("NewReplicaCount")
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            if let Some(g) = groups.lock().unwrap().get_mut(id) {
                g.nodes = replicas + 1;
            }
            Some(result(op, id))
        }
        _ => None,
    }
}

/// moto's answer, with what it leaves out put in as AWS has it.
fn forwarded(r: &Request, upstream: u16, caches: &Caches) -> Option<Vec<u8>> {
    let (text, op, p, id) = (&r.text, &r.op, &r.p, &r.id);
    let groups = &caches.groups;
    let stalled = *caches.stall.lock().unwrap();
    let resp = forward(upstream, text, &r.body)?;
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
            engine_version: p.get("EngineVersion").cloned().unwrap_or_default(),
            tokens: p.get("AuthToken").cloned().into_iter().collect(),
            auth_modified: None,
            snapshot_days: p
                .get("SnapshotRetentionLimit")
                .and_then(|d| d.parse().ok())
                .unwrap_or(0),
        };
        groups.lock().unwrap().insert(id.clone(), g);
    }
    let born = match op.as_str() {
        "CreateDBCluster" | "RestoreDBClusterToPointInTime" | "RestoreDBClusterFromSnapshot" => {
            p.get("DBClusterIdentifier").map(|i| format!("cluster/{i}"))
        }
        "CreateDBInstance" => p
            .get("DBInstanceIdentifier")
            .map(|i| format!("instance/{i}")),
        "CreateReplicationGroup" => Some(format!("rg/{id}")),
        _ => None,
    };
    if let Some(key) = born.filter(|_| resp.starts_with(b"HTTP/1.1 200")) {
        caches
            .born
            .lock()
            .unwrap()
            .entry(key)
            .or_insert_with(std::time::Instant::now);
    }
    let paced = match op.as_str() {
        "DescribeDBClusters" => p
            .get("DBClusterIdentifier")
            .filter(|i| caches.creating(&format!("cluster/{i}")))
            .map(|_| ("<Status>available</Status>", "<Status>creating</Status>")),
        "DescribeDBInstances" => p
            .get("DBInstanceIdentifier")
            .filter(|i| caches.creating(&format!("instance/{i}")))
            .map(|_| {
                (
                    "<DBInstanceStatus>available</DBInstanceStatus>",
                    "<DBInstanceStatus>creating</DBInstanceStatus>",
                )
            }),
        "DescribeReplicationGroups" if caches.creating(&format!("rg/{id}")) => {
            Some(("<Status>available</Status>", "<Status>creating</Status>"))
        }
        _ => None,
    };
    let resp = match paced {
        Some((from, to)) => {
            let text = String::from_utf8_lossy(&resp).into_owned();
            match text.split_once("\r\n\r\n") {
                Some((_, body)) => http(&body.replacen(from, to, 1)),
                None => resp,
            }
        }
        None => resp,
    };
    if op == "DeleteReplicationGroup" && resp.starts_with(b"HTTP/1.1 200") {
        caches.delete(format!("rg/{id}"));
    }
    Some(if op == "DescribeReplicationGroups" {
        let gone: Vec<String> = groups
            .lock()
            .unwrap()
            .keys()
            .filter(|g| caches.gone(&format!("rg/{g}")))
            .cloned()
            .collect();
        rewrite(&resp, &groups.lock().unwrap(), stalled == Some(true), &gone)
    } else if is_get_versioning(text) {
        versioning(&resp)
    } else {
        resp
    })
}

/// Every `<tag>...</tag>` in `text` with `value` inside.
fn replace_tag(text: &str, tag: &str, value: &str) -> String {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find(&open) {
        let after = &rest[i + open.len()..];
        let Some(j) = after.find(&close) else { break };
        out.push_str(&rest[..i + open.len()]);
        out.push_str(value);
        rest = &after[j..];
    }
    out.push_str(rest);
    out
}

/// The answer AWS gives to a change it accepted: the group, now modifying.
fn result(op: &str, id: &str) -> Vec<u8> {
    let body = format!(
        "<{op}Response xmlns=\"http://elasticache.amazonaws.com/doc/2015-02-02/\"><{op}Result><ReplicationGroup><ReplicationGroupId>{id}</ReplicationGroupId><Status>modifying</Status></ReplicationGroup></{op}Result><ResponseMetadata><RequestId>1</RequestId></ResponseMetadata></{op}Response>"
    );
    http(&body)
}

pub(crate) fn http(body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// AWS's answer for a group that does not exist.
fn not_found(code: &str, message: &str) -> Vec<u8> {
    let body = format!("<ErrorResponse xmlns=\"http://elasticache.amazonaws.com/doc/2015-02-02/\"><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>1</RequestId></ErrorResponse>");
    format!(
        "HTTP/1.1 404 Not Found\r\nContent-Type: text/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// AWS's answer to a request it failed to handle.
fn internal_failure() -> Vec<u8> {
    let body = "<ErrorResponse><Error><Type>Receiver</Type><Code>InternalFailure</Code><Message>We encountered an internal error. Please try again.</Message></Error><RequestId>1</RequestId></ErrorResponse>";
    format!(
        "HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// moto's answer with each known group's member clusters and node type as AWS would list them
/// (and, with `pending`, a queued change in its `PendingModifiedValues`).
fn rewrite(
    resp: &[u8],
    groups: &HashMap<String, Group>,
    pending: bool,
    gone: &[String],
) -> Vec<u8> {
    let text = String::from_utf8_lossy(resp);
    let Some((_, body)) = text.split_once("\r\n\r\n") else {
        return resp.to_vec();
    };
    if !text.starts_with("HTTP/1.1 200") {
        return resp.to_vec();
    }
    let mut out = String::new();
    for (i, part) in body.split("<ReplicationGroup>").enumerate() {
        let id = between(part, "<ReplicationGroupId>", "</ReplicationGroupId>");
        if i > 0 && id.is_some_and(|id| gone.iter().any(|g| g == id)) {
            // Deleted and gone: not listed (what follows its closing tag stays).
            if let Some((_, rest)) = part.split_once("</ReplicationGroup>") {
                out.push_str(rest);
            }
            continue;
        }
        if i > 0 {
            out.push_str("<ReplicationGroup>");
        }
        match id.and_then(|id| groups.get(id).map(|g| (id, g))) {
            Some((id, g)) => {
                let members: String = (1..=g.nodes)
                    .map(|n| format!("<ClusterId>{id}-{n:03}</ClusterId>"))
                    .collect();
                let az = if g.multi_az { "enabled" } else { "disabled" };
                let mut part =
                    replace_between(part, "<MemberClusters>", "</MemberClusters>", &members);
                if let Some(at) = &g.auth_modified {
                    part = replace_between(
                        &part,
                        "<AuthTokenLastModifiedDate>",
                        "</AuthTokenLastModifiedDate>",
                        at,
                    );
                }
                if pending {
                    part = part.replacen(
                        "<MemberClusters>",
                        "<PendingModifiedValues><AutomaticFailoverStatus>enabled</AutomaticFailoverStatus></PendingModifiedValues><MemberClusters>",
                        1,
                    );
                }
                let days = g.snapshot_days.to_string();
                for (a, b, with) in [
                    (
                        "<SnapshotRetentionLimit>",
                        "</SnapshotRetentionLimit>",
                        days.as_str(),
                    ),
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

/// moto ignores `x-amz-expected-bucket-owner`; S3 refuses a request whose bucket another
/// account owns.
fn expected_owner_matches(head: &str, caches: &Caches) -> bool {
    let Some(expected) = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("x-amz-expected-bucket-owner")
            .then(|| v.trim().to_owned())
    }) else {
        return true;
    };
    let path = head.split(' ').nth(1).unwrap_or("/");
    let bucket = path
        .trim_start_matches('/')
        .split(['/', '?'])
        .next()
        .unwrap_or("");
    let owners = caches.owners.lock().unwrap();
    owners.get(bucket).map_or("123456789012", String::as_str) == expected
}

fn s3_access_denied() -> Vec<u8> {
    crate::bucket_policy::response(
        "403 Forbidden",
        "application/xml",
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>",
    )
}

/// A GetBucketVersioning request (`GET /bucket?versioning`).
fn is_get_versioning(head: &str) -> bool {
    let line = head.lines().next().unwrap_or("");
    line.starts_with("GET ") && (line.contains("?versioning ") || line.contains("?versioning="))
}

/// moto names the answer's root `GetBucketVersioningResponse`; AWS (and the SDK's parser) name
/// it `VersioningConfiguration`.
fn versioning(resp: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(resp);
    match text.split_once("\r\n\r\n") {
        Some((_, body)) if text.starts_with("HTTP/1.1 200") => {
            http(&body.replace("GetBucketVersioningResponse", "VersioningConfiguration"))
        }
        _ => resp.to_vec(),
    }
}

/// A request head with its `Content-Length` set to `len`.
fn with_length(head: &str, len: usize) -> String {
    head.lines()
        .map(|l| {
            if l.to_ascii_lowercase().starts_with("content-length:") {
                format!("Content-Length: {len}")
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\r\n")
        + "\r\n"
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
