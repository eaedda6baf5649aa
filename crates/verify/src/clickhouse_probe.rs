//! ClickHouse as Weave reaches it, over its HTTP interface with the user and password the values
//! name: the version, a wrong password refused, the database; for a replicated setup the
//! cluster Weave is told to use has every replica of the plan in `system.clusters`, each replica
//! answers, Keeper answers and a table created `ON CLUSTER` is active on every replica; with S3
//! storage, rows written through the `s3_main` policy read back.

use crate::run::Probe;
use crate::verdict::Finding;
use crate::wiring::ClickhouseTarget;
use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

const NAME: &str = "clickhouse";
/// The release the Weave guide runs.
const OLDEST: (u32, u32) = (24, 8);

/// The probe for the ClickHouse the values name.
pub struct Clickhouse {
    pub target: ClickhouseTarget,
}

type Http = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

/// One query's answer: rows (JSONCompact `data`), or the server's error.
async fn query(
    http: &Http,
    t: &ClickhouseTarget,
    password: &str,
    sql: &str,
) -> Result<Vec<Value>, String> {
    let uri = format!(
        "http://{}:{}/?default_format=JSONCompact",
        t.at.host, t.at.port
    );
    let req = hyper::Request::post(uri)
        .header(
            "X-ClickHouse-User",
            t.at.user.as_deref().unwrap_or("default"),
        )
        .header("X-ClickHouse-Key", password)
        .body(Full::new(Bytes::from(sql.to_owned())))
        .map_err(|e| e.to_string())?;
    let res = http
        .request(req)
        .await
        .map_err(|e| wbstack_k8s::error_chain(&e))?;
    let status = res.status();
    let body = res
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    let text = String::from_utf8_lossy(&body).trim().to_owned();
    if !status.is_success() {
        let first = text.lines().next().unwrap_or("").to_owned();
        return Err(wbstack_engine::redact(&format!(
            "{}: {first}",
            status.as_u16()
        )));
    }
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let v: Value = serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))?;
    Ok(v["data"].as_array().cloned().unwrap_or_default())
}

/// A cell as text (64-bit integers come quoted, smaller ones not).
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        v => v.to_string(),
    }
}

/// The first cell of the first row, as text.
fn cell(rows: &[Value]) -> String {
    rows.first().map(|r| text(&r[0])).unwrap_or_default()
}

fn major_minor(v: &str) -> Option<(u32, u32)> {
    let mut p = v.split('.').map(|x| x.parse::<u32>().ok());
    Some((p.next()??, p.next()??))
}

/// What the checks after the first see: the client, the target and the password.
struct On<'a> {
    http: &'a Http,
    t: &'a ClickhouseTarget,
    password: &'a str,
}

impl On<'_> {
    async fn q(&self, sql: &str) -> Result<Vec<Value>, String> {
        query(self.http, self.t, self.password, sql).await
    }

    async fn database(&self) -> Finding {
        let db = &self.t.database;
        let checked = format!("database {db}");
        match self.q(&format!("SELECT count() FROM system.databases WHERE name = '{db}'")).await {
            Ok(r) if cell(&r) == "1" => Finding::pass(NAME, checked, "present"),
            Ok(_) => Finding::warn(NAME, checked, "absent", "Weave's migrations create it when the trace server starts; if it stays absent, look at weave-trace's logs"),
            Err(e) => Finding::fail(NAME, checked, e, "grant the user access to system tables"),
        }
    }

    /// Every replica of the plan is in the cluster Weave uses, each answers, Keeper answers,
    /// and a replicated table created on the cluster is active everywhere.
    async fn cluster(&self, cluster: &str, out: &mut Vec<Finding>) {
        let members = match self
            .q(&format!(
                "SELECT count() FROM system.clusters WHERE cluster = '{cluster}'"
            ))
            .await
        {
            Ok(r) => cell(&r).parse::<u32>().unwrap_or(0),
            Err(e) => {
                out.push(Finding::fail(
                    NAME,
                    format!("cluster {cluster}"),
                    e,
                    "check the server's remote_servers",
                ));
                return;
            }
        };
        let checked = format!("cluster {cluster} in system.clusters");
        out.push(match self.t.expected_replicas {
            _ if members == 0 => Finding::fail(NAME, checked, "no such cluster", "name the cluster in remote_servers and in WF_CLICKHOUSE_REPLICATED_CLUSTER alike (`wbstack up` writes both)"),
            Some(want) if members < want => Finding::fail(NAME, checked, format!("{members} of the plan's {want} replicas"), "restore the missing replicas in remote_servers (`wbstack up` writes them)"),
            Some(want) => Finding::pass(NAME, checked, format!("{members} replicas, as the plan says ({want})")),
            None => Finding::pass(NAME, checked, format!("{members} replicas")),
        });
        let answered = self
            .q(&format!(
                "SELECT count() FROM clusterAllReplicas('{cluster}', system.one)"
            ))
            .await;
        let all = matches!(&answered, Ok(r) if cell(r) == members.to_string());
        out.push(match answered {
            Ok(r) if all => Finding::pass(
                NAME,
                "each replica answers",
                format!("{} of {members}", cell(&r)),
            ),
            Ok(r) => Finding::fail(
                NAME,
                "each replica answers",
                format!("{} of {members}", cell(&r)),
                "look at the replicas that do not answer (`kubectl get pods`)",
            ),
            Err(e) => Finding::fail(
                NAME,
                "each replica answers",
                e,
                "look at the replicas' pods and their Service",
            ),
        });
        let keeper = self
            .q("SELECT count() FROM system.zookeeper WHERE path = '/'")
            .await;
        let keeper_ok = keeper.is_ok();
        out.push(match keeper {
            Ok(_) => Finding::pass(NAME, "Keeper answers", "the root is listed"),
            Err(e) => Finding::fail(
                NAME,
                "Keeper answers",
                e,
                "look at ClickHouse Keeper's pods; replicated tables stop without it",
            ),
        });
        if all && keeper_ok {
            out.push(self.replicated_table(cluster).await);
        }
    }

    async fn replicated_table(&self, cluster: &str) -> Finding {
        let db = &self.t.database;
        let table = format!("wbstack_verify_{}", std::process::id());
        let checked = format!("a table created ON CLUSTER {cluster} is active on every replica");
        let create = format!("CREATE TABLE IF NOT EXISTS {db}.{table} ON CLUSTER {cluster} (x UInt8) ENGINE = ReplicatedMergeTree ORDER BY x");
        let seen = format!("SELECT countIf(active_replicas = total_replicas), count() FROM clusterAllReplicas('{cluster}', system.replicas) WHERE database = '{db}' AND table = '{table}'");
        let made = self.q(&create).await;
        let rows = match &made {
            Ok(_) => self.q(&seen).await,
            Err(e) => Err(e.clone()),
        };
        let _dropped = self
            .q(&format!(
                "DROP TABLE IF EXISTS {db}.{table} ON CLUSTER {cluster} SYNC"
            ))
            .await;
        match rows {
            Err(e) => Finding::fail(NAME, checked, e, "check the replicas' macros and Keeper"),
            Ok(r) => {
                let row = r.first().cloned().unwrap_or_default();
                let (active, total) = (text(&row[0]), text(&row[1]));
                if active == total && total != "0" {
                    Finding::pass(NAME, checked, format!("active on {total} replicas"))
                } else {
                    Finding::fail(
                        NAME,
                        checked,
                        format!("active on {active} of {total}"),
                        "check the replicas' macros and Keeper",
                    )
                }
            }
        }
    }

    /// With an `s3_main` policy: rows written through it read back.
    async fn s3(&self) -> Option<Finding> {
        let has = self
            .q("SELECT count() FROM system.storage_policies WHERE policy_name = 's3_main'")
            .await
            .ok()?;
        if cell(&has) == "0" {
            return None;
        }
        let table = format!("default.wbstack_verify_s3_{}", std::process::id());
        let checked = "rows written through the s3_main policy read back";
        let steps = [
            format!("CREATE TABLE IF NOT EXISTS {table} (x UInt64) ENGINE = MergeTree ORDER BY x SETTINGS storage_policy = 's3_main'"),
            format!("INSERT INTO {table} SELECT number FROM numbers(1000)"),
        ];
        let mut failed = None;
        for s in &steps {
            if let Err(e) = self.q(s).await {
                failed = Some(e);
                break;
            }
        }
        let sum = match failed {
            Some(e) => Err(e),
            None => self.q(&format!("SELECT sum(x) FROM {table}")).await,
        };
        let (db, name) = table.split_once('.').unwrap_or(("default", &table));
        let stored = self
            .q(&format!("SELECT any(remote_path) FROM system.remote_data_paths WHERE startsWith(local_path, extract((SELECT data_paths[1] FROM system.tables WHERE database = '{db}' AND name = '{name}'), 'store/[^/]+/[^/]+/'))"))
            .await
            .map(|r| cell(&r));
        let stored = match stored {
            Ok(p) => p,
            Err(e) => {
                tracing::debug!("remote paths of {table}: {e}");
                String::new()
            }
        };
        let _dropped = self.q(&format!("DROP TABLE IF EXISTS {table} SYNC")).await;
        let under = match stored.as_str() {
            "" => String::new(),
            key => format!(", stored as objects like {key}"),
        };
        Some(match sum {
            Ok(r) if cell(&r) == "499500" => {
                Finding::pass(NAME, checked, format!("1000 rows{under}"))
            }
            Ok(r) => Finding::fail(
                NAME,
                checked,
                format!("read back {}", cell(&r)),
                "check the S3 disk's endpoint and credentials",
            ),
            Err(e) => Finding::fail(
                NAME,
                checked,
                e,
                "check the S3 disk's endpoint, credentials and the bucket's policy",
            ),
        })
    }
}

impl Clickhouse {
    fn checked(&self) -> String {
        let t = &self.target;
        format!(
            "{}:{} as {}",
            t.at.host,
            t.at.port,
            t.at.user.as_deref().unwrap_or("default")
        )
    }
}

#[async_trait]
impl Probe for Clickhouse {
    fn name(&self) -> &str {
        NAME
    }
    fn checks(&self) -> String {
        self.checked()
    }
    async fn run(&self) -> Vec<Finding> {
        let checked = self.checked();
        let password = match self.target.at.password_or_finding(NAME, &checked) {
            Ok(p) => p,
            Err(f) => return vec![f],
        };
        let http: Http = Client::builder(TokioExecutor::new()).build_http();
        let on = On {
            http: &http,
            t: &self.target,
            password: &password,
        };
        let version = match on.q("SELECT version()").await {
            Ok(r) => cell(&r),
            Err(e) => {
                let todo = if e.contains("516") || e.contains("Authentication") {
                    "the Secret's password is not the server's: run `wbstack up` to write it again and roll the pods"
                } else {
                    "check the host, the port and that this network reaches the server"
                };
                return vec![Finding::fail(NAME, checked, e, todo)];
            }
        };
        let mut out = vec![match major_minor(&version) {
            Some(mm) if mm >= OLDEST => {
                Finding::pass(NAME, checked, format!("ClickHouse {version}"))
            }
            _ => Finding::warn(
                NAME,
                checked,
                format!("ClickHouse {version}"),
                "the Weave guide runs ClickHouse 24.8 or newer",
            ),
        }];
        let wrong = format!("{password}-not-this-one");
        out.push(match query(&http, &self.target, &wrong, "SELECT 1").await {
            Err(_) => Finding::pass(NAME, "a wrong password is refused", "refused"),
            Ok(_) => Finding::fail(
                NAME,
                "a wrong password is refused",
                "accepted",
                "give the user a password (`wbstack up` writes it from the Secret)",
            ),
        });
        out.push(on.database().await);
        if let Some(cluster) = &self.target.cluster {
            on.cluster(cluster, &mut out).await;
        }
        out.extend(on.s3().await);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn versions_and_cells_are_read_from_json_compact() {
        assert_eq!(major_minor("24.8.14.39"), Some((24, 8)));
        assert!(major_minor("23.3.1").unwrap() < OLDEST);
        assert_eq!(major_minor("x"), None);
        assert_eq!(cell(&[json!(["24.8.1"])]), "24.8.1");
        assert_eq!(cell(&[json!([3])]), "3");
        assert_eq!(cell(&[]), "");
    }
}
