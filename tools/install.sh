#!/usr/bin/env bash
# Create the venv and install paperclub with all extras. Called by `make install` (and so by make test/reproduce).
#   TORCH_SPEC   what to install for torch first. Default: torch==2.13.0 (the CPU wheel on our machines) when no
#                NVIDIA GPU is visible; nothing when one is (then pip takes a CUDA torch within pyproject's range).
#   EXTRAS       pip extras to install (default all,ray,dev: every package, the Ray launcher, the test tools).
#   SKIP_APT=1   do not apt-get the Debian packages in tools/apt-packages.txt (text corpus, Fashion-MNIST, and
#                munge + slurm for the local SLURM cluster of the launcher tests). apt-get needs root; without
#                it, a warning lists what is missing and those tests skip or the data must come from elsewhere.
set -euo pipefail
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
EXTRAS=${EXTRAS:-all,ray,dev}

if [[ ! -x "$VENV/bin/python" ]]; then
  echo "[install] creating $VENV with $($PYTHON --version)"
  "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)
"${PIP[@]}" install --upgrade pip

if [[ -z "${TORCH_SPEC+x}" ]]; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then TORCH_SPEC=""; else TORCH_SPEC="torch==2.13.0"; fi
fi
if [[ -n "$TORCH_SPEC" ]] && ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  echo "[install] $TORCH_SPEC (no GPU visible: the CPU build; override with TORCH_SPEC=...)"
  "${PIP[@]}" install "$TORCH_SPEC"
fi

echo "[install] paperclub[$EXTRAS]"
"${PIP[@]}" install -e ".[$EXTRAS]"

if [[ "${SKIP_APT:-0}" != 1 ]]; then
  mapfile -t pkgs < <(sed -e 's/#.*//' -e '/^\s*$/d' tools/apt-packages.txt)
  missing=()
  for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if (( ${#missing[@]} )); then
    if command -v apt-get >/dev/null 2>&1 && [[ $(id -u) == 0 ]]; then
      echo "[install] Debian packages: ${missing[*]}"
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    else
      echo "[install] WARNING: cannot apt-get (not root or no apt). Missing Debian packages: ${missing[*]}" >&2
      echo "[install]          the text corpus and Fashion-MNIST need their data packages (or PAPERCLUB_DATA at a" >&2
      echo "[install]          prepared copy); without munge and slurm the SLURM launcher tests are skipped." >&2
    fi
  fi
fi
echo "[install] done: $("$VENV/bin/python" -c 'import torch; print("torch", torch.__version__)')"
