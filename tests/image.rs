//! wbstack's image, as `scripts/image.sh` builds it from `Containerfile` with Debian's buildah:
//! from a binary already compiled (this build's), with no base image pulled. Unpacked with
//! umoci, its own root filesystem runs the binary as the image's user (chroot, no host
//! library or file): `--version`, and `verify --in-pod` as the probe Job runs it, whose host
//! probe makes a TLS connection to a real HTTPS server. The image holds the binary unchanged,
//! the libraries the loader resolves for it, the CA bundle and nothing else.

use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;
use wbstack_test_support::servers;

const VERSION: &str = env!("CARGO_PKG_VERSION");

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?}: {said}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn sha256(path: &Path) -> String {
    run(Command::new("sha256sum").arg(path))
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

/// Every file under `root`, by its path in the image.
fn files(root: &Path) -> Vec<String> {
    let listed = run(Command::new("find").arg(root).args(["-type", "f"]));
    let mut v: Vec<String> = listed
        .lines()
        .map(|l| l.trim_start_matches(root.to_str().unwrap()).to_owned())
        .collect();
    v.sort();
    v
}

/// The binary in the image's root filesystem, as the image's user, with only `env`.
fn in_image(root: &Path, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    Command::new("/usr/sbin/chroot")
        .args(["--userspec", "65532:65532"])
        .arg(root)
        .arg("/usr/local/bin/wbstack")
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

#[test]
fn the_image_runs_wbstack_from_its_own_root_filesystem() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("image");
    let bin = env!("CARGO_BIN_EXE_wbstack");
    let started = std::time::Instant::now();
    let pinned = run(Command::new("scripts/image.sh")
        .arg(bin)
        .arg(&out)
        .current_dir(env!("CARGO_MANIFEST_DIR")));
    eprintln!(
        "image built in {} ms: {}",
        started.elapsed().as_millis(),
        pinned.trim()
    );
    let prefix = format!("ghcr.io/wbstack/wbstack:{VERSION}@sha256:");
    assert!(pinned.trim().starts_with(&prefix), "{pinned}");

    // The image's configuration: its user, entrypoint, path and CA bundle, one layer.
    let layout = format!("oci:{}:{VERSION}", out.join("oci").display());
    let config: Value = serde_json::from_str(&run(
        Command::new("skopeo").args(["inspect", "--config", &layout])
    ))
    .unwrap();
    let c = &config["config"];
    assert_eq!(c["User"], "65532:65532");
    assert_eq!(c["Entrypoint"], json!(["/usr/local/bin/wbstack"]));
    let env: Vec<&str> = c["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    assert!(env.contains(&"PATH=/usr/local/bin"), "{env:?}");
    assert_eq!(config["rootfs"]["diff_ids"].as_array().unwrap().len(), 1);
    assert_eq!(c["Labels"]["org.opencontainers.image.version"], VERSION);
    assert!(out.join("wbstack-image.tar").is_file());

    let root = dir.path().join("root");
    let image = format!("{}:{VERSION}", out.join("oci").display());
    run(Command::new("umoci")
        .args(["raw", "unpack", "--rootless", "--image", &image])
        .arg(&root));
    // The binary unchanged (no compile in the image build), the system's CA bundle, the loader
    // and libraries, the users, and nothing more.
    assert_eq!(
        sha256(&root.join("usr/local/bin/wbstack")),
        sha256(Path::new(bin))
    );
    let bundle = "/etc/ssl/certs/ca-certificates.crt";
    assert_eq!(sha256(&root.join(&bundle[1..])), sha256(Path::new(bundle)));
    let all = files(&root);
    let other: Vec<&String> = all
        .iter()
        .filter(|f| {
            let known = [
                bundle,
                "/etc/passwd",
                "/etc/group",
                "/usr/local/bin/wbstack",
            ];
            !(f.starts_with("/lib") || known.contains(&f.as_str()))
        })
        .collect();
    assert!(other.is_empty(), "{other:?}");
    eprintln!("the image's files: {all:?}");

    let version = in_image(&root, &["--version"], &[]);
    assert!(version.status.success(), "{version:?}");
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("wbstack {VERSION}")
    );

    // The probe Job's side, from the image: a TLS connection to a real HTTPS server, whose
    // test CA is handed in as the Job would hand a bundle (SSL_CERT_FILE).
    let pki = servers::pki(dir.path(), &["127.0.0.1"]);
    let https = servers::Https::start(&pki, 200);
    std::fs::copy(&pki.ca, root.join("tmp/test-ca.pem")).unwrap();
    let order = json!({"namespace": "wandb", "resource": "wandb",
        "values": {"global": {"host": format!("https://127.0.0.1:{}", https.port)}},
        "options": {"in_cluster": true, "sandbox": false, "skip_certificate": false, "clickhouse_replicas": null},
        "secrets": {}, "withheld": [], "aws_endpoint": null});
    let probed = in_image(
        &root,
        &["verify", "--in-pod"],
        &[
            ("WBSTACK_VERIFY_ORDER", &order.to_string()),
            ("SSL_CERT_FILE", "/tmp/test-ca.pem"),
        ],
    );
    assert!(probed.status.success(), "{probed:?}");
    let said: Value = serde_json::from_slice(&probed.stdout).unwrap();
    let host = said["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["probe"] == "host")
        .cloned()
        .unwrap();
    assert_eq!(host["verdict"], "pass", "{said}");
}
