#!/usr/bin/env bash
# Build wheelhouse/ for an air-gapped GPU node (CPython 3.12, manylinux x86_64) that already has
# torch/triton/jax/numpy/transformers & co. (see tools/wheelhouse-requirements.txt for the split).
#   tools/wheelhouse.sh            full set (everything the project imports beyond the GPU image)
#   tools/wheelhouse.sh --minimal  only the lines tagged "# min" (fits a 64 MiB transfer)
#   tools/wheelhouse.sh --minimal --with-wandb   ... plus the lines tagged "# wandb"
# Idempotent: re-runs reuse downloaded wheels and prune wheels that are no longer pinned.
# Ends with an offline resolution check (pip --dry-run --no-index) of the result.
set -euo pipefail
cd "$(dirname "$0")/.."
REQ=tools/wheelhouse-requirements.txt
OUT=wheelhouse
PIP=(${PYTHON:-python3} -m pip)
MODE=full TAGS=min
for a in "$@"; do case $a in
  --minimal) MODE=minimal ;; --with-wandb) TAGS="min|wandb" ;;
  *) echo "usage: $0 [--minimal [--with-wandb]]" >&2; exit 2 ;; esac; done
[[ $MODE == minimal && $TAGS != min ]] && MODE=minimal+wandb

TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT
# Pins of this mode, comments stripped; antlr4 is sdist-only, so it is built below instead.
if [[ $MODE != full ]]; then grep -E "^[^#].*#\s*($TAGS)\b" "$REQ"; else grep -vE '^\s*(#|$)' "$REQ"; fi \
  | sed 's/[[:space:]]*#.*//' >"$TMP/pins.txt"
grep -v '^antlr4-python3-runtime==' "$TMP/pins.txt" >"$TMP/download.txt"
ANTLR=$(grep '^antlr4-python3-runtime==' "$TMP/pins.txt")

TARGET=(--only-binary=:all: --python-version 3.12 --implementation cp --abi cp312)
for p in manylinux_2_{17..28}_x86_64 manylinux2014_x86_64; do TARGET+=(--platform "$p"); done

mkdir -p "$OUT"
echo "== downloading $(wc -l <"$TMP/download.txt") pinned wheels ($MODE) into $OUT/"
"${PIP[@]}" download --no-deps "${TARGET[@]}" -d "$OUT" -r "$TMP/download.txt" \
  || { echo "ERROR: a pinned wheel could not be downloaded for cp312/manylinux x86_64 (see above)" >&2; exit 1; }

if ! ls "$OUT"/antlr4_python3_runtime-"${ANTLR#*==}"-py3-none-any.whl >/dev/null 2>&1; then
  echo "== building $ANTLR wheel from its sdist"
  "${PIP[@]}" wheel --no-deps --no-binary=:all: "$ANTLR" -w "$OUT"
fi
echo "== building the paperclub wheel (from a copy of the non-ignored files: no build/ left here)"
rm -f "$OUT"/paperclub-*.whl
mkdir "$TMP/src" && git ls-files -co --exclude-standard -z | tar -c --null -T - | tar -x -C "$TMP/src"
"${PIP[@]}" wheel --no-deps "$TMP/src" -w "$OUT" >"$TMP/build.log" 2>&1 || { cat "$TMP/build.log"; exit 1; }

# Every pin must have exactly one wheel; wheels of other names/versions (older pins, other mode) go.
python3 - "$TMP/pins.txt" "$OUT" <<'EOF'
import pathlib, re, sys
norm = lambda s: re.sub(r"[-_.]+", "_", s).lower()
pins = {norm(n): v for n, v in (l.strip().split("==") for l in open(sys.argv[1]) if l.strip())}
found = {}
for whl in pathlib.Path(sys.argv[2]).glob("*.whl"):
    name, ver = whl.name.split("-")[:2]
    if norm(name) == "paperclub": continue
    if pins.get(norm(name)) == ver: found[norm(name)] = whl.name
    else: print(f"pruning {whl.name} (not pinned)"); whl.unlink()
missing = sorted(set(pins) - set(found))
if missing: sys.exit(f"ERROR: no wheel for: {', '.join(f'{n}=={pins[n]}' for n in missing)}")
print(f"ok: {len(found)} pinned wheels + paperclub")
EOF

# Offline self-consistency: resolve the pins WITH dependencies from the wheelhouse alone, the
# GPU image's packages standing in as empty stub wheels. Any other missing name fails here.
# (--ignore-requires-python: old pips re-check it against the running interpreter; the download
# above already checked every pin against 3.12.)
python3 - "$TMP/stubs" <<'EOF'
import sys, zipfile, pathlib
d = pathlib.Path(sys.argv[1]); d.mkdir()
# (opencv-python: gym-pusht's declared dep, provided by opencv-python-headless from the wheelhouse)
for name, ver in [("jax", "0.11.0"), ("jaxlib", "0.11.0"), ("numpy", "2.1.0"), ("ml_dtypes", "0.5.0"),
                  ("opt_einsum", "3.4.0"), ("safetensors", "0.4.0"), ("tokenizers", "0.19.0"),
                  ("opencv_python", "4.14.0.94")]:
    di = f"{name}-{ver}.dist-info"
    with zipfile.ZipFile(d / f"{name}-{ver}-py3-none-any.whl", "w") as z:
        z.writestr(f"{di}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {ver}\n")
        z.writestr(f"{di}/WHEEL", "Wheel-Version: 1.0\nGenerator: stub\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        z.writestr(f"{di}/RECORD", "")
EOF
[[ $MODE == full ]] && ls "$OUT"/paperclub-*.whl >>"$TMP/pins.txt"
echo "== offline resolution check (stubs for the GPU image: $(ls "$TMP/stubs" | cut -d- -f1 | tr '\n' ' '))"
"${PIP[@]}" install --dry-run --ignore-installed --no-index --find-links "$OUT" --find-links "$TMP/stubs" \
  "${TARGET[@]}" --ignore-requires-python --target "$TMP/target" --report "$TMP/report.json" -r "$TMP/pins.txt" -q \
  || { echo "ERROR: the wheelhouse is not self-consistent (see above)" >&2; exit 1; }
python3 -c "import json,sys; r=json.load(open(sys.argv[1]))['install']; \
s=[i['metadata']['name'] for i in r if '/stubs/' in i['download_info']['url']]; \
print(f'ok: {len(r)} distributions resolve; taken from the GPU image: {sorted(s)}')" "$TMP/report.json"

(cd "$OUT" && sha256sum -- *.whl >SHA256SUMS)
SIZE=$(du -sh --apparent-size "$OUT" | cut -f1)
cat >"$OUT/README.txt" <<EOF
paperclub wheelhouse ($MODE), built $(date -u +%Y-%m-%dT%H:%MZ) by tools/wheelhouse.sh
$(ls "$OUT"/*.whl | wc -l) wheels, $SIZE, for CPython 3.12 manylinux x86_64 (numpy 2.x).
Not included (the GPU image has them): torch, triton, jax, jaxlib, numpy, ml_dtypes, opt_einsum,
transformers, tokenizers, safetensors, accelerate, huggingface_hub.
Install on the node, from the repo root:   bash tools/install_offline.sh$([[ $MODE != full ]] && echo " --${MODE/+/ --with-}")
Verify:                                  (cd wheelhouse && sha256sum -c SHA256SUMS)
See docs/offline-gpu.md.
EOF
echo "== $OUT/: $(ls "$OUT"/*.whl | wc -l) wheels, $SIZE ($MODE)"
