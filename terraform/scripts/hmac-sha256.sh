#!/bin/sh
# Terraform `external` program: the X-Hub-Signature-256 value of a static request body, computed the way
# GitHub signs webhook deliveries and sync_index checks them.
#
#   stdin:  {"secret": "<webhook secret>", "body": "<exact request body>"}
#   stdout: {"signature": "sha256=<hex HMAC-SHA256 of body keyed with secret>"}
#
# The secret is read from stdin only, never from the command line, so it does not show up in `ps` or in
# shell history. Needs python3 on the machine that runs terraform.
set -eu

if ! command -v python3 >/dev/null 2>&1; then
	echo "hmac-sha256.sh: python3 is required on the machine that runs terraform" >&2
	exit 1
fi

# -I: isolated mode, no PYTHON* environment variables, no user site-packages, no current directory on
# sys.path. The program below holds no single quote.
exec python3 -I -c '
import hashlib
import hmac
import json
import sys

try:
    # Bytes, so that the locale cannot change how a non-ASCII secret is decoded: JSON is UTF-8.
    query = json.loads(sys.stdin.buffer.read())
except ValueError as error:
    sys.exit(f"hmac-sha256.sh: stdin is not JSON: {error.__class__.__name__}")
if not isinstance(query, dict):
    sys.exit("hmac-sha256.sh: stdin must be a JSON object")
secret, body = query.get("secret"), query.get("body")
if not isinstance(secret, str) or not secret:
    sys.exit("hmac-sha256.sh: \"secret\" must be a non-empty string")
if not isinstance(body, str):
    sys.exit("hmac-sha256.sh: \"body\" must be a string")

digest = hmac.new(secret.encode(), body.encode(), hashlib.sha256).hexdigest()
json.dump({"signature": "sha256=" + digest}, sys.stdout)
sys.stdout.write("\n")
'
