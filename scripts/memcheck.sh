#!/usr/bin/env bash
# Memory-safety run under valgrind (memcheck): nightly Rust (Miri, ASan) and cargo-fuzz are
# not available on this project's machines, Debian's valgrind is.
#
#   scripts/memcheck.sh            # Rust test binaries + Python smoke run
#   scripts/memcheck.sh rust       # only the Rust test binaries
#   scripts/memcheck.sh python     # only the Python smoke run (needs the extension built:
#                                  # maturin develop --profile quick)
#
# Needs: apt-get install -y valgrind. Not part of CI (slow). Exit status 1 on any error in
# mxopt's code: every memcheck error of a Rust test binary, and for Python the errors whose
# stack has a frame in mxopt's extension (_core*.so or an mxopt symbol); CPython's and
# NumPy's own noise (PYTHONMALLOC=malloc removes most of it) is reported as a count only.
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-all}"
out="${MEMCHECK_OUT:-target/memcheck}"
mkdir -p "$out"
status=0
VG=(valgrind --tool=memcheck --error-exitcode=1 --track-origins=yes --leak-check=no --quiet)

if [[ "$what" == all || "$what" == rust ]]; then
    # The test binaries (library unit tests and tests/*.rs), built without running them.
    mapfile -t bins < <(cargo test --no-run --message-format=json 2>/dev/null |
        python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("profile", {}).get("test") and m.get("executable"):
        print(m["executable"])')
    for bin in "${bins[@]}"; do
        name="$(basename "$bin")"
        echo "== valgrind $name"
        # Fewer proptest cases: memcheck runs ~30x slower.
        if PROPTEST_CASES="${PROPTEST_CASES:-8}" "${VG[@]}" --log-file="$out/$name.log" \
            "$bin" --test-threads=2 -q >"$out/$name.out" 2>&1; then
            echo "   ok: $(grep '^test result' "$out/$name.out" | tail -1)"
        else
            echo "   FAILED: see $out/$name.log and $out/$name.out"
            status=1
        fi
    done
fi

if [[ "$what" == all || "$what" == python ]]; then
    echo "== valgrind python smoke (scripts/memcheck_smoke.py)"
    PYTHONMALLOC=malloc valgrind --tool=memcheck --error-exitcode=0 --leak-check=no --track-origins=yes \
        --xml=yes --xml-file="$out/python.xml" "${PYTHON:-python3}" scripts/memcheck_smoke.py \
        >"$out/python.out" 2>&1 || { echo "   smoke run failed: $out/python.out"; status=1; }
    python3 - "$out/python.xml" <<'PY' || status=1
import sys
import xml.etree.ElementTree as ET

errors = ET.parse(sys.argv[1]).getroot().findall("error")
ours = []
# Leak records (memcheck lists them in XML mode whatever --leak-check says) are
# interpreter and module state alive at exit, not memory errors.
errors = [e for e in errors if not (e.findtext("kind") or "").startswith("Leak_")]
for e in errors:
    frames = e.findall("./stack/frame")
    names = [(f.findtext("obj") or "") + " " + (f.findtext("fn") or "") for f in frames]
    # A frame in the extension (…/mxopt/_core.abi3.so) or a Rust symbol of the crate.
    mine = [
        (f.findtext("obj") or "").rsplit("/", 1)[-1].startswith("_core.")
        or "mxopt" in (f.findtext("fn") or "")
        for f in frames
    ]
    if any(mine):
        ours.append((e.findtext("kind"), names[:6]))
print(f"   {len(errors)} memcheck errors in all, {len(ours)} in mxopt's extension")
for kind, names in ours:
    print("  ", kind, *names, sep="\n      ")
sys.exit(1 if ours else 0)
PY
fi
exit $status
