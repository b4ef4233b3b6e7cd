#!/usr/bin/env bash
# The whole Kubernetes flow against a real cluster (kind, k3d, minikube, …):
# install the chart, apply the example UserPool and AppClients, read the Secret, sign up
# through the API, get a client_credentials token at the pool's domain, and check that
# an immutable edit is refused. Needs KUBECONFIG, and
# IMAGE (default cognate:dev) loaded into / pullable by the cluster (build it with
# `docker build -t cognate:dev .`; for kind: `kind load docker-image cognate:dev`).
set -euo pipefail
cd "$(dirname "$0")/.."
: "${KUBECONFIG:?set KUBECONFIG to a cluster to run the end-to-end flow}"
IMAGE=${IMAGE:-cognate:dev}
NS=${NS:-cognate-e2e}
export PATH="$PWD/.tools/bin:$PATH"
command -v helm >/dev/null || scripts/check-k8s.sh >/dev/null
kubectl create namespace "$NS" --dry-run=client -o yaml | kubectl apply -f -
helm upgrade --install cognate charts/cognate -n "$NS" --wait --timeout 5m \
  --set image.repository="${IMAGE%:*}" --set image.tag="${IMAGE##*:}" --set image.pullPolicy=IfNotPresent
kubectl -n "$NS" apply -f examples/k8s/userpool.yaml -f examples/k8s/appclient.yaml \
  -f examples/k8s/appclient-machine.yaml
kubectl -n "$NS" wait userpool/shop --for=condition=Ready --timeout=120s
kubectl -n "$NS" wait appclient/shop-web appclient/shop-orders-job --for=condition=Ready --timeout=120s
field() { kubectl -n "$NS" get secret "${2:-shop-web}" -o "jsonpath={.data.$1}" | base64 -d; }
client_id=$(field COGNITO_CLIENT_ID); client_secret=$(field COGNITO_CLIENT_SECRET); pool_id=$(field COGNITO_USER_POOL_ID)
echo "pool $pool_id, client $client_id, issuer $(field COGNITO_ISSUER_URL)"

kubectl -n "$NS" port-forward svc/cognate 19229:9229 >/dev/null 2>&1 &
pf=$!
trap 'kill $pf 2>/dev/null || true' EXIT
for _ in $(seq 50); do curl -fs http://127.0.0.1:19229/healthz >/dev/null && break; sleep 0.2; done
user="e2e-$RANDOM@example.com"
hash=$(printf '%s' "$user$client_id" | openssl dgst -sha256 -hmac "$client_secret" -binary | base64)
curl -fsS http://127.0.0.1:19229/ -H 'content-type: application/x-amz-json-1.1' \
  -H 'x-amz-target: AWSCognitoIdentityProviderService.SignUp' \
  -d "{\"ClientId\":\"$client_id\",\"SecretHash\":\"$hash\",\"Username\":\"$user\",\"Password\":\"Passw0rd!long\",\"UserAttributes\":[{\"Name\":\"email\",\"Value\":\"$user\"},{\"Name\":\"custom:tenant\",\"Value\":\"t1\"}]}" \
  | grep -q UserSub && echo "signed up $user"

# The machine client gets a token with the resource server's scope at the pool's domain
# (the Secret's COGNITO_TOKEN_URL, reached here through the port-forward).
token_url=$(field COGNITO_TOKEN_URL shop-orders-job)
echo "token endpoint $token_url"
curl -fsS "http://127.0.0.1:19229/domains/${token_url#*/domains/}" \
  -u "$(field COGNITO_CLIENT_ID shop-orders-job):$(field COGNITO_CLIENT_SECRET shop-orders-job)" \
  -d grant_type=client_credentials -d scope=https://api.shop.example.com/orders.read \
  | grep -q access_token && echo "client_credentials token: ok"

# The API server must refuse an immutable edit (CEL), naming what is immutable.
if out=$(kubectl -n "$NS" patch userpool shop --type merge -p '{"spec":{"usernameAttributes":["phone_number"]}}' 2>&1); then
  echo "immutable edit was accepted: $out"; exit 1
fi
grep -q "usernameAttributes is immutable" <<<"$out" && echo "immutable edit refused: ok"
