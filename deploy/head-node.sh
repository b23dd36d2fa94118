#!/bin/bash
# The head node of the sample cluster (deploy/template.yaml): Slurm and munge
# from Debian's packages, slurm-ec2 from its .deb, a munge key made at first
# boot and kept as an SSM SecureString that only this cluster's roles can
# read, the configuration from the stack's parameters, slurm.conf from
# generate-conf --from-ec2, configless Slurm, and the change-state timer.
# Idempotent: run again, it changes nothing that is already so. Logs to the
# journal (and to stderr when there is none).
#
# The template's user data sets, before this script:
#   SLURM_EC2_CLUSTER         ClusterName
#   SLURM_EC2_REGION          the stack's Region
#   SLURM_EC2_SUBNETS         the compute subnets, comma-separated
#   SLURM_EC2_LAUNCH_TEMPLATE the compute launch template's id
#   SLURM_EC2_COMPUTE_TYPE    the compute instance type
#   SLURM_EC2_MAX_NODES       MaxNodes
#   SLURM_EC2_PURCHASING      on-demand or spot
#   SLURM_EC2_PACKAGE_URL     the .deb's https URL, or
#   SLURM_EC2_PACKAGE_S3      s3://bucket/key of the .deb
# For tests (never set by the template), so that the script runs in a root
# without systemd against an emulator:
#   SLURM_EC2_NO_SYSTEMD=1    start the daemons directly, not by systemctl, and
#                             with Slurm plugins that need no cgroups
#   SLURM_EC2_AWS_ENDPOINT    the AWS endpoint (an emulator) for EC2, SSM and S3
#   AWS_EC2_METADATA_SERVICE_ENDPOINT  the instance metadata endpoint
#   SLURM_EC2_SLURM_PORTS     "<slurmctld port>,<slurmd port>" instead of Slurm's
#
# The head node's unit slurm-ec2-teardown.service terminates every instance of
# the cluster and deletes the munge key when the head node powers off (not on
# a reboot): deleting the stack leaves nothing running.
set -euo pipefail

if [ -z "${SLURM_EC2_LOGGING:-}" ] && command -v systemd-cat > /dev/null && [ -d /run/systemd/journal ]; then
    export SLURM_EC2_LOGGING=1
    exec systemd-cat --identifier=slurm-ec2-head-node "$0" "$@"
fi
say() { echo "slurm-ec2-head-node: $*" >&2; }
trap 'say "failed at line $LINENO"' ERR
# Whether the daemon of a pid file runs (without systemd: tests in a root).
running() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2> /dev/null; }

for variable in SLURM_EC2_CLUSTER SLURM_EC2_REGION SLURM_EC2_SUBNETS SLURM_EC2_LAUNCH_TEMPLATE \
                SLURM_EC2_COMPUTE_TYPE SLURM_EC2_MAX_NODES SLURM_EC2_PURCHASING; do
    [ -n "${!variable:-}" ] || { say "$variable is not set"; exit 2; }
done
munge_parameter="/slurm-ec2/$SLURM_EC2_CLUSTER/munge-key"

install_packages() {
    export DEBIAN_FRONTEND=noninteractive
    if ! dpkg-query -W -f='${Status}' slurmctld 2> /dev/null | grep -q "ok installed"; then
        say "installing munge, Slurm and the AWS SDK for Python from Debian"
        apt-get update -q
        apt-get install -y -q munge slurmctld slurm-client python3-boto3 curl
    fi
    if ! dpkg-query -W -f='${Status}' slurm-ec2 2> /dev/null | grep -q "ok installed"; then
        local deb
        deb="$(mktemp --suffix=.deb)"
        if [ -n "${SLURM_EC2_PACKAGE_S3:-}" ]; then
            say "fetching $SLURM_EC2_PACKAGE_S3"
            aws_python s3-get "$SLURM_EC2_PACKAGE_S3" "$deb"
        else
            say "fetching $SLURM_EC2_PACKAGE_URL"
            curl --fail --silent --show-error --location --proto '=https' --output "$deb" "$SLURM_EC2_PACKAGE_URL"
        fi
        apt-get install -y -q "$deb"
        rm -f "$deb"
    fi
}

# SSM and S3 through boto3 (Debian's python3-boto3): no AWS CLI needed.
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
elif command == "put-key":
    ssm = boto3.client("ssm", region_name=region, endpoint_url=endpoint)
    try:
        ssm.put_parameter(Name=sys.argv[2], Type="SecureString", Overwrite=False,
                          Value=open(sys.argv[3], "rb").read().hex())
    except ssm.exceptions.ParameterAlreadyExists:
        pass
elif command == "get-key":
    ssm = boto3.client("ssm", region_name=region, endpoint_url=endpoint)
    value = ssm.get_parameter(Name=sys.argv[2], WithDecryption=True)["Parameter"]["Value"]
    sys.stdout.buffer.write(bytes.fromhex(value))
PYTHON
}

# One key for the cluster: the first boot makes it, and every boot (and every
# compute node) reads the one SSM holds, so that a lost race changes nothing.
munge_key() {
    local key=/etc/munge/munge.key fresh
    fresh="$(mktemp)"
    chmod 600 "$fresh"
    if ! aws_python get-key "$munge_parameter" > "$fresh" 2> /dev/null || [ ! -s "$fresh" ]; then
        say "making the cluster's munge key and keeping it in SSM as $munge_parameter"
        dd if=/dev/urandom of="$fresh" bs=1024 count=1 status=none
        aws_python put-key "$munge_parameter" "$fresh"
        aws_python get-key "$munge_parameter" > "$fresh"
    fi
    if ! cmp -s "$fresh" "$key"; then
        install -m 0400 -o munge -g munge "$fresh" "$key"
    fi
    rm -f "$fresh"
}

metadata_endpoint="${AWS_EC2_METADATA_SERVICE_ENDPOINT:-http://169.254.169.254/}"
metadata() {
    local token
    token="$(curl --fail --silent -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 300' \
        "${metadata_endpoint%/}/latest/api/token")"
    curl --fail --silent -H "X-aws-ec2-metadata-token: $token" "${metadata_endpoint%/}/latest/meta-data/$1"
}

# The programs' environment beyond the instance profile: the Region, and what
# only tests set (an emulator, a metadata stand-in).
environment_json() {
    local pairs="\"AWS_DEFAULT_REGION\": \"$SLURM_EC2_REGION\""
    if [ -n "${SLURM_EC2_AWS_ENDPOINT:-}" ]; then
        pairs="$pairs, \"AWS_ENDPOINT_URL_EC2\": \"$SLURM_EC2_AWS_ENDPOINT\""
    fi
    if [ -n "${AWS_EC2_METADATA_SERVICE_ENDPOINT:-}" ]; then
        pairs="$pairs, \"AWS_EC2_METADATA_SERVICE_ENDPOINT\": \"$AWS_EC2_METADATA_SERVICE_ENDPOINT\""
    fi
    echo "{$pairs}"
}

configure_slurm_ec2() {
    local address subnets
    address="$(metadata local-ipv4)"
    # Where compute nodes fetch the configuration: the instance's tag says.
    if [ -n "${SLURM_EC2_SLURM_PORTS:-}" ]; then address="$address:${SLURM_EC2_SLURM_PORTS%,*}"; fi
    subnets="$(printf '"%s",' ${SLURM_EC2_SUBNETS//,/ })"
    cat > /etc/slurm-ec2/config.json.new <<EOF
{
  "LogLevel": "INFO",
  "LogFileName": "/var/log/slurm-ec2/slurm-ec2.log",
  "StateDirectory": "/var/lib/slurm-ec2",
  "SlurmBinPath": "/usr/bin",
  "ClusterName": "$SLURM_EC2_CLUSTER",
  "Environment": $(environment_json),
  "SlurmConf": {
    "PrivateData": "CLOUD",
    "ResumeProgram": "/usr/lib/slurm-ec2/resume",
    "SuspendProgram": "/usr/lib/slurm-ec2/suspend",
    "ResumeFailProgram": "/usr/lib/slurm-ec2/suspend",
    "ResumeRate": 100,
    "SuspendRate": 100,
    "ResumeTimeout": 600,
    "SuspendTime": 350,
    "TreeWidth": 60000
  }
}
EOF
    local options='"OnDemandOptions": {"AllocationStrategy": "lowest-price"}'
    if [ "$SLURM_EC2_PURCHASING" = spot ]; then options='"SpotOptions": {"AllocationStrategy": "price-capacity-optimized"}'; fi
    cat > /etc/slurm-ec2/partitions.json.new <<EOF
{
  "Partitions": [{
    "PartitionName": "aws",
    "PartitionOptions": {"Default": "YES", "MaxTime": "INFINITE"},
    "NodeGroups": [{
      "NodeGroupName": "node",
      "MaxNodes": $SLURM_EC2_MAX_NODES,
      "Region": "$SLURM_EC2_REGION",
      "SlurmSpecifications": {"Weight": "1"},
      "PurchasingOption": "$SLURM_EC2_PURCHASING",
      $options,
      "LaunchTemplateSpecification": {"LaunchTemplateId": "$SLURM_EC2_LAUNCH_TEMPLATE", "Version": "\$Latest"},
      "LaunchTemplateOverrides": [{"InstanceType": "$SLURM_EC2_COMPUTE_TYPE"}],
      "SubnetIds": [${subnets%,}],
      "Tags": [{"Key": "SlurmConfServer", "Value": "$address"}]
    }]
  }]
}
EOF
    for file in config.json partitions.json; do
        if ! cmp -s "/etc/slurm-ec2/$file.new" "/etc/slurm-ec2/$file"; then
            mv "/etc/slurm-ec2/$file.new" "/etc/slurm-ec2/$file"
        else
            rm -f "/etc/slurm-ec2/$file.new"
        fi
    done
    /usr/lib/slurm-ec2/resume --check > /dev/null
}

configure_slurm() {
    local host address conf=/etc/slurm/slurm.conf
    host="$(hostname -s)"
    address="$(metadata local-ipv4)"
    {
        echo "# Made by slurm-ec2's head-node.sh; compute nodes fetch it (configless)."
        echo "ClusterName=$SLURM_EC2_CLUSTER"
        echo "SlurmctldHost=$host($address)"
        echo "SlurmUser=slurm"
        echo "AuthType=auth/munge"
        echo "StateSaveLocation=/var/spool/slurmctld"
        echo "SlurmdSpoolDir=/var/spool/slurmd"
        echo "SlurmctldLogFile=/var/log/slurm/slurmctld.log"
        echo "SlurmdLogFile=/var/log/slurm/slurmd.log"
        echo "SchedulerType=sched/backfill"
        echo "SelectType=select/cons_tres"
        echo "SelectTypeParameters=CR_Core"
        if [ "${SLURM_EC2_NO_SYSTEMD:-0}" = 1 ]; then
            echo "ProctrackType=proctrack/linuxproc"
            echo "TaskPlugin=task/none"
        else
            echo "ProctrackType=proctrack/cgroup"
            echo "TaskPlugin=task/cgroup,task/affinity"
        fi
        if [ -n "${SLURM_EC2_SLURM_PORTS:-}" ]; then
            echo "SlurmctldPort=${SLURM_EC2_SLURM_PORTS%,*}"
            echo "SlurmdPort=${SLURM_EC2_SLURM_PORTS#*,}"
        fi
        echo "ReturnToService=2"
        echo "SlurmctldParameters=enable_configless,idle_on_node_suspend"
        /usr/lib/slurm-ec2/generate-conf --from-ec2
    } > "$conf.new"
    if ! cmp -s "$conf.new" "$conf"; then mv "$conf.new" "$conf"; else rm -f "$conf.new"; fi
    install -d -o slurm -g slurm /var/spool/slurmctld
}

# On a power-off for good (the stack deleted, the instance stopped) every
# instance of the cluster goes, and the munge key; on a reboot nothing does.
install_teardown() {
    cat > /usr/local/sbin/slurm-ec2-teardown.new <<TEARDOWN
#!/bin/bash
# Installed by slurm-ec2's head-node.sh; run by slurm-ec2-teardown.service.
set -uo pipefail
kind="\${SLURM_EC2_SHUTDOWN:-}"
if [ -z "\$kind" ] && systemctl list-jobs --no-legend 2> /dev/null | grep -Eq '(reboot|kexec)\.target +start'; then
    kind=reboot
fi
if [ "\$kind" = reboot ]; then
    echo "slurm-ec2-teardown: a reboot: the cluster stays" >&2
    exit 0
fi
/usr/bin/slurm-ec2 teardown
status=\$?
export SLURM_EC2_REGION='$SLURM_EC2_REGION' SLURM_EC2_AWS_ENDPOINT='${SLURM_EC2_AWS_ENDPOINT:-}'
${AWS_EC2_METADATA_SERVICE_ENDPOINT:+export AWS_EC2_METADATA_SERVICE_ENDPOINT='$AWS_EC2_METADATA_SERVICE_ENDPOINT'}
python3 - '$munge_parameter' <<'PYTHON' || status=1
import os, sys
import boto3
ssm = boto3.client("ssm", region_name=os.environ["SLURM_EC2_REGION"],
                   endpoint_url=os.environ.get("SLURM_EC2_AWS_ENDPOINT") or None)
try:
    ssm.delete_parameter(Name=sys.argv[1])
except ssm.exceptions.ParameterNotFound:
    pass
PYTHON
exit \$status
TEARDOWN
    chmod 0755 /usr/local/sbin/slurm-ec2-teardown.new
    mv /usr/local/sbin/slurm-ec2-teardown.new /usr/local/sbin/slurm-ec2-teardown
    cat > /etc/systemd/system/slurm-ec2-teardown.service <<'UNIT'
[Unit]
Description=slurm-ec2: terminate this cluster's instances when the head node powers off for good
Wants=network-online.target
After=network-online.target slurmctld.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/true
ExecStop=/usr/local/sbin/slurm-ec2-teardown
TimeoutStopSec=300

[Install]
WantedBy=multi-user.target
UNIT
}

start() {
    if [ "${SLURM_EC2_NO_SYSTEMD:-0}" = 1 ]; then
        install -d -o munge -g munge -m 0755 /run/munge
        running /run/munge/munged.pid || runuser -u munge -- /usr/sbin/munged
        running /run/slurmctld.pid || /usr/sbin/slurmctld
        return
    fi
    systemctl daemon-reload
    systemctl enable --now munge
    systemctl restart munge
    systemctl enable --now slurmctld
    systemctl reload-or-restart slurmctld
    systemctl enable --now slurm-ec2-change-state.timer slurm-ec2-teardown.service
}

install_packages
munge_key
configure_slurm_ec2
configure_slurm
install_teardown
start
say "ready: slurmctld of $SLURM_EC2_CLUSTER runs, with up to $SLURM_EC2_MAX_NODES nodes in partition aws"
