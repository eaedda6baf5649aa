//! A database or cache step that also wears the security group wbstack makes for it
//! (`spec.aws.securityGroup`), whose id is known only once that group's step has run: the step
//! is built again with the group's id among its `security_group_ids` the first time the id is
//! there, and that one step is used from then on (its state across calls kept).

use crate::clients::Aws;
use async_trait::async_trait;
use std::sync::{Arc, OnceLock};
use wbstack_engine::{Action, Change, Fingerprint, Observation, Outputs, Step, StepCtx, StepError};
use wbstack_plan::Input;

type Make = Box<dyn Fn(&str) -> Arc<dyn Step> + Send + Sync>;

/// Builds a step from its payload, with the group's id among its groups when one is given.
type Build<S> = fn(Aws, &str, S, Option<&str>) -> Arc<dyn Step>;

/// Step `id` of payload `spec`, wearing the group `group` names once it is known.
pub(crate) fn wearing<S: Clone + Send + Sync + 'static>(
    aws: Aws,
    id: &str,
    spec: &S,
    group: Option<Input>,
    build: Build<S>,
) -> Arc<dyn Step> {
    let base = build(aws.clone(), id, spec.clone(), None);
    let (spec, step) = (spec.clone(), id.to_owned());
    WithGroup::wrap(
        base,
        group,
        Box::new(move |g| build(aws.clone(), &step, spec.clone(), Some(g))),
    )
}

pub(crate) struct WithGroup {
    /// The step as the plan alone has it (before the group exists: `plan`'s preview).
    base: Arc<dyn Step>,
    group: Input,
    make: Make,
    resolved: OnceLock<Arc<dyn Step>>,
}

impl WithGroup {
    /// `make(id)`: the step with group `id` added to its groups.
    fn wrap(base: Arc<dyn Step>, group: Option<Input>, make: Make) -> Arc<dyn Step> {
        match group {
            None => base,
            Some(group) => Arc::new(WithGroup {
                base,
                group,
                make,
                resolved: OnceLock::new(),
            }),
        }
    }

    fn inner(&self, ctx: &StepCtx) -> Arc<dyn Step> {
        if let Some(s) = self.resolved.get() {
            return s.clone();
        }
        match ctx.dep_str(self.group.step, self.group.output) {
            Some(id) => self.resolved.get_or_init(|| (self.make)(id)).clone(),
            None => self.base.clone(),
        }
    }
}

#[async_trait]
impl Step for WithGroup {
    fn kind(&self) -> &str {
        self.base.kind()
    }
    fn fingerprint(&self) -> Fingerprint {
        self.base.fingerprint()
    }
    async fn marked(&self, ctx: &StepCtx) -> Result<bool, StepError> {
        self.inner(ctx).marked(ctx).await
    }
    async fn unnamed(&self, ctx: &StepCtx) -> Result<Option<Outputs>, StepError> {
        self.inner(ctx).unnamed(ctx).await
    }
    fn shared(&self) -> bool {
        self.base.shared()
    }
    fn supports_update(&self) -> bool {
        self.base.supports_update()
    }
    async fn changes(&self, ctx: &StepCtx) -> Result<Vec<Change>, StepError> {
        self.inner(ctx).changes(ctx).await
    }
    async fn observe(&self, ctx: &StepCtx) -> Result<Observation, StepError> {
        let inner = self.inner(ctx);
        let mut seen = inner.observe(ctx).await?;
        // As the plan wants it, group included: that is this step's own fingerprint (the
        // inner step's counts the group's id, which the plan does not know).
        if let Observation::Ready { fingerprint, .. } = &mut seen {
            if fingerprint.as_ref() == Some(&inner.fingerprint()) {
                *fingerprint = Some(self.base.fingerprint());
            }
        }
        Ok(seen)
    }
    async fn apply(&self, ctx: &StepCtx, action: Action) -> Result<(), StepError> {
        self.inner(ctx).apply(ctx, action).await
    }
    async fn wait(&self, ctx: &StepCtx) -> Result<Outputs, StepError> {
        self.inner(ctx).wait(ctx).await
    }
    async fn rollback(&self, ctx: &StepCtx) -> Result<(), StepError> {
        self.inner(ctx).rollback(ctx).await
    }
    async fn destroy(&self, ctx: &StepCtx) -> Result<(), StepError> {
        self.inner(ctx).destroy(ctx).await
    }
    async fn wait_destroyed(&self, ctx: &StepCtx) -> Result<(), StepError> {
        self.inner(ctx).wait_destroyed(ctx).await
    }
}
