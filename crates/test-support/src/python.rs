//! Python tools from PyPI for a test (validators, ClickHouse engines): each in its own virtual
//! environment under the target directory, installed on first use at a pinned version.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The `bin` directory of a virtual environment holding `requirements`, made once.
pub fn venv(name: &str, requirements: &[&str]) -> PathBuf {
    let root = crate::paths::target_tmp();
    let dir = root.join(format!("{name}-venv"));
    let done = dir.join(".installed");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(root.join(format!("{name}-venv.lock")))
        .unwrap();
    lock.lock().unwrap();
    // Made for other requirements (a pin moved): made again.
    let made_for = std::fs::read_to_string(&done).ok();
    if made_for.as_deref() != Some(requirements.join("\n").as_str()) {
        let _ = std::fs::remove_dir_all(&dir);
        let ok = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&dir)
            .status()
            .unwrap()
            .success();
        assert!(ok, "python3 -m venv {} failed", dir.display());
        let ok = Command::new(dir.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check"])
            .args(requirements)
            .status()
            .unwrap()
            .success();
        assert!(ok, "pip install {requirements:?} failed");
        std::fs::write(&done, requirements.join("\n")).unwrap();
    }
    lock.unlock().unwrap();
    dir.join("bin")
}

/// The script of this repository's test support.
pub fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("python")
        .join(name)
}

/// Runs `script` in the environment `bin` with `input` as JSON on stdin; returns its stdout and
/// stderr.
pub fn run(bin: &Path, script_name: &str, input: &serde_json::Value) -> (String, String) {
    let mut child = Command::new(bin.join("python"))
        .arg(script(script_name))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.to_string().as_bytes()).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
