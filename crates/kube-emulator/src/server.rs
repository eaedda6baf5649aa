//! Starting the server, kubeconfig, persistence.

use crate::cluster::{Cluster, Snapshot};
use crate::controllers::Controllers;
use crate::http::{handle, App};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::task::JoinHandle;

/// Delays of the simulated controllers.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Config {
    /// Until a Deployment or StatefulSet is ready.
    #[serde(with = "ms")]
    pub workload_delay: Duration,
    /// The W&B stand-in's Loading -> Applying -> Completed.
    #[serde(with = "ms")]
    pub operator_delay: Duration,
    /// The Altinity stand-in's InProgress -> Completed.
    #[serde(with = "ms")]
    pub clickhouse_delay: Duration,
    /// Deployments and StatefulSets (by name) that never become ready, for failure tests.
    #[serde(default)]
    pub never_ready: Vec<String>,
    /// Workloads (by name) whose pods fail the way real pods do, with the kubelet's status and
    /// events: a crash loop, an image that cannot be pulled, no node that fits, a failed Job.
    #[serde(default)]
    pub pod_faults: Vec<PodFault>,
    /// WeightsAndBiases resources (by name) the W&B operator stand-in cannot apply: it reports
    /// `Invalid Config` and retries, as the real operator does, until the name is removed.
    #[serde(default)]
    pub invalid_config: Vec<String>,
    /// The issuer (`iss`) of the ServiceAccount tokens the API issues (TokenRequest), as a
    /// cluster's `--service-account-issuer` sets it: on EKS, its OIDC issuer URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_issuer: Option<String>,
    /// Images whose Job pods the kubelet runs as processes on this machine, by image
    /// reference: the program the image's entrypoint names and the image's own environment.
    /// The pod's environment is resolved as a kubelet resolves it (Secret keys included), and
    /// the EKS pod identity webhook's is added for a ServiceAccount that names an IAM role.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub local_images: std::collections::BTreeMap<String, LocalImage>,
}

/// An image run as a local process.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalImage {
    /// The program the image's entrypoint (`command[0]`) names.
    pub program: PathBuf,
    /// The image's own environment (its configuration's `Env`), under the pod's.
    #[serde(default)]
    pub env: std::collections::BTreeMap<String, String>,
}

/// A pod failure to simulate for one workload.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PodFault {
    /// The Deployment, StatefulSet, DaemonSet or Job.
    pub workload: String,
    pub fault: Fault,
}

/// How pods fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Fault {
    /// The container starts and exits 1, again and again (`CrashLoopBackOff`).
    CrashLoop,
    /// The image cannot be pulled (`ImagePullBackOff`).
    ImagePull,
    /// No node fits the pod (`Pending`, `Unschedulable`).
    Unschedulable,
    /// The Job's pods fail until its backoff limit (`Failed`, `BackoffLimitExceeded`).
    JobFailed,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            workload_delay: Duration::from_millis(200),
            operator_delay: Duration::from_millis(300),
            clickhouse_delay: Duration::from_millis(300),
            never_ready: Vec::new(),
            pod_faults: Vec::new(),
            invalid_config: Vec::new(),
            service_account_issuer: None,
            local_images: Default::default(),
        }
    }
}

mod ms {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

/// Fault injection for reliability tests.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Faults {
    /// Share (0..1) of API requests answered 500 or 429 with `Retry-After`,
    /// spread evenly over the requests (every tenth of them at 0.1), alternating.
    #[serde(default)]
    pub error_rate: f64,
    /// End every watch stream this long after it starts.
    #[serde(default)]
    pub drop_watches_after_ms: Option<u64>,
    /// The wait a 429 asks for, in seconds (its `Retry-After` header and the Status's
    /// `details.retryAfterSeconds`, as kube-apiserver sends both); default 1.
    #[serde(default)]
    pub retry_after_seconds: Option<u32>,
    /// Share (0..1) of updates (PUT and PATCH) answered 409 Conflict, as kube-apiserver answers
    /// a write against an object that changed meanwhile; spread evenly like `error_rate`.
    #[serde(default)]
    pub conflict_rate: f64,
}

/// Why the emulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    #[error("failed to listen on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to read the persisted cluster at {path}")]
    Load {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the persisted cluster at {path} is not valid: {message}")]
    Corrupt { path: PathBuf, message: String },
}

/// An emulated cluster: state, controllers and (once served) an HTTP endpoint.
pub struct Emulator {
    cluster: Arc<Cluster>,
    config: Arc<RwLock<Config>>,
    faults: Arc<RwLock<Faults>>,
    persist: Option<PathBuf>,
    token: Option<String>,
}

impl std::fmt::Debug for Emulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emulator")
            .field("persist", &self.persist)
            .finish_non_exhaustive()
    }
}

/// A running server. Dropping it does not stop it; call [`Running::stop`].
#[derive(Debug)]
pub struct Running {
    pub addr: SocketAddr,
    pub cluster: Arc<Cluster>,
    faults: Arc<RwLock<Faults>>,
    config: Arc<RwLock<Config>>,
    server: JoinHandle<()>,
    saver: Option<JoinHandle<()>>,
    persist: Option<PathBuf>,
    token: Option<String>,
}

impl Emulator {
    /// A fresh cluster with the given controller delays.
    pub fn new(config: Config) -> Self {
        Emulator {
            cluster: Arc::new(Cluster::new()),
            config: Arc::new(RwLock::new(config)),
            faults: Arc::new(RwLock::new(Faults::default())),
            persist: None,
            token: None,
        }
    }

    /// Answers only requests carrying `Authorization: Bearer <token>` (others get a 401); the
    /// kubeconfig of the running server carries it.
    pub fn with_token(mut self, token: &str) -> Self {
        self.token = Some(token.to_owned());
        self
    }

    /// Keeps the cluster in a file: loaded now if it exists, saved after every change.
    pub fn persisted(mut self, path: &Path) -> Result<Self, EmulatorError> {
        if path.exists() {
            let bytes = std::fs::read(path).map_err(|source| EmulatorError::Load {
                path: path.to_owned(),
                source,
            })?;
            let snap: Snapshot =
                serde_json::from_slice(&bytes).map_err(|e| EmulatorError::Corrupt {
                    path: path.to_owned(),
                    message: e.to_string(),
                })?;
            self.cluster.restore(snap);
        }
        self.persist = Some(path.to_owned());
        Ok(self)
    }

    /// The cluster, for direct inspection in tests.
    pub fn cluster(&self) -> Arc<Cluster> {
        self.cluster.clone()
    }

    /// Sets fault injection.
    pub fn set_faults(&self, f: Faults) {
        if let Ok(mut w) = self.faults.write() {
            *w = f;
        }
    }

    /// Starts the controllers and serves on `addr` (port 0 picks a free port). Must be called
    /// inside a tokio runtime.
    pub async fn serve(self, addr: SocketAddr) -> Result<Running, EmulatorError> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| EmulatorError::Bind { addr, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| EmulatorError::Bind { addr, source })?;
        let logs = crate::kubelet::Logs::default();
        Controllers::start(self.cluster.clone(), self.config.clone(), logs.clone());
        let app = Arc::new(App {
            logs,
            cluster: self.cluster.clone(),
            faults: self.faults.clone(),
            addr: addr.to_string(),
            fault_ticks: Default::default(),
            conflict_ticks: Default::default(),
            token: self.token.clone(),
            config: self.config.clone(),
        });
        let router = axum::Router::new().fallback(handle).with_state(app);
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        let saver = self.persist.clone().map(|path| {
            let cluster = self.cluster.clone();
            let mut rx = cluster.subscribe();
            tokio::spawn(async move {
                loop {
                    match rx.recv().await {
                        Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                        Err(_) => return,
                    }
                    // Coalesce a burst of changes into one write.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    while rx.try_recv().is_ok() {}
                    let _ = save(&cluster, &path);
                }
            })
        });
        Ok(Running {
            addr,
            cluster: self.cluster,
            faults: self.faults,
            config: self.config,
            server,
            saver,
            persist: self.persist,
            token: self.token,
        })
    }
}

/// Writes the cluster to `path` atomically.
pub fn save(cluster: &Cluster, path: &Path) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(
        &tmp,
        serde_json::to_vec(&cluster.snapshot()).unwrap_or_default(),
    )?;
    std::fs::rename(&tmp, path)
}

impl Running {
    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A kubeconfig pointing at this server (context `kube-emulator`).
    pub fn kubeconfig(&self) -> String {
        let k = kubeconfig(&self.url());
        match &self.token {
            Some(t) => k.replace("    token: kube-emulator\n", &format!("    token: {t}\n")),
            None => k,
        }
    }

    /// Sets fault injection.
    pub fn set_faults(&self, f: Faults) {
        if let Ok(mut w) = self.faults.write() {
            *w = f;
        }
    }

    /// Request counters: `{reads, mutations, watches}`.
    pub fn stats(&self) -> serde_json::Value {
        self.cluster.stats.to_json()
    }

    /// The controllers' settings.
    pub fn config(&self) -> Config {
        self.config.read().map(|c| c.clone()).unwrap_or_default()
    }

    /// Changes the controllers' settings (delays, faults).
    pub fn set_config(&self, c: Config) {
        if let Ok(mut w) = self.config.write() {
            *w = c;
        }
    }

    /// Stops serving (and saves, when persisted).
    pub fn stop(self) {
        self.server.abort();
        if let Some(s) = self.saver {
            s.abort();
        }
        if let Some(p) = &self.persist {
            let _ = save(&self.cluster, p);
        }
    }
}

/// A kubeconfig for a server URL.
pub fn kubeconfig(url: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: kube-emulator\n  cluster:\n    server: {url}\ncontexts:\n- name: kube-emulator\n  context:\n    cluster: kube-emulator\n    user: kube-emulator\n    namespace: default\ncurrent-context: kube-emulator\nusers:\n- name: kube-emulator\n  user:\n    token: kube-emulator\npreferences: {{}}\n"
    )
}
