#!/bin/sh
# The README's first command: install the build dependencies (and the
# clients its printed instructions use), build myxid, and run it in the
# foreground on the bundled demo configuration.
# tests/integration/test_demo_instructions.py runs the printed commands.
set -eu
cd "$(dirname "$0")/.."

scripts/install-deps.sh demo
[ -x configure ] || ./autogen.sh
[ -f Makefile ] || ./configure --quiet
make -j"$(nproc)" --quiet >/dev/null

cat <<'MSG'

myxid is starting on the demo configuration (etc/myxid.conf).

  Open:       http://127.0.0.1:5005/   (the live deployment log: sign in as
              demo-alice or demo-bob, pick a deployment, publish to it)
  Client:     http://127.0.0.1:5005/myxid.js
  WebSocket:  ws://127.0.0.1:5005/
  Try it:     /usr/bin/python3 -m websockets ws://127.0.0.1:5005/
              then type:
              {"action":"Authenticate","payload":{"session_id":"demo-alice"}}
              {"action":"Subscribe","payload":{"exchange":"deployment","routing_key":"d1"}}
  Publish:    curl -s -H 'Authorization: Bearer demo-publish-key' \
                -d '{"exchange":"deployment","routing_key":"d1","event":"LogLine","payload":{"line":"Deploying..."}}' \
                http://127.0.0.1:5005/publish

Stop it with Ctrl-C.
MSG
exec ./server/myxid -c etc/myxid.conf -P plugins/.libs
