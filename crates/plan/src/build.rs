//! The builder every section compiles into: steps with edges derived from their inputs, and the
//! WeightsAndBiases values with their bindings to other steps' outputs.

use crate::ids::{self, Input};
use crate::kinds::{Binding, IamRole, StepKind, StepPlan, WandbResource};
use crate::resolve::Resolved;
use serde_json::{Map, Value};

/// Merges `overlay` into `base`: maps merge recursively, anything else replaces.
pub fn deep_merge(base: &mut Value, overlay: &Value) {
    match (base, overlay) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                deep_merge(b.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (b, o) => *b = o.clone(),
    }
}

/// Sets the value at a JSON pointer, making the maps on the way.
pub(crate) fn set(values: &mut Value, pointer: &str, v: Value) {
    let mut cur = values;
    // JSON Pointer escapes (RFC 6901): `~1` is a `/` inside a key, `~0` a `~`.
    let parts: Vec<String> = pointer
        .trim_start_matches('/')
        .split('/')
        .map(|p| p.replace("~1", "/").replace("~0", "~"))
        .collect();
    for (i, p) in parts.iter().enumerate() {
        if !cur.is_object() {
            *cur = Value::Object(Map::new());
        }
        let m = cur.as_object_mut().expect("made an object");
        if i == parts.len() - 1 {
            m.insert(p.clone(), v);
            return;
        }
        cur = m
            .entry(p.clone())
            .or_insert_with(|| Value::Object(Map::new()));
    }
}

/// What `render` shows for a value known only once another step is ready.
pub(crate) fn placeholder(i: Input) -> String {
    format!("<{}: {}>", i.step, i.output)
}

/// Collects the steps of a plan, in order, and the resource's values.
pub(crate) struct Builder<'a> {
    r: &'a Resolved<'a>,
    steps: Vec<StepPlan>,
    values: Value,
    bindings: Vec<Binding>,
    needs: Vec<Input>,
    /// The IAM role of W&B's service accounts, and the output that names it (IRSA).
    role: Option<(IamRole, Input)>,
}

impl<'a> Builder<'a> {
    pub fn new(r: &'a Resolved<'a>) -> Self {
        Builder {
            r,
            steps: Vec::new(),
            values: Value::Object(Map::new()),
            bindings: Vec::new(),
            needs: Vec::new(),
            role: None,
        }
    }

    /// Adds a step; its dependencies are the steps its inputs name.
    pub fn step(&mut self, id: &'static str, kind: impl Into<StepKind>) {
        let kind = kind.into();
        let mut deps: Vec<String> = Vec::new();
        for i in kind.inputs() {
            if !deps.iter().any(|d| d == i.step) {
                deps.push(i.step.to_owned());
            }
        }
        self.steps.push(StepPlan {
            id: id.to_owned(),
            deps,
            kind,
            timeout_seconds: self.r.timeout(id),
        });
    }

    /// The payload of a step already added, if there is one.
    pub fn planned(&self, id: &str) -> Option<&StepKind> {
        self.steps.iter().find(|s| s.id == id).map(|s| &s.kind)
    }

    /// Sets a value of the resource.
    pub fn set(&mut self, pointer: &str, v: Value) {
        set(&mut self.values, pointer, v);
    }

    /// Fills a value of the resource from another step's output once it is ready.
    pub fn bind(&mut self, pointer: &str, input: Input) {
        self.bindings.push(Binding {
            pointer: pointer.to_owned(),
            input,
        });
    }

    /// Makes the resource wait for another step.
    pub fn need(&mut self, input: Input) {
        self.needs.push(input);
    }

    /// Makes an IAM role for W&B's service accounts: `finish` names in it the accounts of
    /// every service the final values install, and annotates them with its ARN.
    pub fn service_role(&mut self, role: IamRole, arn: Input) {
        self.role = Some((role, arn));
    }

    /// The role's step, placed after the step it depends on, and the W&B service accounts'
    /// annotations.
    fn place_role(&mut self) {
        let Some((mut role, arn)) = self.role.take() else {
            return;
        };
        let chart = wbstack_chart::operator_wandb();
        let release = self.r.spec.wandb.name.clone();
        let mut bound = Vec::new();
        for c in chart.installed(&self.values) {
            if let Some(sa) = c.service_account(&release, &self.values) {
                role.service_accounts.push(format!("{}:{sa}", self.r.ns));
                bound.push(c.name.clone());
            }
        }
        role.service_accounts.sort();
        role.service_accounts.dedup();
        for name in bound {
            let key = crate::sections::ROLE_ANNOTATION.replace('/', "~1");
            let pointer = format!("/{name}/serviceAccount/annotations/{key}");
            self.set(&pointer, Value::String(placeholder(arn)));
            self.bind(&pointer, arn);
        }
        let at = self
            .steps
            .iter()
            .position(|s| s.id == ids::KMS)
            .map_or(0, |i| i + 1);
        self.step(ids::IAM_ROLE, role);
        let step = self.steps.pop().expect("just added");
        self.steps.insert(at, step);
    }

    /// An ElastiCache group's AUTH rotation ends after W&B runs with the new token.
    fn commit_rotations(&mut self) {
        let group = self.steps.iter().find_map(|s| match &s.kind {
            StepKind::RedisCache(c) => Some(c.id.clone()),
            _ => None,
        });
        if let Some(group) = group {
            self.step(
                ids::REDIS_AUTH_COMMIT,
                crate::kinds::RedisAuthCommit {
                    group,
                    auth: Input::new(ids::REDIS_AUTH, crate::ids::outputs::SECRET),
                    cache: Input::new(ids::REDIS, crate::ids::outputs::AUTH),
                    after: Input::new(ids::WANDB, crate::ids::outputs::HOST),
                },
            );
        }
    }

    /// The steps, ending with the WeightsAndBiases resource (the plan's own values merged last).
    pub fn finish(mut self) -> Vec<StepPlan> {
        let s = self.r.spec;
        if s.wandb.values.is_object() {
            deep_merge(&mut self.values, &s.wandb.values);
        }
        crate::digests::chart_digests(self.r.plan, &mut self.values);
        self.place_role();
        let resource = WandbResource {
            namespace: self.r.ns.clone(),
            name: s.wandb.name.clone(),
            chart: crate::sections::chart(self.r),
            crd: Input::new(ids::WANDB_CRD, crate::ids::outputs::STORAGE),
            stuck_seconds: s.timeouts.stuck_seconds,
            values: std::mem::take(&mut self.values),
            bindings: std::mem::take(&mut self.bindings),
            needs: std::mem::take(&mut self.needs),
        };
        self.step(ids::WANDB, resource);
        if let Some(np) = crate::sections::network_policies(self.r, &self.steps) {
            self.step(ids::NETWORK_POLICIES, np);
        }
        self.commit_rotations();
        if s.wandb.wait_for_url {
            self.step(
                ids::WANDB_URL,
                crate::kinds::UrlReady {
                    url: s.wandb.host.clone(),
                    after: Input::new(ids::WANDB, crate::ids::outputs::HOST),
                },
            );
        }
        self.steps
    }
}
