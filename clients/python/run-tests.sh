#!/bin/sh
# Install the Python client with its test extra into a venv and run its tests.
#
#   RIPOSTE_BIN=target/debug/riposte clients/python/run-tests.sh [pytest args]
#
# RIPOSTE_BIN names the server binary the live tests start (unset: they are
# skipped, or fail under CI=true). RIPOSTE_CLIENT_VENV picks the venv
# (default /var/cache/riposte-client-venv); it is created when missing.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
venv=${RIPOSTE_CLIENT_VENV:-/var/cache/riposte-client-venv}
python=${PYTHON:-python3}

if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
fi
cd "$repo"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "./clients/python[test]"
# The build leaves build/ and *.egg-info in the source folder: remove them.
rm -rf "$here/build" "$here"/src/*.egg-info

exec "$venv/bin/python" -m pytest -p no:cacheprovider -ra "$here/tests" "$@"
