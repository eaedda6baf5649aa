//! Compiles a validated plan into steps with explicit dependencies, and renders the
//! WeightsAndBiases values (static parts, plus bindings to other steps' outputs).

use crate::build::Builder;
use crate::kinds::StepPlan;
use crate::model::Plan;
use crate::resolve::Resolved;

/// Names of the Secrets wbstack manages.
pub mod names {
    pub const LICENSE: &str = "wbstack-license";
    pub const LICENSE_KEY: &str = "license";
    pub const MYSQL: &str = "wbstack-mysql";
    pub const MYSQL_KEY: &str = "MYSQL_PASSWORD";
    pub const REDIS: &str = "wbstack-redis";
    pub const REDIS_KEY: &str = "REDIS_PASSWORD";
    pub const CLICKHOUSE: &str = "wbstack-clickhouse";
    pub const CLICKHOUSE_KEY: &str = "CLICKHOUSE_PASSWORD";
    pub const WEAVE_WORKER: &str = "weave-worker-auth";
    pub const WEAVE_WORKER_KEY: &str = "key";
}

/// The steps of a plan, in a stable order (dependencies first).
pub fn compile(p: &Plan) -> Vec<StepPlan> {
    let r = Resolved::new(p);
    let mut b = Builder::new(&r);
    crate::sections::compile(&mut b, &r);
    b.finish()
}
