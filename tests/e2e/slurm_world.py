"""The world itself: munged, slurmctld and the plugin's configuration laid out
as installed; up, down and what tests ask of it."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

from common import CLUSTER, HARNESS, ec2_client, free_port, load, spawn, wait_port
from moto_runner import moto_command


SLURM_CONF = """\
ClusterName={cluster}
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
AuthType=auth/munge
AuthInfo=socket={dir}/munge/munge.socket,cred_expire=30
CredType=cred/munge
SlurmUser={slurm_user}
SlurmdUser=root
StateSaveLocation={dir}/state
SlurmdSpoolDir={dir}/spool/%n
SlurmctldPidFile={dir}/slurmctld.pid
SlurmdPidFile={dir}/spool/slurmd-%n.pid
SlurmctldLogFile={dir}/log/slurmctld.log
SlurmdLogFile={dir}/log/slurmd-%n.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
MessageTimeout=20
SuspendTimeout=10
SlurmctldParameters=idle_on_node_suspend
"""

# Slurm 24.11's slurmd loads a cgroup plugin whatever the task and proctrack
# plugins, and dies in a root without /sys/fs/cgroup.
CGROUP_CONF = "CgroupPlugin=disabled\n"


def bind_mounts(root, d):
    """(source, target) pairs bound into the Debian root, in mounting order."""
    return [(path, os.path.join(root, path.lstrip("/"))) for path in ("/proc", "/dev", d)]


def mounted(target):
    """Whether `target` is a mount point (os.path.ismount misses a bind mount
    from the same file system)."""
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == target for line in f)


def mount_root(root, d):
    for source, target in bind_mounts(root, d):
        os.makedirs(target, exist_ok=True)
        if not mounted(target):
            subprocess.run(["mount", "--bind", source, target], check=True)


def unmount_root(root, d):
    for _, target in reversed(bind_mounts(root, d)):
        if mounted(target):
            subprocess.run(["umount", "-l", target], check=False)
    target = os.path.join(root, d.lstrip("/"))
    if os.path.isdir(target) and not mounted(target):
        try:
            os.rmdir(target)
        except OSError:
            pass


def slurm_version(world):
    """`24.11.5` from `scontrol --version` (`slurm 24.11.5`, `slurm-wlm 22.05.8`);
    24.11 needs a slurm.conf even for that."""
    text = subprocess.run(world["prefix"] + ["/usr/bin/scontrol", "--version"], capture_output=True, text=True,
                          env=dict(os.environ, SLURM_CONF=world["slurm_conf"])).stdout
    return text.split()[-1] if text.split() else "unknown"



def slurm_user(root):
    """SlurmUser's name, uid and gid where slurmctld runs: Debian's slurm
    packages make the user `slurm`."""
    path = os.path.join(root or "/", "etc/passwd")
    with open(path) as f:
        for line in f:
            fields = line.split(":")
            if fields[0] == "slurm":
                return fields[0], int(fields[2]), int(fields[3])
    raise SystemExit(f"no user slurm in {path}: Debian's slurmctld package makes it")


def lay_out_as_installed(d, uid, gid):
    """The package's folders: slurmctld runs resume and suspend as SlurmUser,
    the tests run change-state as root. The log folder is root's and group
    slurm's, writable by both (/var/log/slurm-ec2, 2775); the state folder
    (/var/lib/slurm-ec2) is SlurmUser's alone; slurmctld's own state is its;
    the metrics folder is root's, as node_exporter's textfile folder is."""
    os.chmod(d, 0o755)
    for sub, owner, mode in (("log", (0, gid), 0o2775), ("ec2-state", (uid, gid), 0o755),
                             ("state", (uid, gid), 0o755), ("metrics", (0, 0), 0o755)):
        path = os.path.join(d, sub)
        os.makedirs(path, exist_ok=True)
        os.chown(path, *owner)
        os.chmod(path, mode)


def up(args):
    d = os.path.abspath(args.dir)
    for sub in ("munge", "state", "spool", "log"):
        os.makedirs(os.path.join(d, sub), exist_ok=True)
    os.chmod(os.path.join(d, "munge"), 0o755)
    # The programs and their configuration in one folder, the original plugin's
    # layout: slurmctld runs them with no arguments but the hostlist.
    bindir = os.path.join(d, "bin")
    os.makedirs(bindir, exist_ok=True)
    for program in ("resume", "suspend", "change-state", "generate-conf", "get-nodename", "slurm-ec2"):
        target = os.path.join(bindir, program)
        if os.path.exists(target):
            os.remove(target)
        try:
            os.link(os.path.join(args.bin, program), target)
        except OSError:
            shutil.copy2(os.path.join(args.bin, program), target)
    world = {"dir": d, "bin": bindir, "moto_port": free_port(), "proxy_port": free_port(),
             "ctld_port": free_port(), "slurmd_port": free_port(), "pids": {}, "prefix": []}
    if args.root:
        root = os.path.abspath(args.root)
        mount_root(root, d)
        world["root"] = root
        world["prefix"] = ["/usr/sbin/chroot", root]
        shim = os.path.join(d, "lib", "bind_source.so")
        os.makedirs(os.path.dirname(shim), exist_ok=True)
        subprocess.run(["gcc", "-shared", "-fPIC", "-O2", "-o", shim,
                        os.path.join(os.path.dirname(os.path.abspath(__file__)), "bind_source.c"), "-ldl"], check=True)
        world["source_shim"] = shim
        with open(os.path.join(d, "cgroup.conf"), "w") as f:
            f.write(CGROUP_CONF)

    world["slurm_conf"] = os.path.join(d, "slurm.conf")
    world["slurm_user"], uid, gid = slurm_user(world.get("root"))
    lay_out_as_installed(d, uid, gid)
    with open(os.path.join(d, "world.json"), "w") as f:
        json.dump(world, f)

    key_dir = os.path.join(d, "munge", "key")
    os.makedirs(key_dir, mode=0o700, exist_ok=True)
    key = os.path.join(key_dir, "munge.key")
    if not os.path.exists(key):
        with open(key, "wb") as f:
            f.write(os.urandom(1024))
    os.chmod(key, 0o400)
    world["pids"]["munged"] = spawn(
        world["prefix"] + ["/usr/sbin/munged", "-F", "-S", f"{d}/munge/munge.socket", f"--key-file={key}", f"--pid-file={d}/munge/munged.pid",
         f"--log-file={d}/log/munged.log", f"--seed-file={d}/munge/munge.seed", "--force"], f"{d}/log/munged.out")
    world["pids"]["moto"] = spawn(moto_command(world["moto_port"]), f"{d}/log/moto.log")
    wait_port(world["moto_port"])
    with open(os.path.join(d, "world.json"), "w") as f:
        json.dump(world, f)
    seed(world)
    world["pids"]["proxy"] = spawn([sys.executable, HARNESS, "proxy", "--dir", d], f"{d}/log/proxy.log")
    wait_port(world["proxy_port"])
    write_plugin_config(world, args.partitions, args.port_offset)
    host = socket.gethostname().split(".")[0]
    base = SLURM_CONF.format(cluster=CLUSTER, host=host, dir=d, slurm_user=world["slurm_user"],
                             **{k: world[k] for k in ("ctld_port", "slurmd_port")})
    with open(world["slurm_conf"], "w") as f:
        f.write(base)
    world["slurm_version"] = slurm_version(world)
    generated = subprocess.run(world["prefix"] + [os.path.join(world["bin"], "generate-conf"),
                                                  "--slurm-version", world["slurm_version"]],
                               capture_output=True, text=True, check=True).stdout
    with open(world["slurm_conf"], "w") as f:
        f.write(base + "\n" + generated)
    # Partitions whose instances never boot (their tests call the programs
    # directly), a node group whose instances never register, and a
    # partition whose instances hide their tags from metadata.
    with open(os.path.join(d, "player.json"), "w") as f:
        # burst's nodes find their names in their reservation's node list.
        # pool's instances boot as the model says, shortened: 20 s
        # from a launch, 5 s from a warm pool, 2 s either way.
        json.dump({"ignore_partitions": ["twice", "big", "fail", "ice"], "hide_tags_partitions": ["notag"],
                   "hide_name_partitions": ["burst"], "skip_prefixes": ["boot-a-"],
                   "boot_seconds": {"pool": {"cold": 20, "warm": 5, "jitter": 2}}}, f)
    world["pids"]["player"] = spawn([sys.executable, HARNESS, "player", "--dir", d], f"{d}/log/player.out")
    for _ in range(50):
        if os.path.exists(f"{d}/munge/munge.socket"):
            break
        time.sleep(0.1)
    world["pids"]["slurmctld"] = spawn(world["prefix"] + ["/usr/sbin/slurmctld", "-D", "-i", "-f", world["slurm_conf"]],
                                       f"{d}/log/slurmctld.out",
                                       env={"PATH": "/usr/bin:/bin:/usr/sbin:/sbin"})
    with open(os.path.join(d, "world.json"), "w") as f:
        json.dump(world, f, indent=2)
    env = dict(os.environ, SLURM_CONF=world["slurm_conf"])
    deadline = time.time() + 60
    while time.time() < deadline:
        if subprocess.run(world["prefix"] + ["/usr/bin/scontrol", "ping"], env=env, capture_output=True, text=True).stdout.count("UP"):
            print(json.dumps(world, indent=2))
            return
        time.sleep(0.5)
    raise SystemExit("slurmctld did not come up; see " + f"{d}/log/slurmctld.log")


def seed(world, large=False):
    """A VPC of two subnets in two zones, and the launch template. `large`
    subnets (/17, for the benchmark's 5000 nodes) hold 32,000 addresses each;
    moto puts a lowest-price fleet in one subnet and fails when it is full."""
    ec2 = ec2_client(f"http://127.0.0.1:{world['moto_port']}")
    vpc = ec2.create_vpc(CidrBlock="127.1.0.0/16")["Vpc"]["VpcId"]
    cidrs = ("127.1.0.0/17", "127.1.128.0/17") if large else ("127.1.0.0/20", "127.1.16.0/20")
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=cidr, AvailabilityZone=zone)["Subnet"]["SubnetId"]
               for cidr, zone in zip(cidrs, ("us-east-1a", "us-east-1b"))]
    template = ec2.create_launch_template(LaunchTemplateName="compute", LaunchTemplateData={
        "ImageId": "ami-12c6146b", "InstanceType": "t3.micro",
        "MetadataOptions": {"HttpTokens": "required", "InstanceMetadataTags": "enabled"}})
    world["subnets"] = subnets
    world["launch_template"] = template["LaunchTemplate"]["LaunchTemplateId"]


def shifted_ports(port, offset):
    """A node group's `Port` (`21000` or `[21000-21003]`) moved by `offset`."""
    if port.startswith("["):
        low, high = port.strip("[]").split("-")
        return f"[{int(low) + offset}-{int(high) + offset}]"
    return str(int(port) + offset)


def write_plugin_config(world, partitions_path, port_offset=0):
    d = world["dir"]
    config = {
        "LogLevel": "DEBUG",
        "LogFileName": f"{d}/log/slurm-ec2.log",
        "EventLogFile": f"{d}/log/events.jsonl",
        "StateDirectory": f"{d}/ec2-state",
        "MetricsFile": f"{d}/metrics/slurm-ec2.prom",
        "Prices": {"t3.micro": {"OnDemand": 36.0, "Spot": 12.0}},
        "SlurmBinPath": "/usr/bin",
        "ClusterName": CLUSTER,
        "ResumeBudgetSeconds": 20,
        "LaunchGraceSeconds": 5,
        "InsufficientCapacityHoldSeconds": 30,
        "BootFailureHoldSeconds": 20,
        "InterruptionRequeueSeconds": 15,
        "Environment": {
            "AWS_ENDPOINT_URL_EC2": f"http://127.0.0.1:{world['proxy_port']}",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_EC2_METADATA_DISABLED": "true",
        },
        "SlurmConf": {
            "PrivateData": "CLOUD",
            "ResumeProgram": os.path.join(world["bin"], "resume"),
            "SuspendProgram": os.path.join(world["bin"], "suspend"),
            "ResumeRate": 0,
            "SuspendRate": 0,
            "ResumeTimeout": 40,
            "SuspendTime": 15,
            "TreeWidth": 65533,
        },
    }
    with open(partitions_path) as f:
        partitions = json.load(f)
    for partition in partitions["Partitions"]:
        for group in partition["NodeGroups"]:
            group["SubnetIds"] = world["subnets"]
            group["LaunchTemplateSpecification"] = {"LaunchTemplateId": world["launch_template"], "Version": "$Latest"}
            specifications = group.get("SlurmSpecifications", {})
            if "Port" in specifications:
                specifications["Port"] = shifted_ports(specifications["Port"], port_offset)
    with open(os.path.join(world["bin"], "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    with open(os.path.join(world["bin"], "partitions.json"), "w") as f:
        json.dump(partitions, f, indent=2)


def down(args):
    world = load(os.path.join(args.dir, "world.json"), {})
    pids = world.get("pids", {})
    for name in ("slurmctld", "player", "proxy", "moto", "munged"):
        pid = pids.get(name)
        if not pid:
            continue
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
        for _ in range(50):
            try:
                os.kill(pid, 0)
                time.sleep(0.1)
            except ProcessLookupError:
                break
        else:
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    # The player's slurmd processes are in its process group, stopped with it.
    if world.get("root"):
        unmount_root(world["root"], world["dir"])


def instances(args):
    world = load(os.path.join(args.dir, "world.json"), {})
    ec2 = ec2_client(f"http://127.0.0.1:{world['moto_port']}")
    result = []
    for page in ec2.get_paginator("describe_instances").paginate():
        for reservation in page["Reservations"]:
            for i in reservation["Instances"]:
                result.append({"id": i["InstanceId"], "state": i["State"]["Name"],
                               "ip": i.get("PrivateIpAddress"), "launch": i["LaunchTime"].timestamp(),
                               "tags": {t["Key"]: t["Value"] for t in i.get("Tags", [])}})
    print(json.dumps(result))


def add_instance(args):
    """Launches an instance outside slurm-ec2 (another cluster's, say, or a
    duplicate that the player must not boot: --no-boot); with --tag K=V its
    tags, with --template from the world's launch template, and with
    --stopped stopped at once (a pooled instance, say)."""
    world = load(os.path.join(args.dir, "world.json"), {})
    ec2 = ec2_client(f"http://127.0.0.1:{world['moto_port']}")
    tags = [{"Key": "Name", "Value": args.name}]
    if args.cluster:
        tags.append({"Key": "slurm-ec2:cluster", "Value": args.cluster})
    if args.no_boot:
        tags.append({"Key": "e2e:no-boot", "Value": "1"})
    tags += [{"Key": k, "Value": v} for k, v in (t.split("=", 1) for t in args.tag)]
    launch = {"ImageId": "ami-12c6146b"}
    if args.template:
        launch = {"LaunchTemplate": {"LaunchTemplateId": world["launch_template"], "Version": "$Latest"}}
    answer = ec2.run_instances(MinCount=1, MaxCount=1, SubnetId=world["subnets"][0],
                               TagSpecifications=[{"ResourceType": "instance", "Tags": tags}], **launch)
    instance_id = answer["Instances"][0]["InstanceId"]
    if args.stopped:
        ec2.stop_instances(InstanceIds=[instance_id])
    print(instance_id)


def new_template_version(args):
    """A new version of the world's launch template (the node groups launch
    its $Latest): what an administrator's new image would be. Prints it."""
    world = load(os.path.join(args.dir, "world.json"), {})
    ec2 = ec2_client(f"http://127.0.0.1:{world['moto_port']}")
    answer = ec2.create_launch_template_version(
        LaunchTemplateId=world["launch_template"],
        LaunchTemplateData={"ImageId": "ami-12c6146b", "InstanceType": "t3.micro",
                            "MetadataOptions": {"HttpTokens": "required", "InstanceMetadataTags": "enabled"}})
    print(answer["LaunchTemplateVersion"]["VersionNumber"])


def terminate(args):
    """Terminates the live instances named `--name`, as a Spot interruption would."""
    world = load(os.path.join(args.dir, "world.json"), {})
    ec2 = ec2_client(f"http://127.0.0.1:{world['moto_port']}")
    found = ec2.describe_instances(Filters=[{"Name": "tag:Name", "Values": [args.name]},
                                            {"Name": "instance-state-name", "Values": ["pending", "running"]}])
    ids = [i["InstanceId"] for r in found["Reservations"] for i in r["Instances"]]
    if ids:
        ec2.terminate_instances(InstanceIds=ids)
    print(json.dumps(ids))
