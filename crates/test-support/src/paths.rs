//! Where things are, found from the running test or bench executable so that this crate serves
//! every package's tests: `<target>/<profile>/deps/<test>`.

use std::path::{Path, PathBuf};

/// The workspace root (plans, scripts, the shared fixtures beside it).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the workspace root exists")
}

/// The directory of the running build profile (`<target>/debug` or `<target>/release`).
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test knows its own executable");
    let deps = exe
        .parent()
        .expect("a test executable lives in a directory");
    match deps.file_name() {
        Some(n) if n == "deps" => deps.parent().expect("deps has a parent").to_path_buf(),
        _ => deps.to_path_buf(),
    }
}

/// The built `wbstack` binary of this profile. Cargo builds it before any integration test or
/// bench of the root package; tests of other packages do not run it.
pub fn wbstack() -> PathBuf {
    if let Some(p) = std::env::var_os("CARGO_BIN_EXE_wbstack") {
        return PathBuf::from(p);
    }
    let bin = profile_dir().join("wbstack");
    assert!(
        bin.is_file(),
        "{} is not built: run the root package's tests with cargo",
        bin.display()
    );
    bin
}

/// A scratch directory under the target directory that outlives one test run (tool caches),
/// as Cargo's `CARGO_TARGET_TMPDIR` is for integration tests.
pub fn target_tmp() -> PathBuf {
    let tmp = profile_dir()
        .parent()
        .expect("a profile directory lives in the target directory")
        .join("tmp");
    std::fs::create_dir_all(&tmp).expect("the target directory is writable");
    tmp
}

/// The shipped plans.
pub fn plans() -> PathBuf {
    root().join("plans")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_workspace_root_holds_the_plans_and_scripts() {
        assert!(plans().join("production.yaml").is_file());
        assert!(root().join("scripts/testbed.sh").is_file());
    }

    #[test]
    fn the_scratch_directory_is_inside_the_target_directory() {
        let tmp = target_tmp();
        assert!(tmp.is_dir());
        assert!(profile_dir().starts_with(tmp.parent().unwrap()));
    }
}
