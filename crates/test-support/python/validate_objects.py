"""Validates Kubernetes objects as an API server would.

Built-in kinds against the Kubernetes OpenAPI schemas (kubernetes-validate, strict: unknown
fields are errors). Custom resources against the openAPIV3Schema of their CRD, read from the
given CRD files, with structural-schema semantics: a field the schema does not declare is an
error wherever the API server would prune it (no x-kubernetes-preserve-unknown-fields there).

Input (stdin): {"kubernetes": "1.33.0", "crds": ["path.yaml", ...], "objects": [{...}, ...]}.
Output: one JSON line per object, {"kind", "name", "against", "errors": [...]}.
Exit status 1 if any object fails, 2 if an object's kind has no schema at all.
"""

import copy
import json
import sys

import jsonschema
import kubernetes_validate
import yaml


def structural(schema, root=False):
    """An openAPIV3Schema node as a JSON Schema with the API server's pruning made an error."""
    s = copy.deepcopy(schema)
    preserve = s.pop("x-kubernetes-preserve-unknown-fields", False)
    embedded = s.pop("x-kubernetes-embedded-resource", False)
    int_or_string = s.pop("x-kubernetes-int-or-string", False)
    nullable = s.pop("nullable", False)
    for k in [k for k in s if k.startswith("x-kubernetes-")]:
        s.pop(k)
    if int_or_string:
        s.pop("type", None)
        s["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    props = s.get("properties")
    if props is not None:
        s["properties"] = {}
        for k, v in props.items():
            # The API server validates metadata as ObjectMeta, not through the CRD schema.
            if root and k == "metadata":
                s["properties"][k] = {"type": "object"}
            else:
                s["properties"][k] = structural(v)
    if isinstance(s.get("additionalProperties"), dict):
        s["additionalProperties"] = structural(s["additionalProperties"])
    if isinstance(s.get("items"), dict):
        s["items"] = structural(s["items"])
    for k in ("allOf", "anyOf", "oneOf"):
        if isinstance(s.get(k), list):
            s[k] = [structural(x) for x in s[k]]
    if s.get("type") == "object" and not preserve and not embedded and "additionalProperties" not in s:
        s["additionalProperties"] = False
    if nullable and "type" in s:
        s["type"] = [s["type"], "null"]
    return s


def load_crds(paths):
    """(group, version, kind) -> (schema, file)."""
    out = {}
    for p in paths:
        with open(p) as f:
            for doc in yaml.safe_load_all(f):
                if not doc or doc.get("kind") != "CustomResourceDefinition":
                    continue
                spec = doc["spec"]
                for v in spec["versions"]:
                    if not v.get("served", True):
                        continue
                    schema = v.get("schema", {}).get("openAPIV3Schema", {"type": "object"})
                    out[(spec["group"], v["name"], spec["names"]["kind"])] = (structural(schema, True), p)
    return out


def validate(obj, crds, version):
    api, kind = obj.get("apiVersion", ""), obj.get("kind", "")
    group, _, ver = api.rpartition("/")
    if (group, ver, kind) in crds:
        schema, path = crds[(group, ver, kind)]
        v = jsonschema.Draft7Validator(schema)
        errors = [f"{'.'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}" for e in v.iter_errors(obj)]
        return path, errors
    try:
        kubernetes_validate.validate(obj, version, strict=True)
        return f"kubernetes {version}", []
    except kubernetes_validate.SchemaNotFoundError as e:
        return None, [str(e)]
    except kubernetes_validate.ValidationError as e:
        return f"kubernetes {version}", [f"{'.'.join(map(str, e.path)) or '(root)'}: {e.message}"]


def main():
    req = json.load(sys.stdin)
    crds = load_crds(req.get("crds", []))
    status = 0
    for obj in req["objects"]:
        against, errors = validate(obj, crds, req["kubernetes"])
        meta = obj.get("metadata", {})
        print(json.dumps({"kind": obj.get("kind"), "name": meta.get("name"), "against": against, "errors": errors}))
        if against is None:
            status = max(status, 2)
        elif errors:
            status = max(status, 1)
    sys.exit(status)


if __name__ == "__main__":
    main()
