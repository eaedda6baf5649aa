//! The sandbox's AWS as a process of its own, so that it outlives one command as the sandbox's
//! cluster does: `wbstack sandbox-aws --dir DIR` ([`serve`]) runs moto and the proxy and writes
//! where they answer to `DIR/aws.json`; commands find it there ([`ensure`] starts it when it is
//! not answering) and `down` stops it ([`stop`]). It leads its own process group, so stopping
//! it stops moto with it.

use crate::local::{answers, moto_server, Local};
use crate::SandboxError;
use serde::{Deserialize, Serialize};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What a running sandbox AWS writes in its directory.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Running {
    /// The proxy's URL: the AWS endpoint of the environment's steps.
    pub endpoint: String,
    /// The serving process, leader of the group moto runs in.
    pub pid: u32,
}

const FILE: &str = "aws.json";

/// The sandbox AWS of `dir`, if it is answering.
pub fn running(dir: &Path) -> Option<Running> {
    let text = std::fs::read_to_string(dir.join(FILE)).ok()?;
    let r: Running = serde_json::from_str(&text).ok()?;
    let port = r.endpoint.rsplit(':').next()?.parse().ok()?;
    answers(port).then_some(r)
}

/// Runs moto and the proxy until the process is stopped; writes where they answer once they do.
pub fn serve(dir: &Path) -> Result<(), SandboxError> {
    let local = Local::start(&moto_server()?)?;
    let r = Running {
        endpoint: local.url.clone(),
        pid: std::process::id(),
    };
    let text = serde_json::to_string(&r).expect("two plain fields serialize");
    let tmp = dir.join(format!("{FILE}.tmp"));
    std::fs::write(&tmp, text)
        .and_then(|_| std::fs::rename(&tmp, dir.join(FILE)))
        .map_err(SandboxError::io(format!(
            "cannot write {}",
            dir.join(FILE).display()
        )))?;
    loop {
        std::thread::park();
    }
}

/// The sandbox AWS of `dir`, started with `exe` (this program) when it is not answering.
pub fn ensure(dir: &Path, exe: &Path) -> Result<Running, SandboxError> {
    if let Some(r) = running(dir) {
        return Ok(r);
    }
    // Fail here, with how to get moto, rather than in the background.
    moto_server()?;
    std::fs::create_dir_all(dir)
        .map_err(SandboxError::io(format!("cannot create {}", dir.display())))?;
    let _ = std::fs::remove_file(dir.join(FILE));
    let log = std::fs::File::create(dir.join("aws.log")).map_err(SandboxError::io(format!(
        "cannot write {}",
        dir.join("aws.log").display()
    )))?;
    let err = log.try_clone().map_err(SandboxError::io("the log"))?;
    let mut child = Command::new(exe)
        .arg("sandbox-aws")
        .arg("--dir")
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err)
        .process_group(0)
        .spawn()
        .map_err(SandboxError::io(format!(
            "cannot start {} sandbox-aws",
            exe.display()
        )))?;
    let start = Instant::now();
    loop {
        if let Some(r) = running(dir) {
            return Ok(r);
        }
        if let Ok(Some(status)) = child.try_wait() {
            let said = std::fs::read_to_string(dir.join("aws.log")).unwrap_or_default();
            return Err(SandboxError::NotReady(format!(
                "the sandbox's AWS exited ({status}): {}",
                said.trim()
            )));
        }
        if start.elapsed() > Duration::from_secs(90) {
            return Err(SandboxError::NotReady(format!(
                "the sandbox's AWS did not answer within 90 s (its log: {})",
                dir.join("aws.log").display()
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Stops the sandbox AWS of `dir` (and moto with it), if one is running; its resources go with
/// it.
pub fn stop(dir: &Path) -> Result<bool, SandboxError> {
    let Ok(text) = std::fs::read_to_string(dir.join(FILE)) else {
        return Ok(false);
    };
    let _ = std::fs::remove_file(dir.join(FILE));
    let Ok(r) = serde_json::from_str::<Running>(&text) else {
        return Ok(false);
    };
    let Some(pid) = rustix::process::Pid::from_raw(r.pid as i32) else {
        return Ok(false);
    };
    // Gone already (a reboot): nothing to stop.
    Ok(rustix::process::kill_process_group(pid, rustix::process::Signal::TERM).is_ok())
}
