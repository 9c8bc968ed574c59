#!/bin/sh
# The README's first command: install the build dependencies (and the
# clients its printed instructions use), build myxid, and run it in the
# foreground on the bundled demo configuration.
# tests/integration/test_demo_instructions.py runs the printed commands.
#
#   scripts/demo.sh            history in myxid's memory: a page resumes after
#                              a dropped connection; a restart of myxid starts
#                              a new history (the page says so)
#   scripts/demo.sh --broker   also installs and starts RabbitMQ (if it is not
#                              running) and keeps history on its streams: the
#                              page loses nothing across a restart of myxid
set -eu
cd "$(dirname "$0")/.."

broker=
case "${1:-}" in
"") ;;
--broker) broker=yes ;;
*) echo "usage: $0 [--broker]" >&2; exit 2 ;;
esac

scripts/install-deps.sh demo
[ -x configure ] || ./autogen.sh
[ -f Makefile ] || ./configure --quiet
make -j"$(nproc)" --quiet >/dev/null

if [ -n "$broker" ]; then
	command -v rabbitmq-server >/dev/null || apt-get install -y -q rabbitmq-server >/dev/null
	if ! rabbitmqctl -q status >/dev/null 2>&1; then
		# No init system to start it (a container): start it ourselves.
		install -d -o rabbitmq -g rabbitmq /run/rabbitmq
		RABBITMQ_PID_FILE=/run/rabbitmq/pid rabbitmq-server -detached
		rabbitmqctl wait --timeout 120 /run/rabbitmq/pid >/dev/null
	fi
	# Broker mode with the same configuration: Myxi's RABBITMQ_URL.
	export RABBITMQ_URL=amqp://guest:guest@127.0.0.1:5672
fi

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
