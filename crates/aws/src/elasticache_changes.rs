//! A running replication group's settings against the plan's, and the calls that change them
//! in place: ModifyReplicationGroup (node type, engine version, Multi-AZ and automatic
//! failover, the AUTH token's `ROTATE`) and Increase/DecreaseReplicaCount (nodes).

use crate::clients::classify;
use crate::elasticache::RedisCacheStep;
use crate::rotation::{pending_of, Pending};
use crate::secrets::read_secret;
use aws_sdk_elasticache::types::{
    AuthTokenUpdateStrategyType, AutomaticFailoverStatus, MultiAzStatus, ReplicationGroup,
};
use wbstack_engine::{Change, SecretRef, StepCtx, StepError};

/// What can change in place.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Settings {
    pub node_type: String,
    pub nodes: u32,
    pub multi_az: bool,
    /// major.minor, as its member clusters run it (empty: not known).
    pub engine_version: String,
    /// When the AUTH token last changed (seconds since the epoch), as the group reports it.
    pub auth_modified: Option<i64>,
    /// Days of daily snapshots kept.
    pub snapshot_days: u32,
}

impl Settings {
    /// The group's settings; `engine_version` is its member clusters' (`7.1.0`, read as `7.1`).
    pub fn of(g: &ReplicationGroup, engine_version: Option<&str>) -> Settings {
        Settings {
            // Settings AWS leaves out are compared as unset (`plan` shows them as empty).
            node_type: g.cache_node_type().unwrap_or_default().to_owned(),
            nodes: g.member_clusters().len() as u32,
            multi_az: g.multi_az() == Some(&MultiAzStatus::Enabled)
                || g.automatic_failover() == Some(&AutomaticFailoverStatus::Enabled),
            engine_version: engine_version.map(major_minor).unwrap_or_default(),
            auth_modified: g.auth_token_last_modified_date().map(|d| d.secs()),
            snapshot_days: g.snapshot_retention_limit().unwrap_or(0).max(0) as u32,
        }
    }

    /// Whether the group already takes the pending token (it changed its token after the token
    /// was written).
    pub fn takes(&self, p: &Pending) -> bool {
        self.auth_modified.is_some_and(|m| m >= p.created)
    }
}

/// `7.1.0` → `7.1`.
fn major_minor(v: &str) -> String {
    v.split('.').take(2).collect::<Vec<_>>().join(".")
}

/// A version as numbers, for ordering.
fn numbers(v: &str) -> Vec<u32> {
    v.split('.').filter_map(|p| p.parse().ok()).collect()
}

/// The engine version's change: newer is an upgrade in place, older needs a new group.
fn version_change(live: &str, want: &str) -> Option<Change> {
    if live.is_empty() || live == want {
        return None;
    }
    Some(if numbers(live) > numbers(want) {
        Change::replacing("engine_version", live, want)
    } else {
        Change::in_place("engine_version", live, want)
    })
}

/// The fields that differ, live against desired.
pub fn changes(live: &Settings, want: &Settings) -> Vec<Change> {
    let mut c = Vec::new();
    c.extend(version_change(&live.engine_version, &want.engine_version));
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
    if live.snapshot_days != want.snapshot_days {
        c.push(Change::in_place(
            "snapshot_retention_days",
            live.snapshot_days,
            want.snapshot_days,
        ));
    }
    c
}

/// The token change a rotation still needs from the group.
fn auth_change(live: &Settings, pending: Option<&Pending>) -> Option<Change> {
    pending.filter(|p| !live.takes(p)).map(|_| {
        Change::in_place(
            "auth_token",
            "the current token",
            "the current and a new one (ROTATE)",
        )
    })
}

impl RedisCacheStep {
    fn desired(&self) -> Settings {
        Settings {
            node_type: self.spec.node_type.clone(),
            nodes: self.spec.nodes.max(1),
            multi_az: self.spec.multi_az,
            engine_version: self.spec.engine_version.clone(),
            auth_modified: None,
            snapshot_days: self.spec.snapshot_retention_days,
        }
    }

    /// The token being rotated in, if a rotation is under way.
    pub(crate) fn pending(&self, ctx: &StepCtx) -> Option<Pending> {
        pending_of(ctx, self.spec.auth.step)
    }

    /// The changes still to make.
    pub(crate) fn against_plan(&self, ctx: &StepCtx, live: &Settings) -> Vec<Change> {
        let mut c = changes(live, &self.desired());
        c.extend(auth_change(live, self.pending(ctx).as_ref()));
        c
    }

    /// The changes a run waits for: a node type or version asked for in the maintenance window
    /// is not.
    pub(crate) fn still_to_apply(&self, ctx: &StepCtx, live: &Settings) -> Vec<Change> {
        let mut c = self.against_plan(ctx, live);
        if !self.spec.apply_immediately {
            c.retain(|c| c.field != "node_type" && c.field != "engine_version");
        }
        c
    }

    /// The token version W&B is to be given now: the new one once the group takes it, else the
    /// current one.
    pub(crate) fn auth_ref(&self, ctx: &StepCtx, live: &Settings) -> Option<SecretRef> {
        let step = self.spec.auth.step;
        let r = SecretRef::from_output(ctx.dep_output(step, self.spec.auth.output)?)?;
        let current = ctx.dep_str(step, crate::rotation::CURRENT_OUTPUT);
        Some(match self.pending(ctx) {
            Some(p) if live.takes(&p) => r.at_version(p.version),
            _ => match current {
                Some(v) => r.at_version(v),
                None => r,
            },
        })
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
        let c = self.against_plan(ctx, &live);
        if c.is_empty() {
            return Ok(());
        }
        let fields: Vec<&str> = c.iter().map(|c| c.field.as_str()).collect();
        ctx.progress(format!(
            "modifying {} ({})",
            self.spec.id,
            fields.join(", ")
        ));
        // One change at a time: ElastiCache takes the next only once the group is available.
        let mut busy = false;
        if want.nodes > live.nodes {
            self.replicas(want.nodes, true).await?;
            busy = true;
        }
        let version = version_change(&live.engine_version, &want.engine_version);
        if live.node_type != want.node_type
            || live.multi_az != want.multi_az
            || version.is_some()
            || live.snapshot_days != want.snapshot_days
        {
            self.settle(ctx, busy).await?;
            self.aws
                .elasticache
                .modify_replication_group()
                .replication_group_id(&self.spec.id)
                .cache_node_type(&want.node_type)
                .multi_az_enabled(want.multi_az)
                .automatic_failover_enabled(want.multi_az)
                .set_engine_version(version.map(|_| want.engine_version.clone()))
                .snapshot_retention_limit(want.snapshot_days as i32)
                .snapshot_window(&self.spec.snapshot_window)
                .apply_immediately(self.spec.apply_immediately)
                .send()
                .await
                .map_err(|e| classify(e, "ModifyReplicationGroup", &self.spec.id))?;
            busy = true;
        }
        if want.nodes < live.nodes {
            self.settle(ctx, busy).await?;
            self.replicas(want.nodes, false).await?;
            busy = true;
        }
        if let Some(p) = self.pending(ctx).filter(|p| !live.takes(p)) {
            self.settle(ctx, busy).await?;
            self.rotate_in(ctx, &p).await?;
        }
        Ok(())
    }

    /// Waits until the group is available again after a change this call made.
    pub(crate) async fn settle(&self, ctx: &StepCtx, busy: bool) -> Result<(), StepError> {
        if !busy {
            return Ok(());
        }
        crate::poll::poll(ctx, || async {
            Ok(match self.look().await? {
                crate::elasticache::Group::Present { status, .. } if status == "available" => {
                    Some(())
                }
                _ => None,
            })
        })
        .await
    }

    /// Lets the group take the new token next to the old one (`ROTATE`), so W&B can change over
    /// without a moment of refused connections.
    async fn rotate_in(&self, ctx: &StepCtx, p: &Pending) -> Result<(), StepError> {
        let r = ctx.need_secret(self.spec.auth.step, self.spec.auth.output)?;
        let token = read_secret(&self.aws, &r.at_version(&p.version)).await?;
        ctx.progress(format!("{}: accepting a new AUTH token", self.spec.id));
        change_token(
            &self.aws,
            &self.spec.id,
            &token,
            AuthTokenUpdateStrategyType::Rotate,
        )
        .await
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

/// Changes group `id`'s AUTH token now: `Rotate` accepts `token` next to the current one, `Set`
/// accepts only `token`.
pub(crate) async fn change_token(
    aws: &crate::clients::Aws,
    id: &str,
    token: &wbstack_engine::Secret,
    strategy: AuthTokenUpdateStrategyType,
) -> Result<(), StepError> {
    aws.elasticache
        .modify_replication_group()
        .replication_group_id(id)
        .auth_token(token.expose())
        .auth_token_update_strategy(strategy)
        .apply_immediately(true)
        .send()
        .await
        .map_err(|e| classify(e, "ModifyReplicationGroup", id))?;
    Ok(())
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
            engine_version: "7.1".into(),
            auth_modified: None,
            snapshot_days: 7,
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

    #[test]
    fn a_newer_engine_is_an_upgrade_and_an_older_one_a_replacement() {
        let up = version_change("7.0", "7.1").unwrap();
        assert!(!up.replaces, "{up}");
        let down = version_change("7.1", "6.2").unwrap();
        assert!(down.replaces, "{down}");
        // 7.10 is newer than 7.9, not older.
        assert!(!version_change("7.9", "7.10").unwrap().replaces);
        assert_eq!(version_change("", "7.1"), None);
        assert_eq!(version_change("7.1", "7.1"), None);
        assert_eq!(major_minor("7.1.0"), "7.1");
        assert_eq!(major_minor("6.2.6"), "6.2");
    }

    #[test]
    fn a_pending_token_is_taken_once_the_group_changed_its_token_after_it_was_written() {
        let p = Pending {
            version: "v2".into(),
            created: 1_000,
        };
        let mut live = Settings::default();
        assert!(!live.takes(&p), "a group that never changed its token");
        assert!(auth_change(&live, Some(&p)).is_some());
        live.auth_modified = Some(999);
        assert!(!live.takes(&p));
        live.auth_modified = Some(1_000);
        assert!(live.takes(&p));
        assert_eq!(auth_change(&live, Some(&p)), None);
        assert_eq!(auth_change(&Settings::default(), None), None);
    }
}
