//! Turns compiled plan steps into engine steps.

use crate::exit::{Failure, REFUSED};
use std::sync::Arc;
use std::time::Duration;
use wbstack_engine::{Graph, Hook, HookWhen, Secret, Step, StepId, StepSpec};
use wbstack_k8s::*;
use wbstack_plan::{Plan, StepKind, StepPlan};

/// Reads secrets that AWS steps keep in Secrets Manager, for the Kubernetes Secrets mirroring them.
struct AwsResolver(wbstack_aws::Aws);

#[async_trait::async_trait]
impl SecretResolver for AwsResolver {
    async fn resolve(
        &self,
        r: &wbstack_engine::SecretRef,
    ) -> Result<Secret, wbstack_engine::StepError> {
        wbstack_aws::read_secret(&self.0, r).await
    }
}

/// The step implementation of a compiled step: one line per kind.
fn step_for(
    sp: &StepPlan,
    kube: &Kube,
    aws: Option<&wbstack_aws::Aws>,
    license: &Option<Secret>,
) -> Result<Arc<dyn Step>, Failure> {
    use wbstack_aws::*;
    let aws = || {
        aws.cloned().ok_or_else(|| {
            Failure::new(
                REFUSED,
                format!("step {} needs AWS, which is not configured", sp.id),
            )
        })
    };
    let license = || {
        license
            .clone()
            .ok_or_else(|| Failure::new(crate::exit::INVALID, "the license is missing"))
    };
    let (k, id) = (kube.clone(), sp.id.as_str());
    Ok(match sp.kind.clone() {
        StepKind::Namespace(s) => Arc::new(NamespaceStep::new(k, s)),
        StepKind::LicenseSecret(s) => Arc::new(ValueSecretStep::license(k, s, license()?)),
        StepKind::GeneratedSecret(s) => Arc::new(GeneratedSecretStep::new(k, s)),
        StepKind::MirroredSecret(s) => {
            let resolver = Arc::new(AwsResolver(aws()?));
            Arc::new(ValueSecretStep::mirrored(k, s, resolver))
        }
        StepKind::Operator(s) => Arc::new(OperatorStep::new(k, s)),
        StepKind::ClickhouseBundled(s) => Arc::new(ClickhouseBundledStep::new(k, s)),
        StepKind::ClickhouseAltinity(s) => Arc::new(ClickhouseAltinityStep::new(k, s)),
        StepKind::WandbResource(s) => Arc::new(WandbStep::new(k, s)),
        StepKind::KmsKey(s) => Arc::new(KmsKeyStep::new(aws()?, id, s)),
        StepKind::S3Bucket(s) => Arc::new(S3BucketStep::new(aws()?, id, s)),
        StepKind::AwsSecret(s) => Arc::new(AwsSecretStep::new(aws()?, id, s)),
        StepKind::DbSubnetGroup(s) => Arc::new(DbSubnetGroupStep::new(aws()?, id, s)),
        StepKind::DbParameterGroups(s) => Arc::new(DbParameterGroupsStep::new(aws()?, id, s)),
        StepKind::MysqlDatabase(s) => Arc::new(MysqlDatabaseStep::new(aws()?, id, s)),
        StepKind::CacheSubnetGroup(s) => Arc::new(CacheSubnetGroupStep::new(aws()?, id, s)),
        StepKind::RedisCache(s) => Arc::new(RedisCacheStep::new(aws()?, id, s)),
    })
}

fn hook_when(s: &str) -> HookWhen {
    match s {
        "before" => HookWhen::Before,
        "after" => HookWhen::After,
        "on_rollback" => HookWhen::OnRollback,
        _ => HookWhen::OnFailure,
    }
}

/// The engine graph of a plan.
pub fn graph(
    plan: &Plan,
    steps: &[StepPlan],
    kube: &Kube,
    aws: Option<&wbstack_aws::Aws>,
    license: &Option<Secret>,
    timeout: Option<u64>,
) -> Result<Graph, Failure> {
    let mut specs = Vec::new();
    for sp in steps {
        let hooks = plan
            .spec
            .hooks
            .get(&sp.id)
            .map(|hs| {
                hs.iter()
                    .map(|h| Hook {
                        when: hook_when(&h.when),
                        name: h.command.join(" "),
                        program: h.command[0].clone(),
                        args: h.command[1..].to_vec(),
                        env: Default::default(),
                        timeout: Duration::from_secs(h.timeout_seconds),
                    })
                    .collect()
            })
            .unwrap_or_default();
        specs.push(StepSpec {
            id: StepId::new(sp.id.clone()),
            deps: sp.deps.iter().map(|d| StepId::new(d.clone())).collect(),
            step: step_for(sp, kube, aws, license)?,
            hooks,
            timeout: Some(Duration::from_secs(timeout.unwrap_or(sp.timeout_seconds))),
        });
    }
    Graph::new(specs).map_err(|e| Failure::new(crate::exit::INVALID, e.to_string()))
}

/// AWS clients, when the plan has AWS steps.
pub async fn aws_for(plan: &Plan, steps: &[StepPlan]) -> Result<Option<wbstack_aws::Aws>, Failure> {
    if !steps.iter().any(|s| s.kind.is_aws()) {
        return Ok(None);
    }
    let a = plan.spec.aws.clone().unwrap_or_default();
    let settings = wbstack_aws::AwsSettings {
        region: a.region,
        endpoint: a.endpoint,
        static_credentials: None,
    };
    wbstack_aws::Aws::connect(&settings, &plan.metadata.name)
        .await
        .map(|aws| Some(aws.adopting(a.adopt).tagging(a.tags)))
        .map_err(|e| Failure::new(crate::exit::ENVIRONMENT, e.to_string()))
}
