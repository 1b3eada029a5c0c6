#!/usr/bin/env bash
# Build the release artefacts into dist/: one manylinux2014 (glibc >= 2.17) abi3 wheel for
# CPython >= 3.9 on x86_64 Linux, and the sdist. Needs Rust, Python >= 3.9 and pip; installs
# maturin, ziglang (a portable linker, so the wheel does not depend on this machine's
# glibc) and auditwheel into a private virtual environment.
#
#   scripts/build_release.sh            # wheel + sdist into dist/
#   OUT=/tmp/dist scripts/build_release.sh
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-dist}"
VENV="${VENV:-target/release-venv}"

python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q "maturin>=1.9,<2" ziglang auditwheel
export PATH="$(cd "$VENV" && pwd)/bin:$PATH"

rm -rf "$OUT"
maturin build --release --strip --zig --compatibility manylinux2014 \
    --target x86_64-unknown-linux-gnu --out "$OUT"
maturin sdist --out "$OUT"

for wheel in "$OUT"/*.whl; do
    report="$(auditwheel show "$wheel")"
    echo "$report"
    # Fails unless the wheel really is manylinux2014 (manylinux_2_17) compatible.
    grep -q '"manylinux_2_17_x86_64"' <<<"$report"
done
ls -l "$OUT"
