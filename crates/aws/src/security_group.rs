//! The security group of the database and the cache (`aws.security-group`): made in the VPC of
//! the plan's subnets, it admits only the cluster's security groups on the stores' ports and
//! sends nothing out. Judged by its live rules, so a rule added or removed by hand (a port
//! opened to 0.0.0.0/0) shows in `plan` and `up` sets the rules back.

use crate::clients::{answered, classify, Aws};
use crate::kind::{AwsStepKind, Grants};
use crate::own::{accepted, has_code, not_owned, outputs, tags, Tolerate};
use async_trait::async_trait;
use aws_sdk_ec2::types::{
    Filter, IpPermission, IpRange, Ipv6Range, PrefixListId, ResourceType, SecurityGroup as Group,
    Tag, TagSpecification, UserIdGroupPair,
};
use serde_json::json;
use std::sync::Arc;
use wbstack_engine::{Action, Change, Fingerprint, Observation, Step, StepCtx, StepError};
use wbstack_plan::{Kind, SecurityGroup};

/// One rule: a protocol, a port range and one peer (a group, a CIDR or a prefix list).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub(crate) struct Rule {
    pub protocol: String,
    pub from: i32,
    pub to: i32,
    pub peer: String,
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.protocol.as_str(), self.from == self.to) {
            ("-1", _) => write!(f, "all traffic with {}", self.peer),
            (p, true) => write!(f, "{p} {} with {}", self.from, self.peer),
            (p, false) => write!(f, "{p} {}-{} with {}", self.from, self.to, self.peer),
        }
    }
}

/// A permission's rules, one per peer.
pub(crate) fn rules(p: &IpPermission) -> Vec<Rule> {
    let rule = |peer: &str| Rule {
        protocol: p.ip_protocol().unwrap_or("-1").to_owned(),
        from: p.from_port().unwrap_or(-1),
        to: p.to_port().unwrap_or(-1),
        peer: peer.to_owned(),
    };
    let mut v: Vec<Rule> = Vec::new();
    v.extend(
        p.user_id_group_pairs()
            .iter()
            .filter_map(|g| g.group_id())
            .map(rule),
    );
    v.extend(p.ip_ranges().iter().filter_map(|r| r.cidr_ip()).map(rule));
    v.extend(
        p.ipv6_ranges()
            .iter()
            .filter_map(|r| r.cidr_ipv6())
            .map(rule),
    );
    v.extend(
        p.prefix_list_ids()
            .iter()
            .filter_map(|r| r.prefix_list_id())
            .map(rule),
    );
    v
}

/// A rule as the API takes it.
fn permission(r: &Rule) -> IpPermission {
    let b = IpPermission::builder()
        .ip_protocol(&r.protocol)
        .from_port(r.from)
        .to_port(r.to);
    let p = r.peer.as_str();
    if p.starts_with("sg-") {
        b.user_id_group_pairs(UserIdGroupPair::builder().group_id(p).build())
    } else if p.starts_with("pl-") {
        b.prefix_list_ids(PrefixListId::builder().prefix_list_id(p).build())
    } else if p.contains(':') {
        b.ipv6_ranges(Ipv6Range::builder().cidr_ipv6(p).build())
    } else {
        b.ip_ranges(IpRange::builder().cidr_ip(p).build())
    }
    .build()
}

/// What is live and what is wanted, one direction.
fn diff(live: &[Rule], want: &[Rule]) -> (Vec<Rule>, Vec<Rule>) {
    let missing = want.iter().filter(|w| !live.contains(w)).cloned().collect();
    let extra = live.iter().filter(|l| !want.contains(l)).cloned().collect();
    (missing, extra)
}

/// The security group step.
pub struct SecurityGroupStep {
    aws: Aws,
    step: String,
    spec: SecurityGroup,
}

impl SecurityGroupStep {
    pub fn new(aws: Aws, step: &str, spec: SecurityGroup) -> Self {
        SecurityGroupStep {
            aws,
            step: step.to_owned(),
            spec,
        }
    }

    /// Into the stores' ports from each admitted group.
    fn ingress(&self) -> Vec<Rule> {
        let mut v: Vec<Rule> = self
            .spec
            .ports
            .iter()
            .flat_map(|p| {
                self.spec.allow_from.iter().map(|g| Rule {
                    protocol: "tcp".into(),
                    from: i32::from(p.port),
                    to: i32::from(p.port),
                    peer: g.clone(),
                })
            })
            .collect();
        v.sort();
        v
    }

    async fn vpc(&self) -> Result<String, StepError> {
        let s = &self.spec.subnet;
        let out = self
            .aws
            .ec2
            .describe_subnets()
            .subnet_ids(s)
            .send()
            .await
            .map_err(|e| classify(e, "DescribeSubnets", s))?;
        let subnet = out.subnets().first().ok_or_else(|| {
            StepError::permanent(format!("subnet {s} (spec.aws.subnetIds) does not exist"))
        })?;
        Ok(answered(subnet.vpc_id(), "DescribeSubnets", "VpcId", s)?.to_owned())
    }

    /// The group of this name: this environment's (one call), or, when only others have the
    /// name, the one in the subnets' VPC, where a new one would collide with it.
    async fn find(&self) -> Result<Option<Group>, StepError> {
        let filter = Filter::builder()
            .name("group-name")
            .values(&self.spec.name)
            .build();
        let out = self
            .aws
            .ec2
            .describe_security_groups()
            .filters(filter)
            .send()
            .await
            .map_err(|e| classify(e, "DescribeSecurityGroups", &self.spec.name))?;
        let found = out.security_groups();
        if let Some(g) = found
            .iter()
            .find(|g| self.aws.owns(&self.step, &Self::owned_by_tags(g)))
        {
            return Ok(Some(g.clone()));
        }
        if found.is_empty() {
            return Ok(None);
        }
        let vpc = self.vpc().await?;
        Ok(found
            .iter()
            .find(|g| g.vpc_id() == Some(vpc.as_str()))
            .cloned())
    }

    fn id<'g>(&self, g: &'g Group) -> Result<&'g str, StepError> {
        answered(
            g.group_id(),
            "DescribeSecurityGroups",
            "GroupId",
            &self.spec.name,
        )
    }

    /// Rules to add and to remove: (ingress missing, ingress extra, egress extra).
    fn against_plan(&self, g: &Group) -> (Vec<Rule>, Vec<Rule>, Vec<Rule>) {
        let mut live_in: Vec<Rule> = g.ip_permissions().iter().flat_map(rules).collect();
        live_in.sort();
        let egress: Vec<Rule> = g.ip_permissions_egress().iter().flat_map(rules).collect();
        let (missing, extra) = diff(&live_in, &self.ingress());
        (missing, extra, egress)
    }

    async fn authorize(&self, id: &str, add: &[Rule]) -> Result<(), StepError> {
        if add.is_empty() {
            return Ok(());
        }
        self.aws
            .ec2
            .authorize_security_group_ingress()
            .group_id(id)
            .set_ip_permissions(Some(add.iter().map(permission).collect()))
            .send()
            .await
            .tolerate(
                &["InvalidPermission.Duplicate"],
                "AuthorizeSecurityGroupIngress",
                id,
            )?;
        Ok(())
    }

    async fn revoke(&self, id: &str, ingress: &[Rule], egress: &[Rule]) -> Result<(), StepError> {
        let gone = ["InvalidPermission.NotFound"];
        if !ingress.is_empty() {
            self.aws
                .ec2
                .revoke_security_group_ingress()
                .group_id(id)
                .set_ip_permissions(Some(ingress.iter().map(permission).collect()))
                .send()
                .await
                .tolerate(&gone, "RevokeSecurityGroupIngress", id)?;
        }
        if !egress.is_empty() {
            self.aws
                .ec2
                .revoke_security_group_egress()
                .group_id(id)
                .set_ip_permissions(Some(egress.iter().map(permission).collect()))
                .send()
                .await
                .tolerate(&gone, "RevokeSecurityGroupEgress", id)?;
        }
        Ok(())
    }

    /// The new group's id; `None` when the name is taken, as it is when an earlier try's answer
    /// was lost after EC2 made the group (the SDK's retry then meets its own group).
    async fn create(&self, vpc: &str) -> Result<Option<String>, StepError> {
        let tag = |k: String, v: String| Tag::builder().key(k).value(v).build();
        let spec = TagSpecification::builder()
            .resource_type(ResourceType::SecurityGroup)
            .set_tags(Some(tags(&self.aws, &self.step, tag)))
            .build();
        let out = self
            .aws
            .ec2
            .create_security_group()
            .group_name(&self.spec.name)
            .description(&self.spec.description)
            .vpc_id(vpc)
            .tag_specifications(spec)
            .send()
            .await
            .tolerate(
                &["InvalidGroup.Duplicate"],
                "CreateSecurityGroup",
                &self.spec.name,
            )?;
        let Some(out) = out else { return Ok(None) };
        let id = answered(
            out.group_id(),
            "CreateSecurityGroup",
            "GroupId",
            &self.spec.name,
        )?;
        Ok(Some(id.to_owned()))
    }

    /// The group of this name that this environment's tags mark, found after a create was
    /// answered that the name is taken.
    async fn made_before(&self) -> Result<Group, StepError> {
        match self.find().await? {
            Some(g) if self.aws.owns(&self.step, &Self::owned_by_tags(&g)) => Ok(g),
            Some(_) => Err(StepError::permanent(format!(
                "security group {} exists in the VPC and is not this environment's",
                self.spec.name
            ))),
            None => Err(StepError::transient(format!(
                "security group {}: the name is taken but no group is listed yet: retrying",
                self.spec.name
            ))),
        }
    }

    fn owned_by_tags(g: &Group) -> Vec<(String, String)> {
        g.tags()
            .iter()
            .map(|t| {
                let s = |x: Option<&str>| x.unwrap_or_default().to_owned();
                (s(t.key()), s(t.value()))
            })
            .collect()
    }
}

#[async_trait]
impl Step for SecurityGroupStep {
    fn kind(&self) -> &str {
        SecurityGroup::LABEL
    }
    async fn marked(&self, _ctx: &StepCtx) -> Result<bool, StepError> {
        Ok(match self.find().await? {
            Some(g) => self.aws.owns(&self.step, &Self::owned_by_tags(&g)),
            None => false,
        })
    }
    fn supports_update(&self) -> bool {
        true
    }
    fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(&("security-group", &self.spec.name, self.ingress()))
    }
    async fn changes(&self, _ctx: &StepCtx) -> Result<Vec<Change>, StepError> {
        let Some(g) = self.find().await? else {
            return Ok(vec![]);
        };
        let (missing, extra, egress) = self.against_plan(&g);
        let mut v: Vec<Change> = missing
            .iter()
            .map(|r| Change::in_place("ingress", "(none)", r))
            .collect();
        v.extend(
            extra
                .iter()
                .map(|r| Change::in_place("ingress", r, "(none)")),
        );
        v.extend(
            egress
                .iter()
                .map(|r| Change::in_place("egress", r, "(none)")),
        );
        Ok(v)
    }
    async fn observe(&self, ctx: &StepCtx) -> Result<Observation, StepError> {
        let Some(g) = self.find().await? else {
            return Ok(Observation::Absent);
        };
        let tags = Self::owned_by_tags(&g);
        if !ctx.attempted() && !accepted(&self.aws, &self.step, || async { Ok(tags) }).await? {
            return Ok(not_owned("security group", &self.spec.name, &self.aws));
        }
        let (missing, extra, egress) = self.against_plan(&g);
        let fingerprint = if missing.is_empty() && extra.is_empty() && egress.is_empty() {
            self.fingerprint()
        } else {
            Fingerprint::of(&("security-group-live", missing, extra, egress))
        };
        Ok(Observation::Ready {
            outputs: outputs(&[("id", json!(self.id(&g)?)), ("vpc", json!(g.vpc_id()))]),
            fingerprint: Some(fingerprint),
        })
    }
    async fn apply(&self, _ctx: &StepCtx, _a: Action) -> Result<(), StepError> {
        let mut found = self.find().await?;
        let id = match &found {
            Some(g) => self.id(g)?.to_owned(),
            None => match self.create(&self.vpc().await?).await? {
                Some(id) => id,
                None => {
                    let g = self.made_before().await?;
                    let id = self.id(&g)?.to_owned();
                    found = Some(g);
                    id
                }
            },
        };
        // A group is made with an egress rule to anywhere; it goes with any other found.
        let (missing, extra, egress) = match &found {
            Some(g) => self.against_plan(g),
            None => {
                let all = Rule {
                    protocol: "-1".into(),
                    from: -1,
                    to: -1,
                    peer: "0.0.0.0/0".into(),
                };
                (self.ingress(), vec![], vec![all])
            }
        };
        self.authorize(&id, &missing).await?;
        self.revoke(&id, &extra, &egress).await
    }
    async fn destroy(&self, _ctx: &StepCtx) -> Result<(), StepError> {
        let Some(g) = self.find().await? else {
            return Ok(());
        };
        if !self.aws.owns(&self.step, &Self::owned_by_tags(&g)) {
            return Ok(());
        }
        let id = self.id(&g)?;
        match self.aws.ec2.delete_security_group().group_id(id).send().await {
            Ok(_) => Ok(()),
            Err(e) if has_code(&e, &["InvalidGroup.NotFound"]) => Ok(()),
            // The database's or the cache's network interfaces outlive them for a while.
            Err(e) if has_code(&e, &["DependencyViolation"]) => Err(StepError::transient(
                format!("security group {id} is still in use (network interfaces of the deleted database or cache): retrying"),
            )),
            Err(e) => Err(classify(e, "DeleteSecurityGroup", id)),
        }
    }
}

impl AwsStepKind for SecurityGroup {
    fn step(&self, aws: Aws, id: &str) -> Arc<dyn Step> {
        Arc::new(SecurityGroupStep::new(aws, id, self.clone()))
    }
    fn grants(&self, env: &str) -> Grants {
        Grants::only(crate::policy::security_group(env))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(protocol: &str, from: i32, peer: &str) -> Rule {
        Rule {
            protocol: protocol.into(),
            from,
            to: from,
            peer: peer.into(),
        }
    }

    #[test]
    fn a_permission_is_one_rule_per_peer_and_back() {
        let p = IpPermission::builder()
            .ip_protocol("tcp")
            .from_port(3306)
            .to_port(3306)
            .user_id_group_pairs(UserIdGroupPair::builder().group_id("sg-1").build())
            .ip_ranges(IpRange::builder().cidr_ip("0.0.0.0/0").build())
            .build();
        let got = rules(&p);
        assert_eq!(got, [r("tcp", 3306, "sg-1"), r("tcp", 3306, "0.0.0.0/0")]);
        for rule in &got {
            assert_eq!(rules(&permission(rule)), std::slice::from_ref(rule));
        }
        assert_eq!(r("tcp", 3306, "sg-1").to_string(), "tcp 3306 with sg-1");
    }

    #[test]
    fn live_rules_are_judged_against_the_wanted_ones() {
        let want = [r("tcp", 3306, "sg-1"), r("tcp", 6379, "sg-1")];
        let live = [r("tcp", 3306, "sg-1"), r("tcp", 3306, "0.0.0.0/0")];
        let (missing, extra) = diff(&live, &want);
        assert_eq!(missing, [r("tcp", 6379, "sg-1")]);
        assert_eq!(extra, [r("tcp", 3306, "0.0.0.0/0")]);
    }
}
