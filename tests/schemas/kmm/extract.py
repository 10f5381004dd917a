#!/usr/bin/env python3
"""Regenerate module.schema.json and module.strict.schema.json from the vendored KMM CRD.

The CRD's served and storage version's `schema.openAPIV3Schema` becomes a draft-07 JSON
Schema. The OpenAPI v3 structural schema Kubernetes uses is (nearly) a JSON Schema subset:
the `x-kubernetes-*` keys are kept (validators ignore unknown keywords), and
`nullable: true` becomes `"type": [T, "null"]` so a validator accepts what the API server
would.

The CRD's schema does not forbid unknown fields (no `additionalProperties: false`): the API
server prunes them, and `kubectl apply` (whose default is `--validate=strict`, server-side
field validation) rejects them. module.strict.schema.json adds `additionalProperties: false`
to every object that lists `properties` and neither has `additionalProperties` (a map) nor
`x-kubernetes-preserve-unknown-fields`, so a misspelled field fails as it does there.
`metadata` (a bare `type: object`; the server checks it as ObjectMeta) stays open.

Runs under the check-jsonschema venv's Python (it has ruamel.yaml):

    $CARGO_KMOD_HOME/tools/check-jsonschema/bin/python tests/schemas/kmm/extract.py
"""

import json
import pathlib

from ruamel.yaml import YAML

HERE = pathlib.Path(__file__).resolve().parent
CRD = HERE / "kmm.sigs.x-k8s.io_modules.yaml"
OUT = HERE / "module.schema.json"
STRICT = HERE / "module.strict.schema.json"


def plain(node):
    """A copy of `node` with `nullable: true` as a JSON Schema type union."""
    if isinstance(node, dict):
        out = {k: plain(v) for k, v in node.items()}
        if out.pop("nullable", False) and isinstance(out.get("type"), str):
            out["type"] = [out["type"], "null"]
        return out
    if isinstance(node, list):
        return [plain(v) for v in node]
    return node


def strict(node):
    """`node` with unknown fields forbidden where the API server would prune them."""
    if isinstance(node, dict):
        out = {k: (v if k == "properties" else strict(v)) for k, v in node.items()}
        if "properties" in node:
            out["properties"] = {k: strict(v) for k, v in node["properties"].items()}
            if "additionalProperties" not in node and not node.get(
                "x-kubernetes-preserve-unknown-fields"
            ):
                out["additionalProperties"] = False
        return out
    if isinstance(node, list):
        return [strict(v) for v in node]
    return node


def write(path, schema):
    path.write_text(json.dumps(schema, indent=2, ensure_ascii=False) + "\n")


def main():
    crd = YAML(typ="safe").load(CRD.read_text())
    spec = crd["spec"]
    [version] = [v for v in spec["versions"] if v.get("served") and v.get("storage")]
    schema = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": f"{spec['names']['kind']} ({spec['group']}/{version['name']})",
    }
    schema.update(plain(version["schema"]["openAPIV3Schema"]))
    write(OUT, schema)
    write(STRICT, dict(strict(schema), title=schema["title"] + ", unknown fields rejected"))


if __name__ == "__main__":
    main()
