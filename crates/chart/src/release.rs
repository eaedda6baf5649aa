//! A Helm release as Helm's `secrets` storage driver keeps it: one Secret per revision,
//! `sh.helm.release.v1.<release>.v<N>` of type `helm.sh/release.v1`, labelled `owner=helm`,
//! `name`, `status` and `version`, whose `release` key holds base64 of gzip of the release's JSON.
//! The release's `manifest` is every object the chart rendered (hooks apart, in `hooks`).

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::io::{Read, Write};

/// The Secret type Helm's storage driver gives a release revision.
pub const RELEASE_SECRET_TYPE: &str = "helm.sh/release.v1";

/// Why a stored release could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    #[error("Secret {secret} has no `release` key")]
    NoRelease { secret: String },
    #[error("failed to decode the release in Secret {secret}: {why}")]
    Decode { secret: String, why: String },
    #[error("failed to read the manifest of release {release} v{version}: {source}")]
    Manifest {
        release: String,
        version: i64,
        #[source]
        source: serde_yaml_ng::Error,
    },
}

/// One revision of a release: what was installed with which values, and how it ended.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HelmRelease {
    pub name: String,
    #[serde(default)]
    pub namespace: String,
    pub version: i64,
    #[serde(default)]
    pub info: Info,
    /// The values the release was installed with (the user's, not merged with the chart's).
    #[serde(default)]
    pub config: Value,
    /// Every non-hook object the chart rendered, as YAML documents.
    #[serde(default)]
    pub manifest: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hooks: Vec<Hook>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chart: Option<ChartRef>,
}

/// The release's status (`deployed`, `superseded`, `failed`, `pending-install`, ...).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Info {
    #[serde(default)]
    pub status: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

/// The chart a release was made from: only its metadata is read.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChartRef {
    #[serde(default)]
    pub metadata: ChartMetadata,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ChartMetadata {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub version: String,
}

/// A hook of the release (a Job that runs before or after an install or upgrade).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Hook {
    pub name: String,
    pub kind: String,
    #[serde(default)]
    pub events: Vec<String>,
    #[serde(default)]
    pub last_run: LastRun,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LastRun {
    /// `Running`, `Succeeded`, `Failed` or empty (never run).
    #[serde(default)]
    pub phase: String,
}

/// An object of a release's manifest.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ManifestObject {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    /// As rendered; None where the chart leaves it to the release's namespace.
    pub namespace: Option<String>,
}

impl HelmRelease {
    /// A revision with `status` whose manifest is `objects`, as Helm writes it (`---`, one
    /// document an object).
    pub fn new(
        name: &str,
        namespace: &str,
        version: i64,
        status: &str,
        config: Value,
        objects: &[Value],
    ) -> Self {
        let mut manifest = String::new();
        for o in objects {
            manifest.push_str("---\n");
            manifest.push_str(&serde_yaml_ng::to_string(o).expect("JSON values serialise"));
        }
        HelmRelease {
            name: name.to_owned(),
            namespace: namespace.to_owned(),
            version,
            info: Info {
                status: status.to_owned(),
                description: String::new(),
            },
            config,
            manifest,
            hooks: Vec::new(),
            chart: None,
        }
    }

    /// The name of the Secret that stores revision `version` of `release`.
    pub fn secret_name(release: &str, version: i64) -> String {
        format!("sh.helm.release.v1.{release}.v{version}")
    }

    /// The labels Helm's storage driver selects a release's revisions by.
    pub fn selector(release: &str) -> String {
        format!("owner=helm,name={release}")
    }

    /// Reads a release from its Secret as the API returns it (`data.release` base64 of Helm's
    /// own base64 of gzip of JSON; an uncompressed JSON is accepted too, as Helm does).
    pub fn from_secret(secret: &Value) -> Result<Self, ReleaseError> {
        let name = secret["metadata"]["name"].as_str().unwrap_or("").to_owned();
        let err = |why: String| ReleaseError::Decode {
            secret: name.clone(),
            why,
        };
        let data = secret["data"]["release"]
            .as_str()
            .ok_or_else(|| ReleaseError::NoRelease {
                secret: name.clone(),
            })?;
        let helm = B64
            .decode(data.trim())
            .map_err(|e| err(format!("Kubernetes base64: {e}")))?;
        let raw = B64
            .decode(&helm)
            .map_err(|e| err(format!("Helm's base64: {e}")))?;
        let json = if raw.starts_with(&[0x1f, 0x8b, 0x08]) {
            let mut out = Vec::new();
            GzDecoder::new(raw.as_slice())
                .read_to_end(&mut out)
                .map_err(|e| err(format!("gzip: {e}")))?;
            out
        } else {
            raw
        };
        serde_json::from_slice(&json).map_err(|e| err(format!("JSON: {e}")))
    }

    /// The Secret Helm's storage driver writes for this revision.
    pub fn to_secret(&self) -> Value {
        let json = serde_json::to_vec(self).expect("a release serialises");
        let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&json).expect("writing to memory");
        let helm = B64.encode(gz.finish().expect("writing to memory"));
        json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "type": RELEASE_SECRET_TYPE,
            "metadata": {
                "name": Self::secret_name(&self.name, self.version),
                "namespace": self.namespace,
                "labels": {
                    "owner": "helm",
                    "name": self.name,
                    "status": self.info.status,
                    "version": self.version.to_string(),
                },
            },
            "data": {"release": B64.encode(helm.as_bytes())},
        })
    }

    /// The documents of the manifest as the chart rendered them, in order (empty ones left out).
    pub fn documents(&self) -> Result<Vec<Value>, ReleaseError> {
        let mut out = Vec::new();
        for doc in serde_yaml_ng::Deserializer::from_str(&self.manifest) {
            let v = Value::deserialize(doc).map_err(|source| ReleaseError::Manifest {
                release: self.name.clone(),
                version: self.version,
                source,
            })?;
            if v.is_object() {
                out.push(v);
            }
        }
        Ok(out)
    }

    /// The objects of the manifest, in order.
    pub fn objects(&self) -> Result<Vec<ManifestObject>, ReleaseError> {
        let mut out = Vec::new();
        for v in self.documents()? {
            let (Some(kind), Some(name)) = (v["kind"].as_str(), v["metadata"]["name"].as_str())
            else {
                continue;
            };
            out.push(ManifestObject {
                api_version: v["apiVersion"].as_str().unwrap_or("").to_owned(),
                kind: kind.to_owned(),
                name: name.to_owned(),
                namespace: v["metadata"]["namespace"].as_str().map(str::to_owned),
            });
        }
        Ok(out)
    }

    /// The newest revision among a release's Secrets (the highest `version`), decoded.
    pub fn latest(secrets: &[Value]) -> Option<Result<Self, ReleaseError>> {
        let version = |s: &Value| {
            s["metadata"]["labels"]["version"]
                .as_str()
                .and_then(|v| v.parse::<i64>().ok())
                .unwrap_or(0)
        };
        secrets
            .iter()
            .filter(|s| s["type"] == RELEASE_SECRET_TYPE)
            .max_by_key(|s| version(s))
            .map(Self::from_secret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn release() -> HelmRelease {
        HelmRelease {
            name: "wandb-weave".into(),
            namespace: "wandb".into(),
            version: 2,
            info: Info {
                status: "deployed".into(),
                description: String::new(),
            },
            config: json!({"weave": {"install": true}}),
            manifest: "---\n# Source: operator-wandb/charts/weave/templates/deployment.yaml\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: wandb-weave-bc\n---\n# Source: x\napiVersion: v1\nkind: Service\nmetadata:\n  name: wandb-weave\n  namespace: wandb\n".into(),
            hooks: vec![],
            chart: None,
        }
    }

    #[test]
    fn a_release_survives_the_secret_round_trip_and_lists_its_objects() {
        let r = release();
        let s = r.to_secret();
        assert_eq!(s["metadata"]["name"], "sh.helm.release.v1.wandb-weave.v2");
        assert_eq!(s["metadata"]["labels"]["status"], "deployed");
        let back = HelmRelease::from_secret(&s).unwrap();
        assert_eq!(back, r);
        let objs = back.objects().unwrap();
        assert_eq!(objs.len(), 2);
        assert_eq!(objs[0].kind, "Deployment");
        assert_eq!(objs[0].name, "wandb-weave-bc");
        assert_eq!(objs[0].namespace, None);
        assert_eq!(objs[1].namespace.as_deref(), Some("wandb"));
    }

    #[test]
    fn the_latest_revision_wins_and_garbage_is_an_error() {
        let mut old = release();
        old.version = 1;
        old.info.status = "superseded".into();
        let latest = HelmRelease::latest(&[release().to_secret(), old.to_secret()])
            .unwrap()
            .unwrap();
        assert_eq!(latest.version, 2);
        let bad = json!({"type": RELEASE_SECRET_TYPE, "metadata": {"name": "x", "labels": {"version": "1"}}, "data": {"release": "!!"}});
        assert!(HelmRelease::latest(&[bad]).unwrap().is_err());
        assert!(HelmRelease::latest(&[]).is_none());
    }
}
