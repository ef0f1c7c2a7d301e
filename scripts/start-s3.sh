#!/usr/bin/env bash
# Start a throwaway S3 server (moto) for berth's tests, with key checking on.
#
#   scripts/start-s3.sh                  (idempotent)
#   BERTH_TEST_S3_PORT=9000              (TCP port on 127.0.0.1)
#
# Installs `moto[server]` 5.2 with pip when it is missing (about 35 s), starts
# moto's server on 127.0.0.1 (through a small launcher that fixes three moto
# bugs, see below), and turns on its IAM authentication: an IAM
# user `berth` with an allow-all policy and one access key is created through
# moto's IAM API while auth is still off, then `/moto-api/reset-auth 0` makes
# every later request need that key (a wrong secret answers
# SignatureDoesNotMatch, an unknown key InvalidAccessKeyId).
#
# Writes the environment the tests read to /tmp/berth-s3-<port>.env:
#   BERTH_TEST_S3_ENDPOINT, BERTH_TEST_S3_ACCESS_KEY_ID,
#   BERTH_TEST_S3_SECRET_ACCESS_KEY, and a second key of the same user in
#   BERTH_TEST_S3_ACCESS_KEY_ID_2, BERTH_TEST_S3_SECRET_ACCESS_KEY_2
# Stdout is `# env: <that file>` and, as the last line, the endpoint URL;
# everything else goes to stderr. So this works:
#   scripts/start-s3.sh >/dev/null && source /tmp/berth-s3-9000.env
# When a server started by this script already answers on the port, it is
# reused with the keys of its env file. Stop it with scripts/stop-s3.sh.
set -euo pipefail

PORT="${BERTH_TEST_S3_PORT:-9000}"
BASE="/tmp/berth-s3-${PORT}"
PIDFILE="${BASE}.pid"
ENVFILE="${BASE}.env"
LOG="${BASE}.log"
ENDPOINT="http://127.0.0.1:${PORT}"
PYTHON="${PYTHON:-python3}"

log() { echo "start-s3: $*" >&2; }

answers() {
    "$PYTHON" - "$ENDPOINT" <<'PY' >/dev/null 2>&1
import sys, urllib.request
# /moto-api/ does not go through moto's auth and is not counted as an action.
urllib.request.urlopen(sys.argv[1] + "/moto-api/data.json", timeout=2).read()
PY
}

if [[ -s "$PIDFILE" ]] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null && answers && [[ -s "$ENVFILE" ]]; then
    log "already running on ${ENDPOINT} (pid $(cat "$PIDFILE"))"
    echo "# env: ${ENVFILE}"
    echo "$ENDPOINT"
    exit 0
fi

if ! "$PYTHON" -c 'import moto.server, flask, flask_cors' >/dev/null 2>&1; then
    log "installing moto[server] with pip"
    # The launcher below patches moto internals: keep to the tested series.
    "$PYTHON" -m pip install --quiet 'moto[server]>=5.2,<5.3' >&2
fi

# This launcher runs moto_server with three fixes (moto 5.2):
# - its SigV4 check rebuilds the URL from werkzeug's IRI, where `%2F` in
#   query values and escaped non-ASCII path bytes are decoded, so a listing
#   with a `/` in its prefix or any non-ASCII key fails with
#   SignatureDoesNotMatch (for boto3 as well): the check gets the raw
#   request target (werkzeug's RAW_URI) instead;
# - CompleteMultipartUpload answers with root element
#   `CompleteMultipartUploadResponse` where S3 sends
#   `CompleteMultipartUploadResult`, which aws-sdk-s3 (Rust) rejects;
# - an unsigned (anonymous) S3 request crashes it (KeyError, HTTP 500) where
#   S3 answers 403 AccessDenied.
LAUNCHER="${BASE}-server.py"
cat >"$LAUNCHER" <<'PY'
"""moto_server with the S3 fixes described in scripts/start-s3.sh."""
import sys

import flask
from moto.core.authorization import ActionAuthenticatorMixin
from moto import settings
from moto.core.serialize import S3Serializer
from moto.iam.access_control import S3IAMRequest
from moto.s3.exceptions import S3AccessDeniedError
from moto.server import main

_check = ActionAuthenticatorMixin._authenticate_and_authorize_action


def _check_raw(self, iam_request_cls, resource="*"):
    enforced = ActionAuthenticatorMixin.request_count >= settings.INITIAL_NO_AUTH_ACTION_COUNT
    if enforced and iam_request_cls is S3IAMRequest and "Authorization" not in self.headers:
        raise S3AccessDeniedError()
    raw = flask.request.environ.get("RAW_URI") if flask.has_request_context() else None
    if not raw:
        return _check(self, iam_request_cls, resource)
    uri = self.uri
    self.uri = "http://moto" + raw
    try:
        return _check(self, iam_request_cls, resource)
    finally:
        self.uri = uri


ActionAuthenticatorMixin._authenticate_and_authorize_action = _check_raw

_serialize = S3Serializer._serialized_result_to_response


def _serialize_fixed(self, resp, result, shape, serialized_result):
    resp = _serialize(self, resp, result, shape, serialized_result)
    if self.operation_model.name == "CompleteMultipartUpload":
        resp["body"] = resp["body"].replace(
            "CompleteMultipartUploadResponse", "CompleteMultipartUploadResult"
        )
    return resp


S3Serializer._serialized_result_to_response = _serialize_fixed
main(sys.argv[1:])
PY

if answers; then
    log "port ${PORT} already answers but not from a server this script started; stop it first"
    exit 1
fi

log "starting moto on ${ENDPOINT} (log: ${LOG})"
nohup "$PYTHON" "$LAUNCHER" -H 127.0.0.1 -p "$PORT" >"$LOG" 2>&1 &
echo $! >"$PIDFILE"

# Generous: under a saturated 2-core build the server takes long to start.
deadline=$((SECONDS + ${BERTH_START_TIMEOUT:-180}))
while ((SECONDS < deadline)); do
    if answers; then
        break
    fi
    if ! kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
        log "moto exited; see ${LOG}"
        exit 1
    fi
    sleep 0.2
done
answers || { log "moto did not answer within ${BERTH_START_TIMEOUT:-180} s; see ${LOG}"; exit 1; }

# Create the IAM user and key while auth is off, then enforce auth.
"$PYTHON" - "$ENDPOINT" "$ENVFILE" <<'PY'
import json, sys, urllib.request
import boto3

endpoint, envfile = sys.argv[1], sys.argv[2]

def reset_auth(count):
    req = urllib.request.Request(
        endpoint + "/moto-api/reset-auth", data=count.encode(), method="POST",
        headers={"Content-Type": "text/plain"})
    urllib.request.urlopen(req, timeout=10).read()

reset_auth("inf")
iam = boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1",
                   aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap")
iam.create_user(UserName="berth")
iam.put_user_policy(UserName="berth", PolicyName="allow-all", PolicyDocument=json.dumps({
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
}))
key = iam.create_access_key(UserName="berth")["AccessKey"]
# A second key of the same user, for credential rotation tests.
key2 = iam.create_access_key(UserName="berth")["AccessKey"]
reset_auth("0")
with open(envfile, "w") as f:
    f.write(f"export BERTH_TEST_S3_ENDPOINT={endpoint}\n")
    f.write(f"export BERTH_TEST_S3_ACCESS_KEY_ID={key['AccessKeyId']}\n")
    f.write(f"export BERTH_TEST_S3_SECRET_ACCESS_KEY='{key['SecretAccessKey']}'\n")
    f.write(f"export BERTH_TEST_S3_ACCESS_KEY_ID_2={key2['AccessKeyId']}\n")
    f.write(f"export BERTH_TEST_S3_SECRET_ACCESS_KEY_2='{key2['SecretAccessKey']}'\n")
PY
chmod 600 "$ENVFILE"
log "auth enforced; keys in ${ENVFILE}"
echo "# env: ${ENVFILE}"
echo "$ENDPOINT"
