//! A key is not deleted while it encrypts what a teardown kept: the database's final snapshot
//! and the cache's are readable only with it, so scheduling its deletion would destroy them a
//! few days later. What the key still encrypts is looked up in RDS and ElastiCache, not taken
//! from this run's memory.

use crate::clients::{classify, Aws};
use wbstack_engine::StepError;

/// The manual snapshots (RDS clusters and instances, ElastiCache) encrypted with `key_id`.
pub(crate) async fn snapshots_under(aws: &Aws, key_id: &str) -> Result<Vec<String>, StepError> {
    let under =
        |k: Option<&str>| k.is_some_and(|k| k == key_id || k.ends_with(&format!("/{key_id}")));
    let mut out = Vec::new();
    let clusters = aws
        .rds
        .describe_db_cluster_snapshots()
        .snapshot_type("manual")
        .send()
        .await
        .map_err(|e| classify(e, "DescribeDBClusterSnapshots", key_id))?;
    out.extend(
        clusters
            .db_cluster_snapshots()
            .iter()
            .filter(|s| under(s.kms_key_id()))
            .filter_map(|s| s.db_cluster_snapshot_identifier().map(str::to_owned)),
    );
    let instances = aws
        .rds
        .describe_db_snapshots()
        .snapshot_type("manual")
        .send()
        .await
        .map_err(|e| classify(e, "DescribeDBSnapshots", key_id))?;
    out.extend(
        instances
            .db_snapshots()
            .iter()
            .filter(|s| under(s.kms_key_id()))
            .filter_map(|s| s.db_snapshot_identifier().map(str::to_owned)),
    );
    let caches = aws
        .elasticache
        .describe_snapshots()
        .snapshot_source("user")
        .send()
        .await
        .map_err(|e| classify(e, "DescribeSnapshots", key_id))?;
    out.extend(
        caches
            .snapshots()
            .iter()
            .filter(|s| under(s.kms_key_id()))
            .filter_map(|s| s.snapshot_name().map(str::to_owned)),
    );
    Ok(out)
}
