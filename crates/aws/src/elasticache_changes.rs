//! A running replication group's settings against the plan's, and the calls that change them
//! in place: ModifyReplicationGroup (node type, Multi-AZ and automatic failover) and
//! Increase/DecreaseReplicaCount (nodes).

use crate::clients::classify;
use crate::elasticache::RedisCacheStep;
use aws_sdk_elasticache::types::{AutomaticFailoverStatus, MultiAzStatus, ReplicationGroup};
use wbstack_engine::{Change, StepCtx, StepError};

/// What can change in place.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Settings {
    pub node_type: String,
    pub nodes: u32,
    pub multi_az: bool,
}

impl Settings {
    pub fn of(g: &ReplicationGroup) -> Settings {
        Settings {
            node_type: g.cache_node_type().unwrap_or_default().to_owned(),
            nodes: g.member_clusters().len() as u32,
            multi_az: g.multi_az() == Some(&MultiAzStatus::Enabled)
                || g.automatic_failover() == Some(&AutomaticFailoverStatus::Enabled),
        }
    }
}

/// The fields that differ, live against desired.
pub fn changes(live: &Settings, want: &Settings) -> Vec<Change> {
    let mut c = Vec::new();
    if live.node_type != want.node_type {
        c.push(Change::in_place(
            "node_type",
            &live.node_type,
            &want.node_type,
        ));
    }
    if live.nodes != want.nodes {
        c.push(Change::in_place("nodes", live.nodes, want.nodes));
    }
    if live.multi_az != want.multi_az {
        c.push(Change::in_place("multi_az", live.multi_az, want.multi_az));
    }
    c
}

impl RedisCacheStep {
    fn desired(&self) -> Settings {
        Settings {
            node_type: self.spec.node_type.clone(),
            nodes: self.spec.nodes.max(1),
            multi_az: self.spec.multi_az,
        }
    }

    /// The changes still to make.
    pub(crate) fn against_plan(&self, live: &Settings) -> Vec<Change> {
        changes(live, &self.desired())
    }

    /// The changes a run waits for: a node type asked for in the maintenance window is not.
    pub(crate) fn still_to_apply(&self, live: &Settings) -> Vec<Change> {
        let mut c = self.against_plan(live);
        if !self.spec.apply_immediately {
            c.retain(|c| c.field != "node_type");
        }
        c
    }

    /// Makes the group what the plan says: more nodes before Multi-AZ is turned on, Multi-AZ
    /// off before nodes are removed (Multi-AZ needs a replica).
    pub(crate) async fn modify(&self, ctx: &StepCtx) -> Result<(), StepError> {
        let crate::elasticache::Group::Present { settings: live, .. } = self.look().await? else {
            return Err(StepError::transient(format!(
                "replication group {} is not there to change",
                self.spec.id
            )));
        };
        let want = self.desired();
        let c = changes(&live, &want);
        if c.is_empty() {
            return Ok(());
        }
        let fields: Vec<&str> = c.iter().map(|c| c.field.as_str()).collect();
        ctx.progress(format!(
            "modifying {} ({})",
            self.spec.id,
            fields.join(", ")
        ));
        if want.nodes > live.nodes {
            self.replicas(want.nodes, true).await?;
        }
        if live.node_type != want.node_type || live.multi_az != want.multi_az {
            self.aws
                .elasticache
                .modify_replication_group()
                .replication_group_id(&self.spec.id)
                .cache_node_type(&want.node_type)
                .multi_az_enabled(want.multi_az)
                .automatic_failover_enabled(want.multi_az)
                .apply_immediately(self.spec.apply_immediately)
                .send()
                .await
                .map_err(|e| classify(e, "ModifyReplicationGroup", &self.spec.id))?;
        }
        if want.nodes < live.nodes {
            self.replicas(want.nodes, false).await?;
        }
        Ok(())
    }

    /// Increase/DecreaseReplicaCount to `nodes - 1` replicas (applied now: the API has no
    /// window for it).
    async fn replicas(&self, nodes: u32, more: bool) -> Result<(), StepError> {
        let replicas = nodes.saturating_sub(1) as i32;
        let id = &self.spec.id;
        let res = if more {
            self.aws
                .elasticache
                .increase_replica_count()
                .replication_group_id(id)
                .new_replica_count(replicas)
                .apply_immediately(true)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| classify(e, "IncreaseReplicaCount", id))
        } else {
            self.aws
                .elasticache
                .decrease_replica_count()
                .replication_group_id(id)
                .new_replica_count(replicas)
                .apply_immediately(true)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| classify(e, "DecreaseReplicaCount", id))
        };
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_type_nodes_and_multi_az_are_compared() {
        let live = Settings {
            node_type: "cache.m6g.large".into(),
            nodes: 2,
            multi_az: true,
        };
        assert!(changes(&live, &live).is_empty());
        let want = Settings {
            node_type: "cache.m6g.xlarge".into(),
            nodes: 3,
            ..live.clone()
        };
        let shown: Vec<String> = changes(&live, &want)
            .iter()
            .map(|c| c.to_string())
            .collect();
        assert_eq!(
            shown,
            [
                "node_type: cache.m6g.large -> cache.m6g.xlarge",
                "nodes: 2 -> 3"
            ]
        );
    }
}
