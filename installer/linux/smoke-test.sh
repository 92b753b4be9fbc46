#!/usr/bin/env bash
# Check an installed Parley (after `apt-get install ./parley_<version>_<arch>.deb` on a fresh
# Debian or Ubuntu): the three commands answer, the self-test passes, and the main window opens
# on an X server (Xvfb, when xvfb-run is installed) and the app quits cleanly on SIGTERM.
set -euo pipefail
for command in parley parley-cli parley-server; do "$command" --version; done
home=$(mktemp -d)
export HOME=$home XDG_RUNTIME_DIR=$home/run
mkdir -m 700 "$XDG_RUNTIME_DIR"
cd "$home"
parley --self-test
if ! command -v xvfb-run >/dev/null 2>&1; then
  echo "smoke-test: no xvfb-run; window not checked"
  exit 0
fi
# shellcheck disable=SC2016  # expanded by the inner shell
xvfb-run -a -s "-screen 0 1280x720x24" bash -c '
  QT_QPA_PLATFORM=xcb parley -v 2> app.log &
  app=$!
  for _ in $(seq 300); do grep -q "main window shown" app.log && break; sleep 0.1; done
  kill -TERM "$app"
  wait "$app"
'
cat app.log
grep -q "main window shown" app.log
echo "smoke-test: passed"
