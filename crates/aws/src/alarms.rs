//! The environment's CloudWatch alarms (`aws.alarms`): every alarm named with the environment's
//! prefix is the plan's, as the plan wants it, or removed. Judged by the live alarms, field by
//! field, so an alarm edited or deleted by hand is seen and put back.

use crate::clients::{answered, classify, Aws};
use crate::kind::{AwsStepKind, Grants};
use crate::own::{accepted, not_owned, outputs, tags, Tolerate};
use async_trait::async_trait;
use aws_sdk_cloudwatch::types::{ComparisonOperator, Dimension, MetricAlarm, Statistic, Tag};
use serde_json::json;
use std::sync::Arc;
use wbstack_engine::{Action, Change, Fingerprint, Observation, Step, StepCtx, StepError};
use wbstack_plan::{Alarm, CloudwatchAlarms, Kind};

/// The alarms of the environment.
pub struct CloudwatchAlarmsStep {
    aws: Aws,
    step: String,
    spec: CloudwatchAlarms,
}

/// An alarm as the plan and CloudWatch both describe it, for comparing.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
struct Shape {
    name: String,
    description: String,
    namespace: String,
    metric: String,
    dimensions: Vec<(String, String)>,
    statistic: String,
    comparison: String,
    threshold: f64,
    period_seconds: i32,
    evaluation_periods: i32,
    actions: Vec<String>,
}

fn planned(a: &Alarm, actions: &[String]) -> Shape {
    let mut dimensions = a.dimensions.clone();
    dimensions.sort();
    let mut actions = actions.to_vec();
    actions.sort();
    Shape {
        name: a.name.clone(),
        description: a.description.clone(),
        namespace: a.namespace.clone(),
        metric: a.metric.clone(),
        dimensions,
        statistic: a.statistic.clone(),
        comparison: a.comparison.clone(),
        threshold: a.threshold,
        period_seconds: a.period_seconds,
        evaluation_periods: a.evaluation_periods,
        actions,
    }
}

fn live(m: &MetricAlarm) -> Shape {
    // A field CloudWatch leaves out is compared as empty: it differs from the plan's.
    let text = |s: Option<&str>| s.unwrap_or_default().to_owned();
    let mut dimensions: Vec<(String, String)> = m
        .dimensions()
        .iter()
        .map(|d| (text(d.name()), text(d.value())))
        .collect();
    dimensions.sort();
    let mut actions = m.alarm_actions().to_vec();
    actions.sort();
    Shape {
        name: text(m.alarm_name()),
        description: text(m.alarm_description()),
        namespace: text(m.namespace()),
        metric: text(m.metric_name()),
        dimensions,
        statistic: m
            .statistic()
            .map(|s| s.as_str().to_owned())
            .unwrap_or_default(),
        comparison: m
            .comparison_operator()
            .map(|c| c.as_str().to_owned())
            .unwrap_or_default(),
        // An alarm without a threshold or period is not one of ours: it differs.
        threshold: m.threshold().unwrap_or(f64::NAN),
        period_seconds: m.period().unwrap_or_default(),
        evaluation_periods: m.evaluation_periods().unwrap_or_default(),
        actions,
    }
}

impl CloudwatchAlarmsStep {
    pub fn new(aws: Aws, step: &str, spec: CloudwatchAlarms) -> Self {
        CloudwatchAlarmsStep {
            aws,
            step: step.to_owned(),
            spec,
        }
    }

    fn wanted(&self) -> Vec<Shape> {
        let mut w: Vec<Shape> = self
            .spec
            .alarms
            .iter()
            .map(|a| planned(a, &self.spec.actions))
            .collect();
        w.sort_by(|a, b| a.name.cmp(&b.name));
        w
    }

    /// Every alarm named with the environment's prefix, by name.
    async fn found(&self) -> Result<Vec<MetricAlarm>, StepError> {
        let mut out = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .aws
                .cloudwatch
                .describe_alarms()
                .alarm_name_prefix(&self.spec.prefix)
                .set_next_token(token)
                .send()
                .await
                .map_err(|e| classify(e, "DescribeAlarms", &self.spec.prefix))?;
            out.extend(page.metric_alarms().iter().cloned());
            token = page.next_token().map(str::to_owned);
            if token.is_none() {
                break;
            }
        }
        out.sort_by(|a, b| a.alarm_name().cmp(&b.alarm_name()));
        Ok(out)
    }

    async fn tags_of(&self, arn: &str) -> Result<Vec<(String, String)>, StepError> {
        let t = self
            .aws
            .cloudwatch
            .list_tags_for_resource()
            .resource_arn(arn)
            .send()
            .await
            .map_err(|e| classify(e, "ListTagsForResource", arn))?;
        // A tag without a key or value matches none of wbstack's: the alarm is not ours.
        Ok(t.tags()
            .iter()
            .map(|t| {
                (
                    t.key().unwrap_or_default().to_owned(),
                    t.value().unwrap_or_default().to_owned(),
                )
            })
            .collect())
    }

    /// A found alarm's name and ARN.
    fn named<'m>(&self, m: &'m MetricAlarm) -> Result<(&'m str, &'m str), StepError> {
        let name = answered(
            m.alarm_name(),
            "DescribeAlarms",
            "AlarmName",
            &self.spec.prefix,
        )?;
        let arn = answered(m.alarm_arn(), "DescribeAlarms", "AlarmArn", name)?;
        Ok((name, arn))
    }

    /// The first found alarm that is not this environment's, if any.
    async fn foreign(&self, found: &[MetricAlarm]) -> Result<Option<String>, StepError> {
        for m in found {
            let (name, arn) = self.named(m)?;
            if !accepted(&self.aws, &self.step, || self.tags_of(arn)).await? {
                return Ok(Some(name.to_owned()));
            }
        }
        Ok(None)
    }

    /// What differs between the live alarms and the plan's, alarm by alarm.
    fn against_plan(&self, found: &[MetricAlarm]) -> Vec<Change> {
        let live: Vec<Shape> = found.iter().map(live).collect();
        let wanted = self.wanted();
        let mut out = Vec::new();
        for w in &wanted {
            match live.iter().find(|l| l.name == w.name) {
                None => out.push(Change::in_place(&w.name, "(none)", &w.description)),
                Some(l) if l != w => out.push(Change::in_place(&w.name, describe(l), describe(w))),
                Some(_) => {}
            }
        }
        for l in live
            .iter()
            .filter(|l| !wanted.iter().any(|w| w.name == l.name))
        {
            out.push(Change::in_place(&l.name, describe(l), "(none)"));
        }
        out
    }

    async fn put(&self, a: &Alarm) -> Result<(), StepError> {
        let dims = a
            .dimensions
            .iter()
            .map(|(k, v)| Dimension::builder().name(k).value(v).build())
            .collect();
        let tag = |k: String, v: String| Tag::builder().key(k).value(v).build();
        self.aws
            .cloudwatch
            .put_metric_alarm()
            .alarm_name(&a.name)
            .alarm_description(&a.description)
            .namespace(&a.namespace)
            .metric_name(&a.metric)
            .set_dimensions(Some(dims))
            .statistic(Statistic::from(a.statistic.as_str()))
            .comparison_operator(ComparisonOperator::from(a.comparison.as_str()))
            .threshold(a.threshold)
            .period(a.period_seconds)
            .evaluation_periods(a.evaluation_periods)
            .treat_missing_data("missing")
            .actions_enabled(!self.spec.actions.is_empty())
            .set_alarm_actions(Some(self.spec.actions.clone()))
            .set_ok_actions(Some(self.spec.actions.clone()))
            .set_tags(Some(tags(&self.aws, &self.step, tag)))
            .send()
            .await
            .map_err(|e| classify(e, "PutMetricAlarm", &a.name))?;
        Ok(())
    }

    async fn delete(&self, names: Vec<String>) -> Result<(), StepError> {
        // DeleteAlarms takes at most 100 names.
        for batch in names.chunks(100) {
            self.aws
                .cloudwatch
                .delete_alarms()
                .set_alarm_names(Some(batch.to_vec()))
                .send()
                .await
                .tolerate(&["ResourceNotFound"], "DeleteAlarms", &batch.join(", "))?;
        }
        Ok(())
    }
}

/// An alarm in a few words, for `plan` and the report.
fn describe(s: &Shape) -> String {
    format!(
        "{} {} {} {} over {}x{}s",
        s.metric, s.statistic, s.comparison, s.threshold, s.evaluation_periods, s.period_seconds
    )
}

#[async_trait]
impl Step for CloudwatchAlarmsStep {
    fn kind(&self) -> &str {
        CloudwatchAlarms::LABEL
    }
    async fn marked(&self, _ctx: &StepCtx) -> Result<bool, StepError> {
        Ok(!self.aws.adopts(&self.step))
    }
    fn supports_update(&self) -> bool {
        true
    }
    fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(&("alarms", &self.spec.prefix, self.wanted()))
    }
    async fn changes(&self, _ctx: &StepCtx) -> Result<Vec<Change>, StepError> {
        Ok(self.against_plan(&self.found().await?))
    }
    async fn observe(&self, ctx: &StepCtx) -> Result<Observation, StepError> {
        let found = self.found().await?;
        if found.is_empty() {
            return Ok(Observation::Absent);
        }
        if !ctx.attempted() {
            if let Some(name) = self.foreign(&found).await? {
                return Ok(not_owned("CloudWatch alarm", &name, &self.aws));
            }
        }
        let changes = self.against_plan(&found);
        Ok(Observation::Ready {
            outputs: outputs(&[
                ("prefix", json!(self.spec.prefix)),
                ("alarms", json!(found.len())),
            ]),
            fingerprint: Some(if changes.is_empty() {
                self.fingerprint()
            } else {
                Fingerprint::of(&("alarms-live", &changes))
            }),
        })
    }
    async fn apply(&self, _ctx: &StepCtx, _a: Action) -> Result<(), StepError> {
        let found = self.found().await?;
        let wanted = self.wanted();
        for a in &self.spec.alarms {
            let live = found
                .iter()
                .find(|m| m.alarm_name() == Some(a.name.as_str()));
            if live.map(self::live) != Some(planned(a, &self.spec.actions)) {
                self.put(a).await?;
            }
        }
        let extra: Vec<String> = found
            .iter()
            .filter_map(|m| m.alarm_name())
            .filter(|n| !wanted.iter().any(|w| w.name == *n))
            .map(str::to_owned)
            .collect();
        if !extra.is_empty() {
            self.delete(extra).await?;
        }
        Ok(())
    }
    async fn destroy(&self, _ctx: &StepCtx) -> Result<(), StepError> {
        let mut ours = Vec::new();
        for m in self.found().await? {
            let (name, arn) = self.named(&m)?;
            if self.aws.owns(&self.step, &self.tags_of(arn).await?) {
                ours.push(name.to_owned());
            }
        }
        self.delete(ours).await
    }
}

impl AwsStepKind for CloudwatchAlarms {
    fn step(&self, aws: Aws, id: &str) -> Arc<dyn Step> {
        Arc::new(CloudwatchAlarmsStep::new(aws, id, self.clone()))
    }
    fn grants(&self, _env: &str) -> Grants {
        Grants::only(vec![crate::policy::statement(
            "Alarms",
            &[
                "cloudwatch:PutMetricAlarm",
                "cloudwatch:DeleteAlarms",
                "cloudwatch:DescribeAlarms",
                "cloudwatch:ListTagsForResource",
                "cloudwatch:TagResource",
            ],
            vec![format!("arn:aws:cloudwatch:*:*:alarm:{}*", self.prefix)],
        )])
    }
}
