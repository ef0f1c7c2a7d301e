#!/usr/bin/env bash
# Start an OpenSSH server (Debian's openssh-server) for berth's sftp tests,
# on 127.0.0.1 only, with its own config and host key, and a test user that
# logs in with a password and owns an empty home directory (idempotent).
#
#   scripts/start-sftp.sh
#   BERTH_TEST_SFTP_PORT=2222       (TCP port on 127.0.0.1)
#   BERTH_SFTP_STATE=/tmp/berth-sftp (config, host key, pid, log, env file)
#
# Installs openssh-server with apt when sshd is missing (its own service is
# not started). Writes the environment the tests read to <state>/env
# (BERTH_TEST_SFTP_HOST, _PORT, _USER, _PASS and _HOME, the user's home,
# where what the tests write lands). Stdout is `# env: <that file>`, and
# the address as the last line. Stop it with scripts/stop-sftp.sh.
set -euo pipefail

PORT="${BERTH_TEST_SFTP_PORT:-2222}"
STATE="${BERTH_SFTP_STATE:-/tmp/berth-sftp}"
PIDFILE="${STATE}/sshd.pid"
LOG="${STATE}/sshd.log"
ENVFILE="${STATE}/env"
USER_NAME="berthsftp"
HOME_DIR="/home/${USER_NAME}"

log() { echo "start-sftp: $*" >&2; }

answers() {
    # sshd greets with its version line first.
    timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/${PORT}; head -c 4 <&3" 2>/dev/null | grep -q '^SSH-'
}

if [[ -s "${PIDFILE}" && -s "${ENVFILE}" ]] && kill -0 "$(cat "${PIDFILE}")" 2>/dev/null && answers; then
    log "already running on 127.0.0.1:${PORT} (pid $(cat "${PIDFILE}"))"
    echo "# env: ${ENVFILE}"
    echo "127.0.0.1:${PORT}"
    exit 0
fi

if [[ ! -x /usr/sbin/sshd ]]; then
    log "installing openssh-server"
    export DEBIAN_FRONTEND=noninteractive
    # Debian's package starts its service on install; policy-rc.d stops that.
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends openssh-server >&2
fi

if answers; then
    log "port ${PORT} already answers but was not started by this script; set BERTH_TEST_SFTP_PORT"
    exit 1
fi

mkdir -p "${STATE}" /run/sshd
chmod 700 "${STATE}"
[[ -f "${STATE}/host_key" ]] || ssh-keygen -q -t ed25519 -N '' -f "${STATE}/host_key"
id "${USER_NAME}" >/dev/null 2>&1 || useradd --create-home --home-dir "${HOME_DIR}" --shell /bin/sh "${USER_NAME}"
PASSWORD="$(head -c 18 /dev/urandom | base64 | tr -d '/+=')"
echo "${USER_NAME}:${PASSWORD}" | chpasswd
cat >"${STATE}/sshd_config" <<CONF
ListenAddress 127.0.0.1
Port ${PORT}
HostKey ${STATE}/host_key
PidFile ${PIDFILE}
AllowUsers ${USER_NAME}
PasswordAuthentication yes
KbdInteractiveAuthentication no
PubkeyAuthentication no
UsePAM no
PermitRootLogin no
Subsystem sftp internal-sftp
MaxStartups 100:30:200
MaxSessions 100
CONF

log "starting sshd on 127.0.0.1:${PORT} (log: ${LOG})"
/usr/sbin/sshd -f "${STATE}/sshd_config" -E "${LOG}"

deadline=$((SECONDS + ${BERTH_START_TIMEOUT:-60}))
until answers; do
    if ((SECONDS >= deadline)); then
        log "sshd did not answer; its log:"
        cat "${LOG}" >&2
        exit 1
    fi
    sleep 0.1
done
cat >"${ENVFILE}" <<ENV
BERTH_TEST_SFTP_HOST=127.0.0.1
BERTH_TEST_SFTP_PORT=${PORT}
BERTH_TEST_SFTP_USER=${USER_NAME}
BERTH_TEST_SFTP_PASS=${PASSWORD}
BERTH_TEST_SFTP_HOME=${HOME_DIR}
ENV
chmod 600 "${ENVFILE}"
log "ready (pid $(cat "${PIDFILE}"))"
echo "# env: ${ENVFILE}"
echo "127.0.0.1:${PORT}"
