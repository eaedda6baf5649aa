//! `wbstack verify`: one probe per data path of a running environment. Probes read what the pods
//! read (the resource's values, the Secrets they name), never wbstack's memory of what it made,
//! and report a verdict each; values of secrets never reach a finding.

#[cfg(feature = "aws")]
mod bucket_access;
#[cfg(feature = "aws")]
mod bucket_probe;
mod clickhouse_probe;
mod host_probe;
mod job;
mod mysql_probe;
mod order;
mod pods;
mod redis_probe;
mod references;
mod run;
mod select;
mod verdict;
mod wiring;

#[cfg(feature = "aws")]
pub use bucket_access::{access, Refused};
#[cfg(feature = "aws")]
pub use bucket_probe::{Bucket, S3Access};
pub use clickhouse_probe::Clickhouse;
pub use host_probe::Host;
pub use job::{in_cluster, manifest, ProbeJob};
pub use mysql_probe::Mysql;
pub use order::{Order, ORDER_VAR};
pub use redis_probe::Redis;
pub use references::References;
pub use run::{run_all, Probe};
pub use select::{choose, references, Chosen, Options};
pub use verdict::{Finding, Summary, Verdict};
pub use wiring::{
    BucketTarget, ClickhouseTarget, Endpoint, MysqlTarget, RedisTarget, Source, Wiring,
};
