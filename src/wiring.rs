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

/// The step implementation of a compiled step.
fn step_for(
    sp: &StepPlan,
    kube: &Kube,
    aws: Option<&wbstack_aws::Aws>,
    license: &Option<Secret>,
) -> Result<Arc<dyn Step>, Failure> {
    let need_aws = || {
        aws.cloned().ok_or_else(|| {
            Failure::new(
                REFUSED,
                format!("step {} needs AWS, which is not configured", sp.id),
            )
        })
    };
    Ok(match &sp.kind {
        StepKind::Namespace { name } => Arc::new(NamespaceStep {
            kube: kube.clone(),
            name: name.clone(),
        }),
        StepKind::LicenseSecret {
            namespace,
            name,
            key,
            ..
        } => {
            let value = license
                .clone()
                .ok_or_else(|| Failure::new(crate::exit::INVALID, "the license is missing"))?;
            Arc::new(ValueSecretStep {
                kube: kube.clone(),
                namespace: namespace.clone(),
                name: name.clone(),
                key: key.clone(),
                value: ValueSource::Known(value),
            })
        }
        StepKind::GeneratedSecret {
            namespace,
            name,
            key,
            length,
        } => Arc::new(GeneratedSecretStep {
            kube: kube.clone(),
            namespace: namespace.clone(),
            name: name.clone(),
            key: key.clone(),
            length: *length,
        }),
        StepKind::Operator {
            namespace,
            version,
            install,
        } => Arc::new(OperatorStep {
            kube: kube.clone(),
            namespace: namespace.clone(),
            version: version.clone(),
            install: *install,
        }),
        StepKind::ClickhouseBundled(spec) => Arc::new(ClickhouseBundledStep {
            kube: kube.clone(),
            spec: spec.clone(),
        }),
        StepKind::ClickhouseAltinity(spec) => Arc::new(ClickhouseAltinityStep {
            kube: kube.clone(),
            spec: spec.clone(),
        }),
        StepKind::WandbResource {
            namespace,
            name,
            values,
            bindings,
        } => Arc::new(WandbStep {
            kube: kube.clone(),
            namespace: namespace.clone(),
            name: name.clone(),
            values: values.clone(),
            bindings: bindings.clone(),
        }),
        StepKind::KmsKey {
            alias,
            deletion_window_days,
        } => Arc::new(wbstack_aws::KmsKeyStep {
            aws: need_aws()?,
            step: sp.id.clone(),
            alias: alias.clone(),
            deletion_window_days: *deletion_window_days,
        }),
        StepKind::S3Bucket {
            name,
            versioning,
            kms_key_arn,
        } => Arc::new(wbstack_aws::S3BucketStep {
            aws: need_aws()?,
            step: sp.id.clone(),
            name: name.clone(),
            versioning: *versioning,
            kms_key_arn: kms_key_arn.clone(),
            kms_step: Some("aws.kms".into()),
        }),
        StepKind::AwsSecret {
            name,
            recovery_days,
            alphabet,
            length,
        } => Arc::new(wbstack_aws::AwsSecretStep {
            aws: need_aws()?,
            step: sp.id.clone(),
            name: name.clone(),
            recovery_days: *recovery_days,
            alphabet: alphabet.clone(),
            length: *length,
        }),
        StepKind::MirroredSecret {
            namespace,
            name,
            key,
            from_step,
            output,
        } => Arc::new(ValueSecretStep {
            kube: kube.clone(),
            namespace: namespace.clone(),
            name: name.clone(),
            key: key.clone(),
            value: ValueSource::FromStep {
                step: from_step.clone(),
                output: output.clone(),
                resolver: Arc::new(AwsResolver(need_aws()?)),
            },
        }),
        StepKind::DbSubnetGroup { name, subnet_ids } => Arc::new(wbstack_aws::DbSubnetGroupStep {
            aws: need_aws()?,
            step: sp.id.clone(),
            name: name.clone(),
            subnet_ids: subnet_ids.clone(),
        }),
        StepKind::DbParameterGroups { name, aurora } => {
            Arc::new(wbstack_aws::DbParameterGroupsStep {
                aws: need_aws()?,
                step: sp.id.clone(),
                name: name.clone(),
                aurora: *aurora,
            })
        }
        StepKind::MysqlDatabase {
            identifier,
            aurora,
            instances,
            instance_class,
            engine_version,
            database,
            user,
            storage_gb,
            backup_retention_days,
            deletion_protection,
            final_snapshot,
            security_group_ids,
        } => Arc::new(wbstack_aws::MysqlDatabaseStep {
            aws: need_aws()?,
            step: sp.id.clone(),
            identifier: identifier.clone(),
            aurora: *aurora,
            instances: *instances,
            instance_class: instance_class.clone(),
            engine_version: engine_version.clone(),
            database: database.clone(),
            user: user.clone(),
            storage_gb: *storage_gb,
            backup_retention_days: *backup_retention_days,
            deletion_protection: *deletion_protection,
            final_snapshot: *final_snapshot,
            security_group_ids: security_group_ids.clone(),
            kms_step: "aws.kms".into(),
            subnets_step: "aws.db-subnets".into(),
            params_step: "aws.db-params".into(),
            password_step: "aws.db-password".into(),
        }),
        StepKind::CacheSubnetGroup { name, subnet_ids } => {
            Arc::new(wbstack_aws::CacheSubnetGroupStep {
                aws: need_aws()?,
                step: sp.id.clone(),
                name: name.clone(),
                subnet_ids: subnet_ids.clone(),
            })
        }
        StepKind::RedisCache {
            id,
            node_type,
            nodes,
            multi_az,
            security_group_ids,
        } => Arc::new(wbstack_aws::RedisCacheStep {
            aws: need_aws()?,
            step: sp.id.clone(),
            id: id.clone(),
            node_type: node_type.clone(),
            nodes: *nodes,
            multi_az: *multi_az,
            security_group_ids: security_group_ids.clone(),
            kms_step: "aws.kms".into(),
            subnets_step: "aws.cache-subnets".into(),
            auth_step: "aws.redis-auth".into(),
        }),
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
