//! AWS endpoints (`WBSTACK_AWS_ENDPOINT`, `spec.aws.endpoint`) are HTTPS, or plain HTTP only on
//! this machine (moto, LocalStack on loopback): credentials and state would otherwise cross a
//! network in clear. `--insecure-endpoint` allows it explicitly.

use crate::exit::CliError;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};

static ALLOWED: AtomicBool = AtomicBool::new(false);

/// Allows plain HTTP to any endpoint for this process (`--insecure-endpoint`).
pub fn allow_insecure(yes: bool) {
    ALLOWED.store(yes, Ordering::Relaxed);
}

/// Why `url` may not be used, if it may not: plain HTTP to a host that is not this machine.
pub fn problem(url: &str) -> Option<String> {
    let rest = url.strip_prefix("http://")?;
    if ALLOWED.load(Ordering::Relaxed) {
        return None;
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    let host = authority.rsplit('@').next().unwrap_or(authority);
    let host = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(v6),
        None => host.split(':').next().unwrap_or(host),
    };
    let loopback = host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    (!loopback).then(|| {
        format!(
            "`{url}` is plain HTTP to another machine: credentials and state would cross the network in clear; use https://, or pass --insecure-endpoint"
        )
    })
}

/// Refuses `WBSTACK_AWS_ENDPOINT` when it is plain HTTP to another machine.
pub fn check_env() -> Result<(), CliError> {
    match std::env::var("WBSTACK_AWS_ENDPOINT") {
        Ok(e) if !e.is_empty() => match problem(&e) {
            Some(why) => Err(CliError::invalid(format!(
                "error: WBSTACK_AWS_ENDPOINT: {why}"
            ))),
            None => Ok(()),
        },
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::problem;

    #[test]
    fn plain_http_is_for_this_machine_only() {
        for ok in [
            "https://s3.example.com",
            "http://127.0.0.1:5000",
            "http://localhost:4566/",
            "http://[::1]:9000",
            "http://user@127.0.0.2",
        ] {
            assert_eq!(problem(ok), None, "{ok}");
        }
        for bad in [
            "http://10.0.0.5:4566",
            "http://s3.internal",
            "http://[fd00::1]:80",
        ] {
            assert!(problem(bad).is_some(), "{bad}");
        }
    }
}
