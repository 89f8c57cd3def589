#!/usr/bin/env bash
# Sets up everything Fulcrum and its tests need on a fresh Debian machine:
# python3-venv, gcc and the Python headers when missing, then .venv with Fulcrum (editable,
# its compiled core built in place: src/fulcrum/core.py) and test deps.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
    echo "setup: installing python3-venv (Debian package)" >&2
    apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
fi
# The compiled core needs a C compiler and Python.h (without them Fulcrum installs its
# pure-Python core, and the test that checks which core runs fails).
if ! command -v gcc >/dev/null 2>&1 || \
        [ ! -f "$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["include"])')/Python.h" ]; then
    echo "setup: installing gcc and python3-dev (Debian packages, for the compiled core)" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc python3-dev >/dev/null
fi
# The dashboard's browser test drives Debian's chromium through its chromedriver.
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
    echo "setup: installing chromium and chromium-driver (Debian packages, for the dashboard test)" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
fi
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/pip install --quiet --disable-pip-version-check -e '.[test]'
echo "setup: ready (.venv/bin/fulcrum $(.venv/bin/fulcrum --version | tr '\n' ' ' | cut -d' ' -f2-))" >&2
