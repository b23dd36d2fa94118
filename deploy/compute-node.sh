#!/bin/bash
# A compute node of the sample cluster (deploy/template.yaml), in two parts:
#   compute-node.sh install     slurmd, munge and slurm-ec2 (the part an
#                               image bakes, for example with EC2 Image Builder)
#   compute-node.sh configure   the munge key from SSM, slurmd's drop-in
#                               (get-nodename), slurmd configless against the
#                               head node, which the instance's tag names
#   compute-node.sh             both (an image that was not baked)
# No NFS and no copied slurm.conf: slurmd fetches its configuration from
# slurmctld. Idempotent. Logs to the journal (and to stderr when there is none).
#
# The launch template's user data sets, before this script:
#   SLURM_EC2_CLUSTER, SLURM_EC2_REGION, SLURM_EC2_PACKAGE_URL or SLURM_EC2_PACKAGE_S3
# For tests (never set by the template):
#   SLURM_EC2_NO_SYSTEMD=1    start the daemons directly, not by systemctl
#   SLURM_EC2_AWS_ENDPOINT    the AWS endpoint (an emulator) for SSM and S3
#   AWS_EC2_METADATA_SERVICE_ENDPOINT  the instance metadata endpoint
set -euo pipefail

if [ -z "${SLURM_EC2_LOGGING:-}" ] && command -v systemd-cat > /dev/null && [ -d /run/systemd/journal ]; then
    export SLURM_EC2_LOGGING=1
    exec systemd-cat --identifier=slurm-ec2-compute-node "$0" "$@"
fi
say() { echo "slurm-ec2-compute-node: $*" >&2; }
trap 'say "failed at line $LINENO"' ERR
# Whether the daemon of a pid file runs (without systemd: tests in a root).
running() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2> /dev/null; }

for variable in SLURM_EC2_CLUSTER SLURM_EC2_REGION; do
    [ -n "${!variable:-}" ] || { say "$variable is not set"; exit 2; }
done
munge_parameter="/slurm-ec2/$SLURM_EC2_CLUSTER/munge-key"
metadata_endpoint="${AWS_EC2_METADATA_SERVICE_ENDPOINT:-http://169.254.169.254/}"

aws_python() {
    python3 - "$@" <<'PYTHON'
import os, sys
import boto3
endpoint = os.environ.get("SLURM_EC2_AWS_ENDPOINT") or None
region = os.environ["SLURM_EC2_REGION"]
command = sys.argv[1]
if command == "s3-get":
    bucket, _, key = sys.argv[2].removeprefix("s3://").partition("/")
    boto3.client("s3", region_name=region, endpoint_url=endpoint).download_file(bucket, key, sys.argv[3])
elif command == "get-key":
    ssm = boto3.client("ssm", region_name=region, endpoint_url=endpoint)
    value = ssm.get_parameter(Name=sys.argv[2], WithDecryption=True)["Parameter"]["Value"]
    sys.stdout.buffer.write(bytes.fromhex(value))
PYTHON
}

install_part() {
    export DEBIAN_FRONTEND=noninteractive
    if ! dpkg-query -W -f='${Status}' slurmd 2> /dev/null | grep -q "ok installed"; then
        say "installing munge, slurmd and the AWS SDK for Python from Debian"
        apt-get update -q
        apt-get install -y -q munge slurmd slurm-client python3-boto3 curl
    fi
    if ! dpkg-query -W -f='${Status}' slurm-ec2 2> /dev/null | grep -q "ok installed"; then
        local deb
        deb="$(mktemp --suffix=.deb)"
        if [ -n "${SLURM_EC2_PACKAGE_S3:-}" ]; then
            aws_python s3-get "$SLURM_EC2_PACKAGE_S3" "$deb"
        else
            curl --fail --silent --show-error --location --proto '=https' --output "$deb" "$SLURM_EC2_PACKAGE_URL"
        fi
        apt-get install -y -q "$deb"
        rm -f "$deb"
    fi
    # A compute node keeps no configuration: get-nodename takes its name from
    # the instance's tags (and refuses what no node name can be), which the
    # example configuration would refuse as no node of its own.
    rm -f /etc/slurm-ec2/config.json /etc/slurm-ec2/partitions.json
    install -d /etc/systemd/system/slurmd.service.d
    cp /usr/share/slurm-ec2/slurmd.service.d/slurm-ec2.conf /etc/systemd/system/slurmd.service.d/slurm-ec2.conf
    # Started by `configure`, once the key and the head node are known.
    if [ "${SLURM_EC2_NO_SYSTEMD:-0}" != 1 ]; then
        systemctl daemon-reload
        systemctl disable slurmd 2> /dev/null || true
    fi
}

tag() {
    local token
    token="$(curl --fail --silent -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 300' "${metadata_endpoint%/}/latest/api/token")"
    curl --fail --silent -H "X-aws-ec2-metadata-token: $token" "${metadata_endpoint%/}/latest/meta-data/tags/instance/$1"
}

configure_part() {
    local key=/etc/munge/munge.key fresh head
    fresh="$(mktemp)"
    chmod 600 "$fresh"
    aws_python get-key "$munge_parameter" > "$fresh"
    [ -s "$fresh" ] || { say "SSM holds no munge key at $munge_parameter"; exit 1; }
    if ! cmp -s "$fresh" "$key"; then
        install -m 0400 -o munge -g munge "$fresh" "$key"
    fi
    rm -f "$fresh"
    head="$(tag SlurmConfServer)"
    [[ "$head" =~ ^[0-9a-fA-F.:]+$ ]] || { say "the tag SlurmConfServer holds no address: '$head'"; exit 1; }
    echo "SLURMD_OPTIONS=\"--conf-server $head\"" > /etc/default/slurmd.new
    mv /etc/default/slurmd.new /etc/default/slurmd
    if [ "${SLURM_EC2_NO_SYSTEMD:-0}" = 1 ]; then
        install -d -o munge -g munge -m 0755 /run/munge
        running /run/munge/munged.pid || runuser -u munge -- /usr/sbin/munged
        local nodename
        nodename="$(/usr/lib/slurm-ec2/get-nodename)"
        # -b: this "instance" booted long before its resume, a real one after.
        running /run/slurmd.pid || /usr/sbin/slurmd -b --conf-server "$head" -N "$nodename"
        return
    fi
    systemctl enable --now munge
    systemctl restart munge
    systemctl enable slurmd
    systemctl restart slurmd
    # The notice watcher (Spot interruptions, scheduled stops, rebalance
    # recommendations); without systemd (the deployment's test) it is not started.
    systemctl enable --now slurm-ec2-watch.service
}

case "${1:-all}" in
    install) install_part ;;
    configure) configure_part ;;
    all) install_part; configure_part ;;
    *) say "usage: compute-node.sh [install|configure]"; exit 2 ;;
esac
say "done: ${1:-all}"
