//! Every AWS call in the logs: service, operation, HTTP status and duration at debug level; each
//! attempt's method and path at trace level. Parameters and bodies are never logged (they carry
//! passwords and tokens).

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeSerializationInterceptorContextRef, FinalizerInterceptorContextRef,
};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};
use std::time::Instant;

/// The interceptor installed on every client.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct CallLog;

#[derive(Debug, Clone)]
struct Started(Instant);

impl Storable for Started {
    type Storer = StoreReplace<Self>;
}

/// The service and operation of a call, for the call log (diagnostics only): a call without
/// the SDK's metadata is logged with empty names.
fn names(cfg: &ConfigBag) -> (String, String) {
    cfg.load::<Metadata>()
        .map(|m| (m.service().to_owned(), m.name().to_owned()))
        .unwrap_or_default()
}

impl Intercept for CallLog {
    fn name(&self) -> &'static str {
        "wbstack-call-log"
    }

    fn read_before_execution(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        cfg.interceptor_state().store_put(Started(Instant::now()));
        Ok(())
    }

    fn read_after_attempt(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if tracing::enabled!(target: "wbstack_aws::calls", tracing::Level::TRACE) {
            let (service, operation) = names(cfg);
            let status = context.response().map(|r| r.status().as_u16());
            if let Some(req) = context.request() {
                // The path only: query strings of presigned or query-protocol calls stay out.
                let uri = req.uri();
                let path = uri.split('?').next().unwrap_or(uri);
                tracing::trace!(target: "wbstack_aws::calls", %service, %operation, method = req.method(), path, ?status, "attempt");
            }
        }
        Ok(())
    }

    fn read_after_execution(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let (service, operation) = names(cfg);
        let ms = cfg
            .load::<Started>()
            .map(|s| s.0.elapsed().as_millis() as u64)
            .unwrap_or(0);
        let status = context.response().map(|r| r.status().as_u16());
        let outcome = match context.output_or_error() {
            Some(Ok(_)) => "ok",
            Some(Err(_)) => "error",
            None => "no answer",
        };
        tracing::debug!(target: "wbstack_aws::calls", %service, %operation, ?status, ms, outcome, "aws call");
        Ok(())
    }
}
