//! Drives the built `wbstack` binary against an emulated cluster served from the test process.

use crate::run::expect_code;
use crate::testbed::{self, Testbed};
use crate::{bench, paths};
use kube_emulator::Running;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::Ordering;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// Where a test's cluster runs: the project's emulator, or the test bed's real control plane.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Back {
    Emulator,
    Testbed,
}

/// The image `render --job` and the probe Job run: this release's.
pub const WBSTACK_IMAGE: &str = concat!("ghcr.io/wbstack/wbstack:", env!("CARGO_PKG_VERSION"));

pub struct Env {
    pub rt: tokio::runtime::Runtime,
    pub running: Option<Running>,
    pub testbed: Option<Testbed>,
    pub dir: tempfile::TempDir,
    /// The product's kubeconfig.
    pub kubeconfig: PathBuf,
    /// The tests' own kubeconfig (the same as the product's on the emulator).
    pub admin: PathBuf,
    /// One test bed at a time per test process: a control plane is two cores' worth of work.
    _one: Option<MutexGuard<'static, ()>>,
}

/// Test functions that take a [`Back`], run once on each back end:
/// `emulator::NAME` and `testbed::NAME`.
#[macro_export]
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod emulator {
            $(#[test] fn $name() { super::$name($crate::Back::Emulator) })*
        }
        #[cfg(feature = "testbed")]
        mod testbed {
            $(#[test] fn $name() { super::$name($crate::Back::Testbed) })*
        }
    };
}

pub const LICENSE: &str = "lic-3f9a2c7e-test-license-value";

impl Env {
    pub fn new(delay_ms: u64) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let running = bench::emulator(&rt, delay_ms);
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(&kubeconfig, running.kubeconfig()).unwrap();
        Env {
            rt,
            running: Some(running),
            testbed: None,
            admin: kubeconfig.clone(),
            dir,
            kubeconfig,
            _one: None,
        }
    }

    /// A cluster on the given back end; `delay_ms` paces the emulator's controllers (the test
    /// bed's run at their own pace).
    pub fn on(back: Back, delay_ms: u64) -> Self {
        match back {
            Back::Emulator => Env::new(delay_ms),
            Back::Testbed => Env::testbed(),
        }
    }

    /// A real control plane for this test.
    pub fn testbed() -> Self {
        static ONE: Mutex<()> = Mutex::new(());
        let one = ONE.lock().unwrap_or_else(|e| e.into_inner());
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let tb = Testbed::up(dir.path());
        Env {
            rt,
            running: None,
            kubeconfig: tb.product.clone(),
            admin: tb.admin.clone(),
            testbed: Some(tb),
            dir,
            _one: Some(one),
        }
    }

    pub fn back(&self) -> Back {
        if self.testbed.is_some() {
            Back::Testbed
        } else {
            Back::Emulator
        }
    }

    /// The emulator (for tests that steer it).
    /// Lets the emulator's kubelet run wbstack's own image as this build's binary (a probe
    /// Job's pod), with `image_env` standing for the image's own environment.
    pub fn run_wbstack_image(&self, image_env: &[(&str, &str)]) {
        let running = self.running();
        let image = kube_emulator::LocalImage {
            program: paths::wbstack(),
            env: image_env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        let mut config = running.config();
        config.local_images.insert(WBSTACK_IMAGE.into(), image);
        running.set_config(config);
    }

    pub fn running(&self) -> &Running {
        self.running
            .as_ref()
            .expect("an emulator-only test helper was used on the test bed")
    }

    /// A shipped plan, as this back end runs it (see [`Env::plan_from`]).
    pub fn plan(&self, file: &str) -> String {
        let text = std::fs::read_to_string(Env::plans().join(file)).unwrap();
        self.plan_from(file, &text)
    }

    /// A plan written into the test's directory as `name`, as this back end runs it: on the test
    /// bed, with `spec.wandb.chart.path` naming a chart archive of the real renders' objects for
    /// the plan's values (the operator is air-gapped). Returns its path.
    pub fn plan_from(&self, name: &str, yaml: &str) -> String {
        let dir = self.dir.path().join(format!("plan-{name}"));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, yaml).unwrap();
        if self.testbed.is_none() {
            return path.display().to_string();
        }
        let out = self.ok(&[
            "render",
            "--plan",
            path.to_str().unwrap(),
            "--output",
            "json",
        ]);
        let resource = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .find(|d| d["kind"] == "WeightsAndBiases")
            .unwrap();
        let m = &resource["metadata"];
        let tgz = testbed::scenario_chart(
            &resource["spec"]["values"],
            m["name"].as_str().unwrap(),
            m["namespace"].as_str().unwrap(),
            &dir,
        );
        let mut plan: serde_json::Value = serde_yaml_ng::from_str(yaml).unwrap();
        plan["spec"]["wandb"]["chart"] = serde_json::json!({ "path": tgz });
        std::fs::write(&path, serde_yaml_ng::to_string(&plan).unwrap()).unwrap();
        path.display().to_string()
    }

    pub fn plans() -> PathBuf {
        paths::plans()
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(paths::wbstack());
        c.args(args)
            .current_dir(self.dir.path())
            .env("KUBECONFIG", &self.kubeconfig)
            .env("HOME", self.dir.path())
            .env("WANDB_LICENSE", LICENSE)
            .env("NO_COLOR", "1")
            .env_remove("WBSTACK_STATE_DIR")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// Runs wbstack and asserts it succeeded; a failure names the caller's line.
    #[track_caller]
    pub fn ok(&self, args: &[&str]) -> Output {
        expect_code(&mut self.cmd(args), 0)
    }

    /// Runs wbstack and asserts it exited with `code`; a failure names the caller's line.
    #[track_caller]
    pub fn expect(&self, args: &[&str], code: i32) -> Output {
        expect_code(&mut self.cmd(args), code)
    }

    /// kubectl as the tests' own client: on the test bed, the one built with its server.
    pub fn kubectl(&self, args: &[&str]) -> String {
        let bin = match self.back() {
            Back::Emulator => std::env::var_os("WBSTACK_KUBECTL")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("kubectl")),
            Back::Testbed => Testbed::kubectl_bin(),
        };
        let out = Command::new(bin)
            .args(args)
            .env("KUBECONFIG", &self.admin)
            .env("HOME", self.dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Create, update, patch and delete requests the product made.
    pub fn mutations(&self) -> u64 {
        if let Some(t) = &self.testbed {
            return t.mutations();
        }
        self.running()
            .cluster
            .stats
            .mutations
            .load(Ordering::Relaxed)
    }

    pub fn requests(&self) -> u64 {
        if let Some(t) = &self.testbed {
            return t.requests();
        }
        let s = &self.running().cluster.stats;
        s.mutations.load(Ordering::Relaxed)
            + s.reads.load(Ordering::Relaxed)
            + s.watches.load(Ordering::Relaxed)
    }

    /// Every stored object as (kind, namespace, name).
    pub fn objects(&self) -> Vec<(String, String, String)> {
        if self.testbed.is_some() {
            return self.listed_objects();
        }
        let mut v: Vec<_> = self
            .running()
            .cluster
            .snapshot()
            .objects
            .iter()
            .map(identity)
            .collect();
        v.sort();
        v
    }
}

/// An object as (kind, namespace, name).
fn identity(o: &serde_json::Value) -> (String, String, String) {
    let s = |v: &serde_json::Value| v.as_str().unwrap_or("").to_owned();
    (
        s(&o["kind"]),
        s(&o["metadata"]["namespace"]),
        s(&o["metadata"]["name"]),
    )
}

impl Env {
    /// Every object the server lists, of every listable resource, as (kind, namespace, name).
    fn listed_objects(&self) -> Vec<(String, String, String)> {
        let kinds = self.kubectl(&["api-resources", "--verbs=list", "-o", "name"]);
        let kinds: Vec<&str> = kinds.lines().collect();
        let list = self.kubectl(&["get", &kinds.join(","), "-A", "-o", "json"]);
        let v: serde_json::Value = serde_json::from_str(&list).unwrap();
        let mut out: Vec<_> = v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(identity)
            .collect();
        // `events` is served twice (core and events.k8s.io): one listing of each object.
        out.sort();
        out.dedup();
        out
    }
}

impl Env {
    /// Waits until the controllers have given a new namespace what they give every namespace
    /// (its `default` ServiceAccount and `kube-root-ca.crt`), so a listing taken next is stable.
    pub fn settle_namespace(&self, ns: &str) {
        if self.testbed.is_none() {
            return;
        }
        for _ in 0..200 {
            let sa = self.kubectl(&["get", "sa,cm", "-n", ns, "-o", "name"]);
            if sa.contains("serviceaccount/default") && sa.contains("configmap/kube-root-ca.crt") {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("namespace {ns} never got its default ServiceAccount");
    }
}

impl Env {
    /// The workloads of the newest revision of Helm release `release` in `ns`, as the
    /// operator's Helm stored it (`Kind/name`): what readiness awaits. Printed for the figures.
    pub fn release_workloads(&self, ns: &str, release: &str) -> Vec<String> {
        let list = self.kubectl(&[
            "get",
            "secret",
            "-n",
            ns,
            "-l",
            &format!("owner=helm,name={release}"),
            "-o",
            "json",
        ]);
        let items: serde_json::Value = serde_json::from_str(&list).unwrap();
        let secrets = items["items"].as_array().cloned().unwrap_or_default();
        let r = wbstack_chart::HelmRelease::latest(&secrets)
            .unwrap_or_else(|| panic!("no Helm release {release} in {ns}"))
            .unwrap();
        let mut out: Vec<String> = r
            .objects()
            .unwrap()
            .into_iter()
            .filter(|o| {
                matches!(
                    o.kind.as_str(),
                    "Deployment" | "StatefulSet" | "DaemonSet" | "Job"
                )
            })
            .map(|o| format!("{}/{}", o.kind, o.name))
            .collect();
        out.sort();
        println!(
            "{:?}: Helm release {release} revision {} has {} workloads: {}",
            self.back(),
            r.version,
            out.len(),
            out.join(" ")
        );
        out
    }
}
