//! Size presets: small, medium, large.
//!
//! Component replicas and resources follow the reference architecture (its production example
//! is the large preset; the Weave document's example the medium one). Database and cache
//! classes are those the official W&B AWS Terraform module uses for the same sizes.

use crate::model::{CpuMem, Resources, Size};

/// What a size sets.
#[derive(Clone, Debug, PartialEq)]
pub struct Preset {
    pub db_instance_class: &'static str,
    /// Aurora instances (writer and readers).
    pub db_instances: u32,
    pub db_storage_gb: u32,
    pub db_backup_retention_days: u32,
    pub cache_node_type: &'static str,
    /// Cache nodes (primary and replicas); more than one means Multi-AZ with failover.
    pub cache_nodes: u32,
    /// Days of the cache's daily snapshots kept.
    pub cache_snapshot_days: u32,
    pub clickhouse_replicas: u32,
    /// What each ClickHouse server asks for (the reference architecture's ClickHouse nodes);
    /// `None` keeps the servers' own default (small has no ClickHouse size in it).
    pub clickhouse_resources: Option<Resources>,
    /// (component, replicas, resources).
    pub components: Vec<(&'static str, u32, Option<Resources>)>,
    /// The cluster the reference architecture sizes for it: nodes, and each node's CPU and
    /// memory (GiB); `up`'s preflight compares the cluster's allocatable total with it.
    pub nodes: Nodes,
}

/// The reference architecture's cluster for a size: `count` nodes of `cpu` CPUs and
/// `memory_gib` GiB each, and the persistent storage it plans (GiB).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Nodes {
    pub count: u32,
    pub cpu: u32,
    pub memory_gib: u32,
    pub storage_gib: u32,
}

impl Nodes {
    /// The reference architecture's sizing guidelines (small, medium, large).
    pub const fn of(size: Size) -> Nodes {
        match size {
            Size::Small => Nodes {
                count: 3,
                cpu: 4,
                memory_gib: 16,
                storage_gib: 500,
            },
            Size::Medium => Nodes {
                count: 5,
                cpu: 8,
                memory_gib: 32,
                storage_gib: 2048,
            },
            Size::Large => Nodes {
                count: 10,
                cpu: 16,
                memory_gib: 64,
                storage_gib: 10240,
            },
        }
    }
}

impl Preset {
    /// Multi-AZ with automatic failover.
    pub fn multi_az(&self) -> bool {
        self.cache_nodes > 1
    }
}

fn res(rc: &str, rm: &str, lc: &str, lm: &str) -> Option<Resources> {
    Some(Resources {
        requests: Some(CpuMem {
            cpu: rc.into(),
            memory: rm.into(),
        }),
        limits: Some(CpuMem {
            cpu: lc.into(),
            memory: lm.into(),
        }),
    })
}

/// The preset for a size.
pub fn preset(size: Size) -> Preset {
    match size {
        Size::Small => Preset {
            db_instance_class: "db.r6g.large",
            db_instances: 1,
            db_storage_gb: 100,
            db_backup_retention_days: 7,
            cache_node_type: "cache.m6g.large",
            cache_nodes: 1,
            cache_snapshot_days: 1,
            clickhouse_replicas: 1,
            clickhouse_resources: None,
            components: vec![
                ("api", 1, None),
                ("app", 1, None),
                ("frontend", 1, None),
                ("console", 1, None),
                ("parquet", 1, None),
                ("weave", 1, None),
                ("weave-trace", 1, None),
                ("weave-trace-worker", 1, None),
                ("executor", 1, None),
                ("filestream", 1, None),
            ],
            nodes: Nodes::of(Size::Small),
        },
        Size::Medium => Preset {
            db_instance_class: "db.r6g.xlarge",
            db_instances: 2,
            db_storage_gb: 500,
            db_backup_retention_days: 14,
            cache_node_type: "cache.m6g.large",
            cache_nodes: 2,
            cache_snapshot_days: 7,
            clickhouse_replicas: 3,
            clickhouse_resources: res("4", "16Gi", "4", "16Gi"),
            components: vec![
                ("api", 2, None),
                ("app", 2, None),
                ("frontend", 2, None),
                ("console", 2, None),
                ("parquet", 1, None),
                ("weave", 2, None),
                ("weave-trace", 2, None),
                ("weave-trace-worker", 3, None),
                ("executor", 2, None),
                ("filestream", 2, None),
            ],
            nodes: Nodes::of(Size::Medium),
        },
        Size::Large => Preset {
            db_instance_class: "db.r6g.2xlarge",
            db_instances: 2,
            db_storage_gb: 1000,
            db_backup_retention_days: 30,
            cache_node_type: "cache.m6g.xlarge",
            cache_nodes: 3,
            cache_snapshot_days: 14,
            // The reference architecture's large ClickHouse is a cluster of 5 or more.
            clickhouse_replicas: 5,
            clickhouse_resources: res("8", "32Gi", "8", "32Gi"),
            components: vec![
                ("api", 3, res("500m", "1Gi", "2000m", "4Gi")),
                ("app", 3, res("200m", "512Mi", "1000m", "2Gi")),
                ("frontend", 2, res("100m", "256Mi", "500m", "1Gi")),
                ("console", 2, None),
                ("parquet", 1, None),
                ("weave", 2, None),
                ("weave-trace", 1, None),
                ("weave-trace-worker", 2, None),
                ("executor", 2, None),
                ("filestream", 2, None),
            ],
            nodes: Nodes::of(Size::Large),
        },
    }
}
