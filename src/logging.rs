//! Diagnostic logs on stderr: off by default, `-v` for wbstack's debug lines (every AWS and
//! Kubernetes call, every engine event), `-vv` adds trace lines (journal appends, each HTTP
//! attempt), `-vvv` turns on trace for every library too; `WBSTACK_LOG` takes a full filter
//! (`wbstack_aws=trace,aws_smithy_runtime=debug`). Every line passes through the secret
//! redactor before it is written, whatever its source.

use std::io::{IsTerminal, Write};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

const OURS: [&str; 5] = [
    "wbstack",
    "wbstack_engine",
    "wbstack_k8s",
    "wbstack_aws",
    "wbstack_plan",
];

/// The filter for a verbosity, when `WBSTACK_LOG` does not say.
fn directives(verbose: u8) -> String {
    let (ours, others) = match verbose {
        0 => ("warn", "off"),
        1 => ("debug", "warn"),
        2 => ("trace", "info"),
        _ => ("trace", "trace"),
    };
    let mut d = vec![others.to_owned()];
    d.extend(OURS.iter().map(|c| format!("{c}={ours}")));
    d.join(",")
}

static ACTIVE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether diagnostic lines beyond warnings may appear (progress bars then give way to plain
/// lines, which interleave with them cleanly).
pub fn active() -> bool {
    ACTIVE.load(std::sync::atomic::Ordering::Relaxed)
}

/// Installs the logger, or names what is wrong with `WBSTACK_LOG`.
pub fn init(verbose: u8) -> Result<(), String> {
    let from_env = std::env::var("WBSTACK_LOG").ok().filter(|v| !v.is_empty());
    let filter = match &from_env {
        Some(v) => EnvFilter::try_new(v).map_err(|e| format!("WBSTACK_LOG={v:?}: {e}"))?,
        None => EnvFilter::new(directives(verbose)),
    };
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(Redacting)
        .with_ansi(ansi)
        .try_init();
    ACTIVE.store(
        verbose > 0 || from_env.is_some(),
        std::sync::atomic::Ordering::Relaxed,
    );
    Ok(())
}

/// Hands out one buffer per log line; the line is redacted and written when it is dropped.
#[derive(Clone, Copy, Debug)]
struct Redacting;

struct Line(Vec<u8>);

impl Write for Line {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Line {
    /// Writes the whole line, redacted, to `out`.
    fn finish(&mut self, out: &mut dyn Write) {
        if self.0.is_empty() {
            return;
        }
        let text = wbstack_engine::redact(&String::from_utf8_lossy(&self.0));
        let _ = out.write_all(text.as_bytes());
        self.0.clear();
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        self.finish(&mut std::io::stderr().lock());
    }
}

impl<'a> MakeWriter<'a> for Redacting {
    type Writer = Line;

    fn make_writer(&'a self) -> Line {
        Line(Vec::with_capacity(256))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbosity_widens_the_filter_step_by_step() {
        assert!(directives(0).starts_with("off,wbstack=warn"));
        assert!(directives(1).starts_with("warn,wbstack=debug"));
        assert!(directives(1).contains("wbstack_aws=debug"));
        assert!(directives(2).starts_with("info,wbstack=trace"));
        assert!(directives(3).starts_with("trace,"));
        for v in 0..4 {
            EnvFilter::try_new(directives(v)).unwrap();
        }
    }

    #[test]
    fn a_log_line_is_redacted_as_a_whole() {
        let _s = wbstack_engine::Secret::new(
            wbstack_engine::SecretRef::new("test", "x"),
            "zq8-very-secret-token",
        );
        let mut line = Line(Vec::new());
        // Written in pieces that split the secret, as a formatter may.
        line.write_all(b"token=zq8-very-").unwrap();
        line.write_all(b"secret-token done").unwrap();
        let mut out = Vec::new();
        line.finish(&mut out);
        assert_eq!(String::from_utf8(out).unwrap(), "token=*** done");
    }
}
