//! Discovery documents and the OpenAPI v3 index kubectl needs.

use crate::registry::{Registry, ResourceType};
use serde_json::{json, Map, Value};

/// `/version`. It reports 1.31: kubectl's version dispatcher then runs a kubectl that sends
/// JSON, while newer ones send protobuf for built-in kinds, which this server answers with 415.
pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": "31",
        "gitVersion": "v1.31.0-kube-emulator",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.22.0",
        "compiler": "gc",
        "platform": "linux/amd64"
    })
}

/// `/api`.
pub fn core_versions(addr: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": addr}]
    })
}

fn group_doc(reg: &Registry, g: &str) -> Value {
    let versions: Vec<Value> = reg
        .versions(g)
        .iter()
        .map(|v| json!({"groupVersion": format!("{g}/{v}"), "version": v}))
        .collect();
    json!({
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": g,
        "versions": versions,
        "preferredVersion": versions.first().cloned().unwrap_or(Value::Null),
    })
}

/// `/apis`.
pub fn groups(reg: &Registry) -> Value {
    let groups: Vec<Value> = reg
        .groups()
        .iter()
        .map(|g| {
            let mut d = group_doc(reg, g);
            if let Some(m) = d.as_object_mut() {
                m.remove("kind");
                m.remove("apiVersion");
            }
            d
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/{group}`, if the group exists.
pub fn group(reg: &Registry, g: &str) -> Option<Value> {
    (!reg.versions(g).is_empty()).then(|| group_doc(reg, g))
}

/// `/api/v1` or `/apis/{group}/{version}`, if served.
pub fn resources(reg: &Registry, g: &str, v: &str) -> Option<Value> {
    let types = reg.in_group_version(g, v);
    if types.is_empty() {
        return None;
    }
    let gv = if g.is_empty() {
        v.to_owned()
    } else {
        format!("{g}/{v}")
    };
    let resources: Vec<Value> = types.iter().flat_map(|t| t.discovery()).collect();
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}),
    )
}

fn gv_path(g: &str, v: &str) -> String {
    if g.is_empty() {
        format!("api/{v}")
    } else {
        format!("apis/{g}/{v}")
    }
}

fn hash(types: &[&ResourceType]) -> String {
    // FNV-1a over the served kinds: changes when a CRD adds or removes one.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for t in types {
        for b in format!("{}/{}/{}/{}", t.group, t.version, t.kind, t.namespaced).bytes() {
            h ^= b as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{h:016X}")
}

/// `/openapi/v3`: one entry per group/version.
pub fn openapi_index(reg: &Registry) -> Value {
    let mut paths = Map::new();
    let mut gvs: Vec<(String, String)> = Vec::new();
    for t in reg.types() {
        let gv = (t.group.clone(), t.version.clone());
        if !gvs.contains(&gv) {
            gvs.push(gv);
        }
    }
    for (g, v) in gvs {
        let types = reg.in_group_version(&g, &v);
        let p = gv_path(&g, &v);
        paths.insert(
            p.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={}", hash(&types))}),
        );
    }
    json!({"paths": paths})
}

/// `/openapi/v3/{api/v1 | apis/g/v}`: a patch operation per kind, tagged with its
/// group-version-kind and accepting `fieldValidation`, so kubectl validates server-side.
/// Strategic merge patch is not advertised: kubectl then computes it from its built-in types.
pub fn openapi_gv(reg: &Registry, g: &str, v: &str) -> Option<Value> {
    let types = reg.in_group_version(g, v);
    if types.is_empty() {
        return None;
    }
    let prefix = if g.is_empty() {
        format!("/api/{v}")
    } else {
        format!("/apis/{g}/{v}")
    };
    let mut paths = Map::new();
    let mut schemas = Map::new();
    let patch_ref = json!({"schema": {"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.Patch"}});
    for t in types {
        let path = if t.namespaced {
            format!("{prefix}/namespaces/{{namespace}}/{}/{{name}}", t.plural)
        } else {
            format!("{prefix}/{}/{{name}}", t.plural)
        };
        let gvk = json!({"group": t.group, "version": t.version, "kind": t.kind});
        let mut params = vec![
            json!({"name": "name", "in": "path", "required": true, "schema": {"type": "string", "uniqueItems": true}}),
            json!({"name": "dryRun", "in": "query", "schema": {"type": "string", "uniqueItems": true}}),
            json!({"name": "fieldManager", "in": "query", "schema": {"type": "string", "uniqueItems": true}}),
            json!({"name": "fieldValidation", "in": "query", "description": "fieldValidation instructs the server on how to handle objects in the request containing unknown or duplicate fields.", "schema": {"type": "string", "uniqueItems": true}}),
            json!({"name": "force", "in": "query", "schema": {"type": "boolean", "uniqueItems": true}}),
        ];
        if t.namespaced {
            params.push(json!({"name": "namespace", "in": "path", "required": true, "schema": {"type": "string", "uniqueItems": true}}));
        }
        paths.insert(
            path,
            json!({
                "patch": {
                    "operationId": format!("patch{}", t.kind),
                    "x-kubernetes-action": "patch",
                    "x-kubernetes-group-version-kind": gvk,
                    "parameters": params,
                    "requestBody": {"content": {
                        "application/json-patch+json": patch_ref,
                        "application/merge-patch+json": patch_ref,
                        "application/apply-patch+yaml": patch_ref,
                    }},
                    "responses": {"200": {"description": "OK"}}
                }
            }),
        );
        let schema_name = if t.group.is_empty() {
            format!("io.k8s.api.core.{}.{}", t.version, t.kind)
        } else {
            format!("{}.{}.{}", t.group, t.version, t.kind)
        };
        schemas.insert(
            schema_name,
            json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true, "x-kubernetes-group-version-kind": [gvk]}),
        );
    }
    schemas.insert(
        "io.k8s.apimachinery.pkg.apis.meta.v1.Patch".into(),
        json!({"type": "object", "description": "Patch is provided to give a concrete name and type to the Kubernetes PATCH request body."}),
    );
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.31.0"},
        "paths": paths,
        "components": {"schemas": schemas}
    }))
}
