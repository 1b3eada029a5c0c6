#!/usr/bin/env bash
# Build the release artefacts into dist/: the sdist, then from that sdist (so a broken sdist
# cannot ship) one manylinux2014 (glibc >= 2.17) abi3 wheel for CPython >= 3.9 on x86_64
# Linux. Needs Rust, Python >= 3.9 and pip; installs maturin, ziglang (a portable linker, so
# the wheel does not depend on this machine's glibc) and auditwheel into a private virtual
# environment.
#
#   scripts/build_release.sh                    # sdist + wheel into dist/
#   OUT=/tmp/dist scripts/build_release.sh
#   PROFILE=quick scripts/build_release.sh      # a Cargo profile other than release (tests)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-dist}"
VENV="${VENV:-target/release-venv}"
PROFILE="${PROFILE:-release}"
# The wheel is built from an unpacked copy of the sdist; it shares this checkout's target
# directory so that repeated builds reuse compiled dependencies.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"

python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q "maturin>=1.9,<2" ziglang auditwheel
export PATH="$(cd "$VENV" && pwd)/bin:$PATH"

rm -rf "$OUT"
maturin sdist --out "$OUT"
sdists=("$OUT"/*.tar.gz)
[[ ${#sdists[@]} -eq 1 ]] || { echo "expected one sdist in $OUT" >&2; exit 1; }

unpacked="$(mktemp -d)"
trap 'rm -rf "$unpacked"' EXIT
tar -xzf "${sdists[0]}" -C "$unpacked"
sources=("$unpacked"/*/)
maturin build --profile "$PROFILE" --strip --zig --compatibility manylinux2014 \
    --target x86_64-unknown-linux-gnu --out "$OUT" \
    --manifest-path "${sources[0]}Cargo.toml"

for wheel in "$OUT"/*.whl; do
    report="$(auditwheel show "$wheel")"
    echo "$report"
    # Fails unless the wheel really is manylinux2014 (manylinux_2_17) compatible.
    grep -q '"manylinux_2_17_x86_64"' <<<"$report"
done
ls -l "$OUT"
