//! An Aurora instance-class change without an outage: the readers change first, one at a time,
//! each waited until it is `available` in the new class; then the cluster fails over to a
//! changed reader; then the old writer changes. Every move is decided from what RDS shows now,
//! so a run cut anywhere in the roll resumes where the cluster stands.

use crate::poll::poll;
use crate::rds_mysql::MysqlDatabaseStep;
use std::fmt;
use wbstack_engine::{StepCtx, StepError};

/// One instance of the cluster, as RDS shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Member {
    pub id: String,
    pub writer: bool,
    pub class: String,
    /// Its class change, asked for and not yet made (RDS's pending modified values).
    pub pending: bool,
    pub available: bool,
}

/// The next thing a roll does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Move {
    /// Changes one instance's class; `writer` when it is the writer (alone in the cluster, or
    /// the last), which restarts it.
    Modify { id: String, writer: bool },
    /// Makes a reader already in the new class the writer.
    Failover { to: String },
}

impl fmt::Display for Move {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Move::Modify { id, writer: false } => write!(f, "reader {id}"),
            Move::Modify { id, writer: true } => write!(f, "writer {id} (restarts)"),
            Move::Failover { to } => write!(f, "failover to {to}"),
        }
    }
}

/// What to do next to bring every member to `want`, or `None` when all are there.
pub(crate) fn next_move(members: &[Member], want: &str) -> Option<Move> {
    let stale = |m: &Member| m.class != want;
    if let Some(r) = members.iter().find(|m| !m.writer && stale(m)) {
        return Some(Move::Modify {
            id: r.id.clone(),
            writer: false,
        });
    }
    let w = members.iter().find(|m| m.writer && stale(m))?;
    Some(match members.iter().find(|m| !m.writer && !stale(m)) {
        Some(r) => Move::Failover { to: r.id.clone() },
        None => Move::Modify {
            id: w.id.clone(),
            writer: true,
        },
    })
}

/// The whole roll from here, as `plan` tells it.
pub(crate) fn order(members: &[Member], want: &str) -> Vec<Move> {
    let mut m = members.to_vec();
    let mut out = Vec::new();
    while let Some(mv) = next_move(&m, want) {
        match &mv {
            Move::Modify { id, .. } => {
                for x in m.iter_mut().filter(|x| &x.id == id) {
                    x.class = want.to_owned();
                }
            }
            Move::Failover { to } => {
                for x in m.iter_mut() {
                    x.writer = &x.id == to;
                }
            }
        }
        out.push(mv);
        if out.len() > 2 * members.len() + 1 {
            break;
        }
    }
    out
}

impl MysqlDatabaseStep {
    /// The cluster's members among the instances the plan names, with their roles and classes.
    pub(crate) async fn members(&self) -> Result<Vec<Member>, StepError> {
        let Some(c) = self.cluster().await? else {
            return Ok(Vec::new());
        };
        let writers: Vec<String> = c
            .db_cluster_members()
            .iter()
            .filter(|m| m.is_cluster_writer() == Some(true))
            .filter_map(|m| m.db_instance_identifier().map(str::to_owned))
            .collect();
        let mut out = Vec::new();
        for id in self.instance_ids() {
            if let Some(i) = self.instance(&id).await? {
                out.push(Member {
                    writer: writers.contains(&id),
                    // Unset when AWS leaves it out: then it differs from the wanted class.
                    class: i.db_instance_class().unwrap_or_default().to_owned(),
                    pending: i
                        .pending_modified_values()
                        .is_some_and(|p| p.db_instance_class().is_some()),
                    available: i.db_instance_status() == Some("available"),
                    id,
                });
            }
        }
        Ok(out)
    }

    /// Rolls the plan's instance class through the cluster, one move at a time.
    pub(crate) async fn roll(&self, ctx: &StepCtx) -> Result<(), StepError> {
        let want = self.spec.instance_class.clone();
        let mut moves = 0;
        while let Some(mv) = next_move(&self.settled_members(ctx).await?, &want) {
            moves += 1;
            if moves > 2 * self.instance_ids().len() + 1 {
                return Err(StepError::permanent(format!(
                    "rolling {} to {want}: RDS does not show the changes made ({mv} again)",
                    self.spec.identifier
                )));
            }
            ctx.progress(format!("rolling {want}: {mv}"));
            match &mv {
                Move::Modify { id, .. } => self.modify_class(id).await?,
                Move::Failover { to } => self.failover(to).await?,
            }
            self.wait_move(ctx, &mv, &want).await?;
        }
        Ok(())
    }

    /// The members once none is changing: a move is decided only on a settled cluster.
    async fn settled_members(&self, ctx: &StepCtx) -> Result<Vec<Member>, StepError> {
        poll_now(ctx, || async {
            let m = self.members().await?;
            let busy = m.iter().find(|m| !m.available || m.pending);
            if let Some(b) = busy {
                ctx.progress(format!("waiting for {} to be available", b.id));
            }
            Ok(busy.is_none().then_some(m))
        })
        .await
    }

    /// Waits until RDS shows the move made.
    async fn wait_move(&self, ctx: &StepCtx, mv: &Move, want: &str) -> Result<(), StepError> {
        poll(ctx, || async {
            let m = self.members().await?;
            let done = match mv {
                Move::Modify { id, .. } => m
                    .iter()
                    .any(|x| &x.id == id && x.class == want && x.available && !x.pending),
                Move::Failover { to } => m.iter().any(|x| &x.id == to && x.writer && x.available),
            };
            if !done {
                ctx.progress(format!("waiting for {mv}"));
            }
            Ok(done.then_some(()))
        })
        .await
    }

    async fn modify_class(&self, id: &str) -> Result<(), StepError> {
        self.aws
            .rds
            .modify_db_instance()
            .db_instance_identifier(id)
            .db_instance_class(&self.spec.instance_class)
            .apply_immediately(true)
            .send()
            .await
            .map_err(|e| crate::clients::classify(e, "ModifyDBInstance", id))?;
        Ok(())
    }

    async fn failover(&self, to: &str) -> Result<(), StepError> {
        let cluster = &self.spec.identifier;
        self.aws
            .rds
            .failover_db_cluster()
            .db_cluster_identifier(cluster)
            .target_db_instance_identifier(to)
            .send()
            .await
            .map_err(|e| crate::clients::classify(e, "FailoverDBCluster", cluster))?;
        Ok(())
    }
}

/// [`poll`], with the first read at once.
async fn poll_now<T, F, Fut>(ctx: &StepCtx, mut check: F) -> Result<T, StepError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>, StepError>>,
{
    if let Some(v) = check().await? {
        return Ok(v);
    }
    poll(ctx, check).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(id: &str, writer: bool, class: &str) -> Member {
        Member {
            id: id.into(),
            writer,
            class: class.into(),
            pending: false,
            available: true,
        }
    }

    fn said(moves: &[Move]) -> Vec<String> {
        moves.iter().map(|m| m.to_string()).collect()
    }

    #[test]
    fn readers_first_one_at_a_time_then_failover_then_the_old_writer() {
        let c = [
            m("db-1", true, "small"),
            m("db-2", false, "small"),
            m("db-3", false, "small"),
        ];
        assert_eq!(
            said(&order(&c, "large")),
            [
                "reader db-2",
                "reader db-3",
                "failover to db-2",
                "reader db-1"
            ]
        );
    }

    #[test]
    fn a_cut_roll_goes_on_from_where_the_cluster_stands() {
        // Cut after the failover: the old writer is a reader in the old class.
        let c = [m("db-1", false, "small"), m("db-2", true, "large")];
        assert_eq!(said(&order(&c, "large")), ["reader db-1"]);
        // Cut after the readers changed.
        let c = [m("db-1", true, "small"), m("db-2", false, "large")];
        assert_eq!(
            said(&order(&c, "large")),
            ["failover to db-2", "reader db-1"]
        );
        // Done.
        let c = [m("db-1", true, "large"), m("db-2", false, "large")];
        assert!(order(&c, "large").is_empty());
    }

    #[test]
    fn a_lone_writer_changes_in_place_and_says_it_restarts() {
        let c = [m("db-1", true, "small")];
        assert_eq!(said(&order(&c, "large")), ["writer db-1 (restarts)"]);
    }
}
