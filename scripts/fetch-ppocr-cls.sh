#!/usr/bin/env bash
# Fetch PaddleOCR's trained text-direction classifier into .cache/models (outside git) for
# the registry's test of models whose shapes static inference cannot finish
# (tests/models_registry/test_shape_probe.py).
#
# The model ships inside the `rapidocr-onnxruntime` wheel on PyPI. We `pip download` a
# pinned version without its dependencies (opencv and friends are not needed), take the
# one .onnx file out of it and check its SHA-256 before caching it.
# Idempotent: when the cached file matches the pinned checksum it does nothing.
# Exits 1 with one line on stderr when the model cannot be fetched.
set -euo pipefail

PACKAGE="rapidocr-onnxruntime"
PACKAGE_VERSION="1.4.4"
MEMBER="rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx"
MODEL_SHA256="e47acedf663230f8863ff1ab0e64dd2d82b838fceb5957146dab185a89d6215c"

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DEST_DIR="$ROOT/.cache/models"
MODEL="$DEST_DIR/ch_ppocr_mobile_v2.0_cls_infer.onnx"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"

die() { echo "fetch-ppocr-cls: $*" >&2; exit 1; }

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

if [ -f "$MODEL" ] && [ "$(sha256_of "$MODEL")" = "$MODEL_SHA256" ]; then
  exit 0
fi

[ -x "$PYTHON" ] || die "$PYTHON not found (make .venv/.installed first, or set PYTHON)"
command -v unzip >/dev/null 2>&1 || die "unzip not found (apt-get install unzip)"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

echo "fetch-ppocr-cls: pip download $PACKAGE==$PACKAGE_VERSION --no-deps (about 15 MB)"
"$PYTHON" -m pip download --quiet --no-deps --dest "$work" "$PACKAGE==$PACKAGE_VERSION" \
  >"$work/pip.log" 2>&1 || die "pip download $PACKAGE==$PACKAGE_VERSION failed: $(tail -n 1 "$work/pip.log")"
unzip -q -o "$work"/*.whl "$MEMBER" -d "$work/wheel" \
  || die "$MEMBER not found in $PACKAGE $PACKAGE_VERSION"

actual="$(sha256_of "$work/wheel/$MEMBER")"
[ "$actual" = "$MODEL_SHA256" ] \
  || die "$MEMBER from $PACKAGE $PACKAGE_VERSION has SHA-256 $actual, expected $MODEL_SHA256"

mkdir -p "$DEST_DIR"
mv -f "$work/wheel/$MEMBER" "$MODEL.tmp"
mv -f "$MODEL.tmp" "$MODEL"
echo "fetch-ppocr-cls: ${MODEL#"$ROOT"/}"
