//! Each built-in kind's cells, in `columns.json`'s order, computed as kube-apiserver's printers
//! compute them (`pkg/printers/internalversion`).

use super::created_age;
use crate::util::{age, parse_rfc3339};
use serde_json::{json, Value};

type Cells = fn(&Value, i64) -> Vec<Value>;

/// Each built-in kind's cells.
const CELLS: &[(&str, Cells)] = &[
    ("ConfigMap", |o, now| {
        vec![
            name(o),
            json!(count(&o["data"]) + count(&o["binaryData"])),
            created_age(o, now),
        ]
    }),
    ("Secret", |o, now| {
        vec![
            name(o),
            s(&o["type"]),
            json!(count(&o["data"])),
            created_age(o, now),
        ]
    }),
    ("Pod", pod),
    ("Event", event),
    ("Namespace", |o, now| {
        vec![name(o), s(&o["status"]["phase"]), created_age(o, now)]
    }),
    ("Service", service),
    ("PersistentVolumeClaim", claim),
    ("ServiceAccount", |o, now| {
        vec![name(o), created_age(o, now)]
    }),
    ("Deployment", |o, now| {
        let st = &o["status"];
        let mut c = vec![
            name(o),
            ready_of(st["readyReplicas"].as_i64(), o["spec"]["replicas"].as_i64()),
            json!(int(&st["updatedReplicas"])),
            json!(int(&st["availableReplicas"])),
            created_age(o, now),
        ];
        c.extend(containers(o));
        c.push(selector(&o["spec"]["selector"]));
        c
    }),
    ("StatefulSet", |o, now| {
        let mut c = vec![
            name(o),
            ready_of(
                o["status"]["readyReplicas"].as_i64(),
                o["spec"]["replicas"].as_i64(),
            ),
            created_age(o, now),
        ];
        c.extend(containers(o));
        c
    }),
    ("ReplicaSet", |o, now| {
        let st = &o["status"];
        let mut c = vec![
            name(o),
            json!(int(&o["spec"]["replicas"])),
            json!(int(&st["replicas"])),
            json!(int(&st["readyReplicas"])),
            created_age(o, now),
        ];
        c.extend(containers(o));
        c.push(selector(&o["spec"]["selector"]));
        c
    }),
    ("DaemonSet", |o, now| {
        let st = &o["status"];
        let mut c = vec![
            name(o),
            json!(int(&st["desiredNumberScheduled"])),
            json!(int(&st["currentNumberScheduled"])),
            json!(int(&st["numberReady"])),
            json!(int(&st["updatedNumberScheduled"])),
            json!(int(&st["numberAvailable"])),
            labels(&o["spec"]["template"]["spec"]["nodeSelector"]),
            created_age(o, now),
        ];
        c.extend(containers(o));
        c.push(selector(&o["spec"]["selector"]));
        c
    }),
    ("Job", job),
    ("CustomResourceDefinition", |o, _| {
        let versions: Vec<&str> = o["spec"]["versions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v["name"].as_str())
            .collect();
        let established = o["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Established" && c["status"] == "True");
        let short: Vec<&str> = o["spec"]["names"]["shortNames"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        vec![
            name(o),
            s(&o["spec"]["scope"]),
            json!(versions.join(",")),
            o["metadata"]["creationTimestamp"].clone(),
            s(&o["spec"]["group"]),
            s(&o["spec"]["names"]["kind"]),
            json!(short.join(",")),
            json!(established),
        ]
    }),
    ("Node", |o, now| {
        let ready = o["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Ready" && c["status"] == "True");
        let info = &o["status"]["nodeInfo"];
        let addr = |t: &str| {
            o["status"]["addresses"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|a| a["type"] == t)
                .map(|a| a["address"].clone())
                .unwrap_or_else(|| json!("<none>"))
        };
        vec![
            name(o),
            json!(if ready { "Ready" } else { "NotReady" }),
            json!("<none>"),
            created_age(o, now),
            s(&info["kubeletVersion"]),
            addr("InternalIP"),
            addr("ExternalIP"),
            or_unknown(&info["osImage"]),
            or_unknown(&info["kernelVersion"]),
            or_unknown(&info["containerRuntimeVersion"]),
        ]
    }),
    ("PersistentVolume", |o, now| {
        let claim = &o["spec"]["claimRef"];
        let claim = if claim.is_object() {
            json!(format!(
                "{}/{}",
                claim["namespace"].as_str().unwrap_or(""),
                claim["name"].as_str().unwrap_or("")
            ))
        } else {
            json!("")
        };
        vec![
            name(o),
            s(&o["spec"]["capacity"]["storage"]),
            modes(&o["spec"]["accessModes"]),
            s(&o["spec"]["persistentVolumeReclaimPolicy"]),
            s(&o["status"]["phase"]),
            claim,
            s(&o["spec"]["storageClassName"]),
            unset(&o["spec"]["volumeAttributesClassName"]),
            s(&o["status"]["reason"]),
            created_age(o, now),
            s(&o["spec"]["volumeMode"]),
        ]
    }),
    ("StorageClass", |o, now| {
        let default =
            o["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"] == "true";
        let n = o["metadata"]["name"].as_str().unwrap_or("");
        vec![
            json!(if default {
                format!("{n} (default)")
            } else {
                n.to_owned()
            }),
            s(&o["provisioner"]),
            json!(o["reclaimPolicy"].as_str().unwrap_or("Delete")),
            json!(o["volumeBindingMode"].as_str().unwrap_or("Immediate")),
            json!(o["allowVolumeExpansion"].as_bool().unwrap_or(false)),
            created_age(o, now),
        ]
    }),
    ("Endpoints", |o, now| {
        let eps: Vec<String> = o["subsets"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|ss| {
                let ports: Vec<i64> = ss["ports"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|p| p["port"].as_i64())
                    .collect();
                ss["addresses"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .flat_map(move |a| {
                        let ip = a["ip"].as_str().unwrap_or("").to_owned();
                        let ports = ports.clone();
                        ports.into_iter().map(move |p| format!("{ip}:{p}"))
                    })
            })
            .collect();
        vec![
            name(o),
            json!(if eps.is_empty() {
                "<none>".to_owned()
            } else {
                eps.join(",")
            }),
            created_age(o, now),
        ]
    }),
];

/// The cells of a kind, if it is one the table knows.
pub(super) fn for_kind(kind: &str) -> Option<Cells> {
    CELLS.iter().find(|(k, _)| *k == kind).map(|(_, c)| *c)
}

fn name(o: &Value) -> Value {
    o["metadata"]["name"].clone()
}

fn s(v: &Value) -> Value {
    json!(v.as_str().unwrap_or(""))
}

fn or_unknown(v: &Value) -> Value {
    json!(v.as_str().filter(|s| !s.is_empty()).unwrap_or("<unknown>"))
}

fn unset(v: &Value) -> Value {
    json!(v.as_str().unwrap_or("<unset>"))
}

fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

fn count(v: &Value) -> usize {
    v.as_object().map(|m| m.len()).unwrap_or(0)
}

fn ready_of(ready: Option<i64>, want: Option<i64>) -> Value {
    json!(format!("{}/{}", ready.unwrap_or(0), want.unwrap_or(0)))
}

/// `k=v,k2=v2` in key order, or `<none>`.
fn labels(v: &Value) -> Value {
    match v.as_object() {
        Some(m) if !m.is_empty() => json!(m
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
            .collect::<Vec<_>>()
            .join(",")),
        _ => json!("<none>"),
    }
}

fn selector(sel: &Value) -> Value {
    let mut parts: Vec<String> = Vec::new();
    if let Some(m) = sel["matchLabels"].as_object() {
        parts.extend(
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or(""))),
        );
    }
    for e in sel["matchExpressions"].as_array().into_iter().flatten() {
        let vals: Vec<&str> = e["values"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let key = e["key"].as_str().unwrap_or("");
        parts.push(match e["operator"].as_str().unwrap_or("") {
            "In" => format!("{key} in ({})", vals.join(",")),
            "NotIn" => format!("{key} notin ({})", vals.join(",")),
            "Exists" => key.to_owned(),
            _ => format!("!{key}"),
        });
    }
    json!(if parts.is_empty() {
        "<none>".to_owned()
    } else {
        parts.join(",")
    })
}

/// The pod template's container names and images.
fn containers(o: &Value) -> [Value; 2] {
    let cs = o["spec"]["template"]["spec"]["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let pick = |k: &str| {
        json!(cs
            .iter()
            .filter_map(|c| c[k].as_str())
            .collect::<Vec<_>>()
            .join(","))
    };
    [pick("name"), pick("image")]
}

fn modes(v: &Value) -> Value {
    let short = |m: &str| match m {
        "ReadWriteOnce" => "RWO",
        "ReadOnlyMany" => "ROX",
        "ReadWriteMany" => "RWX",
        "ReadWriteOncePod" => "RWOP",
        _ => "",
    };
    json!(v
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(short)
        .collect::<Vec<_>>()
        .join(","))
}

fn pod(o: &Value, now: i64) -> Vec<Value> {
    let st = &o["status"];
    let statuses = st["containerStatuses"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let total = o["spec"]["containers"]
        .as_array()
        .map(|c| c.len())
        .unwrap_or(0);
    let ready = statuses.iter().filter(|c| c["ready"] == true).count();
    let restarts: i64 = statuses.iter().map(|c| int(&c["restartCount"])).sum();
    let mut reason = st["reason"]
        .as_str()
        .or(st["phase"].as_str())
        .unwrap_or("")
        .to_owned();
    for c in statuses.iter().rev() {
        if let Some(r) = c["state"]["waiting"]["reason"]
            .as_str()
            .filter(|r| !r.is_empty())
        {
            reason = r.to_owned();
        } else if let Some(r) = c["state"]["terminated"]["reason"]
            .as_str()
            .filter(|r| !r.is_empty())
        {
            reason = r.to_owned();
        }
    }
    if !o["metadata"]["deletionTimestamp"].is_null() {
        reason = "Terminating".into();
    }
    let none = |v: &Value| json!(v.as_str().filter(|s| !s.is_empty()).unwrap_or("<none>"));
    vec![
        name(o),
        json!(format!("{ready}/{total}")),
        json!(reason),
        json!(restarts.to_string()),
        created_age(o, now),
        none(&st["podIP"]),
        none(&o["spec"]["nodeName"]),
        none(&st["nominatedNodeName"]),
        json!("<none>"),
    ]
}

fn event(o: &Value, now: i64) -> Vec<Value> {
    let since = |t: &Value| {
        json!(t
            .as_str()
            .and_then(parse_rfc3339)
            .map(|t| age(t, now))
            .unwrap_or_else(|| "<unknown>".into()))
    };
    let last = if o["lastTimestamp"].is_string() {
        &o["lastTimestamp"]
    } else {
        &o["eventTime"]
    };
    let src = &o["source"];
    let source = match (src["component"].as_str(), src["host"].as_str()) {
        (Some(c), Some(h)) if !h.is_empty() => format!("{c}, {h}"),
        (Some(c), _) => c.to_owned(),
        _ => o["reportingComponent"].as_str().unwrap_or("").to_owned(),
    };
    let io = &o["involvedObject"];
    vec![
        since(last),
        s(&o["type"]),
        s(&o["reason"]),
        json!(format!(
            "{}/{}",
            io["kind"].as_str().unwrap_or("").to_ascii_lowercase(),
            io["name"].as_str().unwrap_or("")
        )),
        s(&io["fieldPath"]),
        json!(source),
        s(&o["message"]),
        since(&o["firstTimestamp"]),
        json!(o["count"].as_i64().unwrap_or(1)),
        name(o),
    ]
}

fn service(o: &Value, now: i64) -> Vec<Value> {
    let spec = &o["spec"];
    let ports: Vec<String> = spec["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let proto = p["protocol"].as_str().unwrap_or("TCP");
            match p["nodePort"].as_i64() {
                Some(n) => format!("{}:{n}/{proto}", int(&p["port"])),
                None => format!("{}/{proto}", int(&p["port"])),
            }
        })
        .collect();
    let external: Vec<&str> = spec["externalIPs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let kind = spec["type"].as_str().unwrap_or("ClusterIP");
    let external = if !external.is_empty() {
        external.join(",")
    } else if kind == "LoadBalancer" {
        "<pending>".into()
    } else {
        "<none>".into()
    };
    vec![
        name(o),
        json!(kind),
        json!(spec["clusterIP"].as_str().unwrap_or("<none>")),
        json!(external),
        json!(if ports.is_empty() {
            "<none>".to_owned()
        } else {
            ports.join(",")
        }),
        created_age(o, now),
        labels(&spec["selector"]),
    ]
}

fn claim(o: &Value, now: i64) -> Vec<Value> {
    let spec = &o["spec"];
    let bound = o["status"]["phase"] == "Bound";
    let (cap, modes_v) = if bound {
        (
            s(&o["status"]["capacity"]["storage"]),
            modes(&o["status"]["accessModes"]),
        )
    } else {
        (json!(""), json!(""))
    };
    vec![
        name(o),
        s(&o["status"]["phase"]),
        s(&spec["volumeName"]),
        cap,
        modes_v,
        s(&spec["storageClassName"]),
        unset(&spec["volumeAttributesClassName"]),
        created_age(o, now),
        s(&spec["volumeMode"]),
    ]
}

fn job(o: &Value, now: i64) -> Vec<Value> {
    let st = &o["status"];
    let cond = |t: &str| {
        st["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == t && c["status"] == "True")
    };
    let status = if cond("Complete") {
        "Complete"
    } else if cond("Failed") {
        "Failed"
    } else if o["spec"]["suspend"] == true {
        "Suspended"
    } else {
        "Running"
    };
    let completions = o["spec"]["completions"].as_i64().unwrap_or(1);
    let duration = match (
        st["startTime"].as_str().and_then(parse_rfc3339),
        st["completionTime"].as_str().and_then(parse_rfc3339),
    ) {
        (Some(a), Some(b)) => age(a, b),
        (Some(a), None) => age(a, now),
        _ => String::new(),
    };
    let mut c = vec![
        name(o),
        json!(status),
        json!(format!("{}/{completions}", int(&st["succeeded"]))),
        json!(duration),
        created_age(o, now),
    ];
    c.extend(containers(o));
    c.push(selector(&o["spec"]["selector"]));
    c
}
