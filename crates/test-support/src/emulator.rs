//! Starts an emulator on a loopback port for a test, with a kubeconfig for kubectl and kube-rs.

use kube_emulator::{Config, Emulator, Running};
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

pub struct Server {
    pub rt: tokio::runtime::Runtime,
    pub running: Option<Running>,
    pub dir: tempfile::TempDir,
    pub kubeconfig: PathBuf,
}

impl Server {
    pub fn start() -> Self {
        Self::with(Config {
            workload_delay: Duration::from_millis(300),
            operator_delay: Duration::from_millis(300),
            clickhouse_delay: Duration::from_millis(300),
            ..Config::default()
        })
    }

    pub fn with(config: Config) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let running = rt
            .block_on(Emulator::new(config).serve("127.0.0.1:0".parse().unwrap()))
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(&kubeconfig, running.kubeconfig()).unwrap();
        Server {
            rt,
            running: Some(running),
            dir,
            kubeconfig,
        }
    }

    pub fn running(&self) -> &Running {
        self.running.as_ref().unwrap()
    }

    pub fn kubectl(&self, args: &[&str]) -> Output {
        Command::new(kubectl())
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("HOME", self.dir.path())
            .output()
            .expect("kubectl is installed")
    }

    /// Runs kubectl, asserts success, returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs kubectl, asserts failure, returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            !out.status.success(),
            "kubectl {args:?} should fail: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// Writes a manifest into the test directory and returns its path.
    pub fn file(&self, name: &str, text: &str) -> String {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.to_string_lossy().into_owned()
    }

    pub fn client(&self) -> kube::Client {
        let url = self.running().url();
        self.rt.block_on(async move {
            let config = kube::Config::new(url.parse().unwrap());
            kube::Client::try_from(config).unwrap()
        })
    }
}

pub const OPERATOR: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: wandb-operator
  namespace: wandb
  labels: {app.kubernetes.io/name: wandb-operator}
spec:
  replicas: 1
  selector: {matchLabels: {app.kubernetes.io/name: wandb-operator}}
  template:
    metadata: {labels: {app.kubernetes.io/name: wandb-operator}}
    spec: {containers: [{name: manager, image: "wandb/controller:1.20.0"}]}
"#;

pub const WANDB_CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: weightsandbiases.apps.wandb.com}
spec:
  group: apps.wandb.com
  scope: Namespaced
  names: {plural: weightsandbiases, singular: weightsandbiases, kind: WeightsAndBiases, shortNames: [wandb]}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
"#;

pub const CHI_CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: clickhouseinstallations.clickhouse.altinity.com}
spec:
  group: clickhouse.altinity.com
  scope: Namespaced
  names: {plural: clickhouseinstallations, singular: clickhouseinstallation, kind: ClickHouseInstallation, shortNames: [chi]}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
"#;

/// The kubectl the suite runs (`WBSTACK_KUBECTL`, set by `scripts/test.sh` to the test bed's,
/// built from the Kubernetes release the test bed serves), else the machine's.
pub fn kubectl() -> std::path::PathBuf {
    std::env::var_os("WBSTACK_KUBECTL")
        .map(Into::into)
        .unwrap_or_else(|| "kubectl".into())
}
