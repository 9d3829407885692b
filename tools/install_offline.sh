#!/usr/bin/env bash
# Install wheelhouse/ (built by tools/wheelhouse.sh) on an air-gapped GPU node; no network used.
#   tools/install_offline.sh [--minimal [--with-wandb]] [--editable]
# Pins from tools/wheelhouse-requirements.txt go in with --no-deps; those below "# @if-missing"
# only where the image lacks them, so the image's torch/jax/numpy stack is never touched.
# --editable installs the repo with `pip install -e .` instead of the paperclub wheel.
set -euo pipefail
cd "$(dirname "$0")/.."
REQ=tools/wheelhouse-requirements.txt
WH=wheelhouse
PY=${PYTHON:-python3}
TAGS="" EDITABLE=0
for a in "$@"; do case $a in
  --minimal) TAGS=${TAGS:-min} ;; --with-wandb) TAGS="min|wandb" ;; --editable) EDITABLE=1 ;;
  *) echo "usage: $0 [--minimal [--with-wandb]] [--editable]" >&2; exit 2 ;; esac; done

[[ -f $WH/SHA256SUMS ]] || { echo "ERROR: no $WH/SHA256SUMS: run tools/wheelhouse.sh first" >&2; exit 1; }
(cd "$WH" && sha256sum --quiet -c SHA256SUMS) || { echo "ERROR: $WH/ is corrupt or incomplete" >&2; exit 1; }

TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT
"$PY" - "$REQ" "$TAGS" >"$TMP/req.txt" <<'EOF'
import importlib.metadata as md, re, sys
if_missing = False
for line in open(sys.argv[1]):
    if line.startswith("# @if-missing"): if_missing = True
    pin = line.split("#")[0].strip()
    if not pin or (sys.argv[2] and not re.search(rf"#\s*({sys.argv[2]})\b", line)): continue
    if if_missing:
        try: print(f"keeping the image's {pin.split('==')[0]} {md.version(pin.split('==')[0])}", file=sys.stderr); continue
        except md.PackageNotFoundError: pass
    print(pin)
EOF
echo "== installing $(wc -l <"$TMP/req.txt") wheels from $WH/ with $("$PY" --version)"
"$PY" -m pip install --no-index --no-deps --find-links "$WH" -r "$TMP/req.txt"
if [[ $EDITABLE == 1 ]]; then
  "$PY" -m pip install --no-index --no-deps --no-build-isolation -e .
else
  "$PY" -m pip install --no-index --no-deps --force-reinstall "$WH"/paperclub-*.whl
fi

echo "== pip check (expected: gym-pusht wants opencv-python, -headless provides cv2; with --minimal,"
echo "   paperclub's own deps left out of the minimal set)"
"$PY" -m pip check || true

MODS="hydra omegaconf submitit mujoco gymnasium"
[[ -z $TAGS ]] && MODS="$MODS wandb gym_pusht flax optax"
[[ $TAGS == *wandb* ]] && MODS="$MODS wandb"
echo "== import check: $MODS"
PYGAME_HIDE_SUPPORT_PROMPT=1 "$PY" - $MODS <<'EOF'
import importlib, sys
dist = {"hydra": "hydra-core", "gym_pusht": "gym-pusht"}
bad = 0
for m in sys.argv[1:] + ["common"]:
    try:
        importlib.import_module(m)
        from importlib.metadata import version
        print(f"  ok  {m:10s} {version(dist.get(m, 'paperclub' if m == 'common' else m))}")
    except Exception as e:
        bad += 1; print(f"  FAIL {m}: {type(e).__name__}: {e}")
sys.exit(f"{bad} import(s) failed" if bad else 0)
EOF
echo "== done"
