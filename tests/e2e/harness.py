#!/usr/bin/env python3
"""The end-to-end world of slurm-ec2 on loopback, from real parts.

  up      --dir D --bin B [--root R]
                            start munged, moto (EC2), the fault proxy, the
                            instance player and slurmctld; write D/world.json.
                            With --root, Slurm and munge run from the Debian
                            root R (scripts/slurm-chroot: Slurm 24.11), with
                            /proc, /dev and D bound into it at their own paths
  down    --dir D           stop what `up` started, by PID
  instances --dir D         print this world's EC2 instances as JSON
  proxy   --dir D           (internal) the fault-injecting, counting proxy
  player  --dir D           (internal) plays EC2's instances: boots slurmd

Faults are read from D/faults.json on every request (see Proxy), the EC2
model from D/realism.json (see Realism), requests are appended to
D/requests.jsonl, and the player reads D/player.json ({"skip": [names],
"delay": {name: seconds}, "hide_tags_partitions": [...],
"hide_name_partitions": [...]}).
"""

import argparse
import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import random
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET

REGION = "us-east-1"
CLUSTER = "e2e"
# The instance profile's role that the metadata stand-in serves credentials of.
ROLE = "slurm-ec2-instance"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def load(path, default):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return default


def ec2_client(endpoint, read_timeout=None):
    import boto3  # only where EC2 is used, so that `down` runs with any Python
    from botocore.config import Config

    # moto answers a look-up of thousands of instances slowly (the benchmark).
    config = Config(read_timeout=read_timeout) if read_timeout else None
    return boto3.client(
        "ec2",
        region_name=REGION,
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=config,
    )


def wait_port(port, seconds=30):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"nothing listens on port {port} after {seconds} s")


# ---------------------------------------------------------------- proxy


def ec2_error(code, message, status):
    body = (
        f'<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error><Code>{code}</Code>'
        f"<Message>{message}</Message></Error></Errors><RequestID>e2e</RequestID></Response>"
    ).encode()
    return status, body


class Realism:
    """What the real EC2 does and moto does not, on when D/realism.json holds
    {"enabled": true} (its other keys override these defaults):
      buckets     per API, [burst, refill per second], EC2's documented
                  defaults (ec2-api-throttling): an empty bucket answers HTTP 503
                  RequestLimitExceeded. DescribeInstances by bare InstanceIds
                  draws from the smaller "DescribeInstancesById" bucket.
      latency     seconds per call: CreateFleet [base, per instance], the others
                  [least, most] (uniform)
      invisible_seconds   a new instance is missing from DescribeInstances, and
                  CreateTags on it answers InvalidInstanceID.NotFound
      no_address_seconds  then it is listed without its private address"""

    DEFAULTS = {
        "buckets": {"CreateFleet": [50, 5], "CreateTags": [100, 10], "TerminateInstances": [100, 5],
                    "DescribeInstances": [100, 20], "DescribeInstancesById": [50, 10]},
        "latency": {"CreateFleet": [1.0, 0.003], "CreateTags": [0.1, 0.2], "DescribeInstances": [0.2, 0.5],
                    "TerminateInstances": [0.3, 0.6], "other": [0.1, 0.3]},
        "invisible_seconds": 2.0,
        "no_address_seconds": 2.0,
    }

    def __init__(self):
        self.lock = threading.Lock()
        self.levels = {}  # bucket -> [tokens, time]
        self.born = {}    # instance id -> when CreateFleet returned it
        self.epoch = None

    def sync(self, settings):
        """A new "epoch" in realism.json starts every bucket full again."""
        with self.lock:
            if settings.get("epoch") != self.epoch:
                self.epoch = settings.get("epoch")
                self.levels = {}

    @staticmethod
    def settings(directory):
        given = load(os.path.join(directory, "realism.json"), {})
        if not given.get("enabled"):
            return None
        merged = json.loads(json.dumps(Realism.DEFAULTS))
        for key, value in given.items():
            if isinstance(value, dict) and isinstance(merged.get(key), dict):
                merged[key].update(value)
            else:
                merged[key] = value
        return merged

    @staticmethod
    def bucket(action, params):
        if action in ("CreateTags", "DeleteTags"):
            return "CreateTags"
        if action == "TerminateInstances":
            return action
        if action in ("CreateFleet", "RunInstances"):
            return "CreateFleet"
        if action == "DescribeInstances":
            filtered = any(k.startswith("Filter.") or k == "MaxResults" for k in params)
            return "DescribeInstances" if filtered else "DescribeInstancesById"
        return "DescribeInstances"

    def take(self, settings, bucket):
        burst, rate = settings["buckets"].get(bucket, [100, 20])
        now = time.time()
        with self.lock:
            tokens, at = self.levels.get(bucket, [burst, now])
            tokens = min(burst, tokens + (now - at) * rate)
            granted = tokens >= 1
            self.levels[bucket] = [tokens - 1 if granted else tokens, now]
        return granted

    @staticmethod
    def latency(settings, action, params):
        table = settings["latency"]
        if action == "CreateFleet":
            base, per_instance = table["CreateFleet"]
            count = int(params.get("TargetCapacitySpecification.TotalTargetCapacity", ["0"])[0])
            return base + per_instance * count
        low, high = table.get(action, table["other"])
        return random.uniform(low, high)

    def launched(self, answer):
        now = time.time()
        with self.lock:
            for part in answer.decode(errors="replace").split("<item>")[1:]:
                if part.startswith("i-"):
                    # An answer replayed for a repeated ClientToken is no new birth.
                    self.born.setdefault(part.split("<")[0], now)

    def age(self, instance_id):
        with self.lock:
            born = self.born.get(instance_id)
        return None if born is None else time.time() - born

    def unknown(self, settings, ids):
        """The first of `ids` that EC2 does not know yet, if any."""
        for instance_id in ids:
            age = self.age(instance_id)
            if age is not None and age < settings["invisible_seconds"]:
                return instance_id
        return None

    def describe(self, settings, body):
        """moto's DescribeInstances answer as EC2 gives it right after a launch."""
        root = ET.fromstring(body)
        ns = root.tag[1:].split("}")[0] if root.tag.startswith("{") else ""
        q = (lambda tag: f"{{{ns}}}{tag}") if ns else (lambda tag: tag)
        if ns:
            ET.register_namespace("", ns)
        invisible, no_address = settings["invisible_seconds"], settings["no_address_seconds"]
        reservations = root.find(q("reservationSet"))
        changed = False
        for reservation in list(reservations if reservations is not None else []):
            instances = reservation.find(q("instancesSet"))
            for instance in list(instances if instances is not None else []):
                age = self.age(instance.findtext(q("instanceId")) or "")
                if age is None or age >= invisible + no_address:
                    continue
                changed = True
                if age < invisible:
                    instances.remove(instance)
                    continue
                for holder in [instance] + instance.findall(f"{q('networkInterfaceSet')}/{q('item')}"):
                    for tag in ("privateIpAddress", "privateDnsName", "ipAddress", "privateIpAddressesSet"):
                        for element in holder.findall(q(tag)):
                            holder.remove(element)
            if instances is not None and len(instances) == 0:
                reservations.remove(reservation)
        return ET.tostring(root, encoding="utf-8", xml_declaration=True) if changed else body


class Proxy(http.server.BaseHTTPRequestHandler):
    """Forwards EC2 requests to moto. faults.json holds, per node group
    (`<partition>-<group>`, from the CreateFleet's tags), a list of faults
    consumed in order:
      {"capacity": N}          launch at most N (none below MinTargetCapacity), list
                               InsufficientInstanceCapacity for the rest
      {"fail": "Code"}         fail the whole CreateFleet (HTTP 400)
      {"throttle_http": true}  HTTP 503 RequestLimitExceeded
      {"server_error": true}   HTTP 500 InternalError
      {"throttle_errors": true} launch nothing, RequestLimitExceeded in Errors
      {"delay": seconds}       answer late
    and refuses DescribeInstances with more than 200 filter values, as EC2 does.
    A CreateFleet whose ClientToken was answered before gets that answer and
    launches nothing, as EC2 documents (moto ignores the token). Dry runs pass
    untouched, recorded as `<Action>(DryRun)`."""

    protocol_version = "HTTP/1.1"
    lock = threading.Lock()
    # moto is not safe with two launches at once into one subnet (it hands out
    # an address twice, then fails half-way through a fleet): one at a time.
    launches = threading.Lock()

    def log_message(self, *args):
        pass

    def do_POST(self):
        length = int(self.headers.get("Content-Length", 0))
        body = self.rfile.read(length)
        params = urllib.parse.parse_qs(body.decode(), keep_blank_values=True)
        action = params.get("Action", ["?"])[0]
        if params.get("DryRun", [""])[0] == "true":
            # EC2 checks a dry run's request and permissions, never its capacity.
            action += "(DryRun)"
        values = sum(len(v) for k, v in params.items() if k.startswith("Filter.") and ".Value." in k)
        started = time.time()
        realism = Realism.settings(self.server.dir)
        if realism is None:
            status, answer = self.fault(action, params, values) or self.forward(action, body)
        else:
            status, answer = self.realistic(realism, action, params, values, body)
        token = params.get("ClientToken", [""])[0]
        if action == "CreateFleet" and status == 200 and token:
            with self.lock:
                self.server.fleet_answers.setdefault(token, answer)
        finished = time.time()
        record = {"action": action, "filter_values": values, "status": status,
                  "seconds": round(finished - started, 4), "start": started, "end": finished,
                  "realism": realism is not None}
        if action == "CreateFleet":
            record["capacity"] = int(params.get("TargetCapacitySpecification.TotalTargetCapacity", ["0"])[0])
            record["group"] = node_group(params)
        if action == "CreateTags":
            record["resources"] = sum(1 for k in params if k.startswith("ResourceId."))
        with self.lock, open(os.path.join(self.server.dir, "requests.jsonl"), "a") as f:
            f.write(json.dumps(record) + "\n")
        self.send_response(status)
        self.send_header("Content-Type", "text/xml")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def realistic(self, settings, action, params, values, body):
        """The call as the real EC2 answers it: from its bucket, late, and
        eventually consistent about new instances (faults still apply)."""
        model = self.server.realism
        model.sync(settings)
        if not model.take(settings, Realism.bucket(action, params)):
            return ec2_error("RequestLimitExceeded", "Request limit exceeded.", 503)
        time.sleep(Realism.latency(settings, action, params))
        if action == "CreateTags":
            ids = [v[0] for k, v in params.items() if k.startswith("ResourceId.")]
            unknown = model.unknown(settings, ids)
            if unknown:
                return ec2_error("InvalidInstanceID.NotFound", f"The instance ID '{unknown}' does not exist", 400)
        status, answer = self.fault(action, params, values) or self.forward(action, body)
        if action == "CreateFleet" and status == 200:
            model.launched(answer)
        if action == "DescribeInstances" and status == 200:
            answer = model.describe(settings, answer)
        return status, answer

    def replayed(self, action, params):
        """The answer already given to this CreateFleet's ClientToken, if any."""
        token = params.get("ClientToken", [""])[0]
        if action != "CreateFleet" or not token:
            return None
        with self.lock:
            answer = self.server.fleet_answers.get(token)
        return None if answer is None else (200, answer)

    def fault(self, action, params, values):
        replayed = self.replayed(action, params)
        if replayed:
            return replayed
        if action == "DescribeInstances" and values > 200:
            return ec2_error("FilterLimitExceeded",
                             "The maximum number of filter values specified on a single call is 200", 400)
        if action != "CreateFleet":
            return None
        group = node_group(params)
        with self.lock:
            path = os.path.join(self.server.dir, "faults.json")
            faults = load(path, {})
            queue = faults.get(group, [])
            if not queue:
                return None
            fault = queue.pop(0)
            faults[group] = queue
            with open(path + ".tmp", "w") as f:
                json.dump(faults, f)
            os.replace(path + ".tmp", path)
        if "delay" in fault:
            time.sleep(fault["delay"])
            return None
        if "fail" in fault:
            return ec2_error(fault["fail"], "injected failure of the whole fleet", 400)
        if fault.get("server_error"):
            return ec2_error("InternalError", "An internal error has occurred.", 500)
        if fault.get("throttle_http"):
            return ec2_error("RequestLimitExceeded", "Request limit exceeded.", 503)
        if fault.get("throttle_errors"):
            return 200, fleet_answer([], [("RequestLimitExceeded", "Request limit exceeded.")])
        if "capacity" in fault:
            wanted = int(params["TargetCapacitySpecification.TotalTargetCapacity"][0])
            launch = min(wanted, fault["capacity"])
            # MinTargetCapacity (all-or-nothing): EC2 launches at least that many, or none.
            minimum = max(int(params.get(f"{o}.MinTargetCapacity", ["0"])[0]) for o in ("OnDemandOptions", "SpotOptions"))
            if launch < minimum:
                launch = 0
            ids = []
            if launch:
                forwarded = dict(params)
                forwarded["TargetCapacitySpecification.TotalTargetCapacity"] = [str(launch)]
                _, answer = self.forward(action, urllib.parse.urlencode(forwarded, doseq=True).encode())
                ids = [part.split("</item>")[0] for part in answer.decode().split("<item>")[1:]
                       if part.startswith("i-")]
            errors = [("InsufficientInstanceCapacity", "We currently do not have sufficient capacity.")] \
                if launch < wanted else []
            return 200, fleet_answer(ids, errors)
        return None

    def forward(self, action, body):
        if action in ("CreateFleet", "RunInstances"):
            with self.launches:
                return self.send_upstream(body)
        return self.send_upstream(body)

    def send_upstream(self, body):
        request = urllib.request.Request(self.server.upstream, data=body, method="POST")
        for key in ("Content-Type", "Authorization", "X-Amz-Date", "X-Amz-Security-Token", "User-Agent"):
            if self.headers.get(key):
                request.add_header(key, self.headers[key])
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()


def node_group(params):
    """`<partition>-<group>` from the tags of a CreateFleet request."""
    tags, i = {}, 1
    while f"TagSpecification.1.Tag.{i}.Key" in params:
        tags[params[f"TagSpecification.1.Tag.{i}.Key"][0]] = params[f"TagSpecification.1.Tag.{i}.Value"][0]
        i += 1
    return f"{tags.get('slurm-ec2:partition', '')}-{tags.get('slurm-ec2:node-group', '')}"


def fleet_answer(ids, errors):
    items = "".join(f"<item>{i}</item>" for i in ids)
    instances = f"<item><instanceIds>{items}</instanceIds><lifecycle>on-demand</lifecycle></item>" if ids else ""
    errs = "".join(f"<item><errorCode>{c}</errorCode><errorMessage>{m}</errorMessage><lifecycle>on-demand</lifecycle></item>"
                   for c, m in errors)
    return (f'<CreateFleetResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>e2e</requestId>'
            f"<fleetId>fleet-e2e</fleetId><errorSet>{errs}</errorSet><fleetInstanceSet>{instances}"
            f"</fleetInstanceSet></CreateFleetResponse>").encode()


def run_proxy(args):
    world = load(os.path.join(args.dir, "world.json"), {})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", world["proxy_port"]), Proxy)
    server.dir = args.dir
    server.upstream = f"http://127.0.0.1:{world['moto_port']}/"
    server.realism = Realism()
    server.fleet_answers = {}  # ClientToken -> the CreateFleet's answer
    server.serve_forever()


# ---------------------------------------------------------------- player


class Metadata(http.server.BaseHTTPRequestHandler):
    """IMDSv2 for one instance: a token, then its id, address, region and tags."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, text):
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-aws-ec2-metadata-token-ttl-seconds", "21600")
        self.end_headers()
        self.wfile.write(data)

    def do_PUT(self):
        if self.path == "/latest/api/token":
            return self.reply(200, "e2e-token")
        self.reply(404, "")

    def do_GET(self):
        if self.headers.get("x-aws-ec2-metadata-token") != "e2e-token":
            return self.reply(401, "")
        instance = self.server.describe()
        if instance is None:
            return self.reply(404, "")
        tags = {t["Key"]: t["Value"] for t in instance.get("Tags", [])
                if not (self.server.name_hidden and t["Key"] == "Name")}
        base = "/latest/meta-data/"
        fixed = {
            "instance-id": instance["InstanceId"],
            "instance-type": instance.get("InstanceType", ""),
            "local-ipv4": instance.get("PrivateIpAddress", ""),
            "hostname": instance.get("PrivateDnsName", ""),
            "placement/region": REGION,
            "placement/availability-zone": instance.get("Placement", {}).get("AvailabilityZone", ""),
            "ami-launch-index": str(instance.get("AmiLaunchIndex", 0)),
        }
        key = self.path[len(base):] if self.path.startswith(base) else None
        if key in fixed:
            return self.reply(200, fixed[key])
        # The instance profile's credentials, as EC2 serves them (the
        # deployment's bootstrap scripts and programs find them here).
        for listing in ("iam/security-credentials/", "iam/security-credentials-extended/"):
            if key == listing:
                return self.reply(200, ROLE)
            if key == listing + ROLE:
                now = time.time()
                return self.reply(200, json.dumps({
                    "Code": "Success", "Type": "AWS-HMAC", "AccessKeyId": "testing", "SecretAccessKey": "testing",
                    "Token": "testing", "AccountId": "123456789012",
                    "LastUpdated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
                    "Expiration": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + 6 * 3600))}))
        if not self.server.tags_exposed:
            return self.reply(404, "")
        if key == "tags/instance":
            return self.reply(200, "\n".join(k for k in tags if "/" not in k))
        if key and key.startswith("tags/instance/") and key[len("tags/instance/"):] in tags:
            return self.reply(200, tags[key[len("tags/instance/"):]])
        self.reply(404, "")


def start_metadata(ec2, instance_id, tags_exposed, name_hidden=False):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Metadata)
    server.tags_exposed = tags_exposed
    server.name_hidden = name_hidden

    def describe():
        found = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
        return found[0]["Instances"][0] if found else None

    server.describe = describe
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def run_player(args):
    """Boots each running instance of the cluster: get-nodename against its
    metadata stand-in, then `slurmd -D -b -N <name>`; stops it at termination."""
    world = load(os.path.join(args.dir, "world.json"), {})
    ec2 = ec2_client(f"http://127.0.0.1:{world['moto_port']}")
    booting = {}  # instance id -> {"thread", "slurmd", "metadata"}
    log = open(os.path.join(args.dir, "log", "player.log"), "a", buffering=1)

    def boot(instance_id, tags, address):
        control = load(os.path.join(args.dir, "player.json"), {})
        partition = tags.get("slurm-ec2:partition")
        metadata = start_metadata(ec2, instance_id, partition not in control.get("hide_tags_partitions", []),
                                  partition in control.get("hide_name_partitions", []))
        booting[instance_id]["metadata"] = metadata
        env = {"PATH": "/usr/bin:/bin", "AWS_EC2_METADATA_SERVICE_ENDPOINT": f"http://127.0.0.1:{metadata.server_port}/",
               "AWS_ENDPOINT_URL_EC2": f"http://127.0.0.1:{world['moto_port']}", "AWS_ACCESS_KEY_ID": "testing",
               "AWS_SECRET_ACCESS_KEY": "testing"}
        # As the systemd drop-in does: --env, where slurmd runs (its version decides the arguments).
        result = subprocess.run(world["prefix"] + [os.path.join(world["bin"], "get-nodename"), "--config-dir", args.dir,
                                                   "--timeout", "60", "--env"],
                                capture_output=True, text=True, env=env)
        variables = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
        name = variables.get("SLURM_NODENAME", "")
        slurmd_args = variables.get("SLURM_EC2_SLURMD_ARGS", "").split()
        log.write(f"{instance_id}: get-nodename exit {result.returncode} name {name!r} {result.stderr.strip()!r}\n")
        if result.returncode != 0 or not name:
            return
        control = load(os.path.join(args.dir, "player.json"), {})
        if name in control.get("skip", []):
            log.write(f"{instance_id}: told not to boot {name}\n")
            return
        time.sleep(control.get("delay", {}).get(name, 0))
        if booting.get(instance_id, {}).get("gone"):
            return
        slurmd_env = dict(os.environ)
        if world.get("source_shim"):
            # Slurm 23.11+ takes NodeAddr from the address a node registers from.
            slurmd_env.update(LD_PRELOAD=world["source_shim"], SLURM_EC2_SOURCE_ADDR=address)
        slurmd = subprocess.Popen(world["prefix"] + ["/usr/sbin/slurmd", "-D", "-b", "-N", name, "-f", world["slurm_conf"]]
                                  + slurmd_args,
                                  stdout=subprocess.DEVNULL, env=slurmd_env,
                                  stderr=open(os.path.join(args.dir, "log", f"slurmd-{name}.err"), "a"))
        booting[instance_id]["slurmd"] = slurmd
        log.write(f"{instance_id}: slurmd for {name} pid {slurmd.pid}\n")

    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    while not stop:
        try:
            pages = ec2.get_paginator("describe_instances").paginate(
                Filters=[{"Name": "tag:slurm-ec2:cluster", "Values": [CLUSTER]}])
            live = {}
            for page in pages:
                for reservation in page["Reservations"]:
                    for instance in reservation["Instances"]:
                        if instance["State"]["Name"] in ("pending", "running"):
                            live[instance["InstanceId"]] = instance
        except Exception as error:  # moto restarting, or not yet up
            log.write(f"describe failed: {error}\n")
            time.sleep(1)
            continue
        control = load(os.path.join(args.dir, "player.json"), {})
        for instance_id, instance in live.items():
            tags = {t["Key"]: t["Value"] for t in instance.get("Tags", [])}
            if tags.get("slurm-ec2:partition") in control.get("ignore_partitions", []):
                continue
            if tags.get("e2e:no-boot"):
                continue
            if instance_id not in booting:
                booting[instance_id] = {}
                thread = threading.Thread(target=boot, args=(instance_id, tags, instance.get("PrivateIpAddress", "")),
                                          daemon=True)
                booting[instance_id]["thread"] = thread
                thread.start()
        for instance_id, state in list(booting.items()):
            if instance_id not in live and not state.get("gone"):
                state["gone"] = True
                if state.get("slurmd"):
                    state["slurmd"].terminate()
                    log.write(f"{instance_id}: terminated, slurmd stopped\n")
                if state.get("metadata"):
                    state["metadata"].shutdown()
        time.sleep(0.5)
    for state in booting.values():
        if state.get("slurmd"):
            state["slurmd"].terminate()


# ---------------------------------------------------------------- world


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


def spawn(argv, log_path, env=None):
    out = open(log_path, "a")
    return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True).pid


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
    (/var/lib/slurm-ec2) is SlurmUser's alone; slurmctld's own state is its."""
    os.chmod(d, 0o755)
    for sub, owner, mode in (("log", (0, gid), 0o2775), ("ec2-state", (uid, gid), 0o755),
                             ("state", (uid, gid), 0o755)):
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
    world["pids"]["proxy"] = spawn([sys.executable, __file__, "proxy", "--dir", d], f"{d}/log/proxy.log")
    wait_port(world["proxy_port"])
    write_plugin_config(world, args.partitions)
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
    # directly), and one whose instances hide their tags from metadata.
    with open(os.path.join(d, "player.json"), "w") as f:
        # burst's nodes find their names in their reservation's node list.
        json.dump({"ignore_partitions": ["twice", "big", "fail", "ice"], "hide_tags_partitions": ["notag"],
                   "hide_name_partitions": ["burst"]}, f)
    world["pids"]["player"] = spawn([sys.executable, __file__, "player", "--dir", d], f"{d}/log/player.out")
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


def write_plugin_config(world, partitions_path):
    d = world["dir"]
    config = {
        "LogLevel": "DEBUG",
        "LogFileName": f"{d}/log/slurm-ec2.log",
        "EventLogFile": f"{d}/log/events.jsonl",
        "StateDirectory": f"{d}/ec2-state",
        "SlurmBinPath": "/usr/bin",
        "ClusterName": CLUSTER,
        "ResumeBudgetSeconds": 20,
        "LaunchGraceSeconds": 5,
        "InsufficientCapacityHoldSeconds": 30,
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
    duplicate that the player must not boot: --no-boot)."""
    world = load(os.path.join(args.dir, "world.json"), {})
    ec2 = ec2_client(f"http://127.0.0.1:{world['moto_port']}")
    tags = [{"Key": "Name", "Value": args.name}]
    if args.cluster:
        tags.append({"Key": "slurm-ec2:cluster", "Value": args.cluster})
    if args.no_boot:
        tags.append({"Key": "e2e:no-boot", "Value": "1"})
    answer = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1, SubnetId=world["subnets"][0],
                               TagSpecifications=[{"ResourceType": "instance", "Tags": tags}])
    print(answer["Instances"][0]["InstanceId"])


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


def demo(args):
    """Submits a 2-node job to the cloud partition and shows the nodes' states
    beside their instances until they are powered down again."""
    world = load(os.path.join(args.dir, "world.json"), {})
    env = dict(os.environ, SLURM_CONF=world["slurm_conf"])
    ec2 = ec2_client(f"http://127.0.0.1:{world['moto_port']}")

    def sh(*argv):
        return subprocess.run(world["prefix"] + list(argv), env=env, capture_output=True, text=True).stdout.strip()

    job = sh("sbatch", "--parsable", "-p", "burst", "-N", "2", "--wrap", "hostname; sleep 5").split(";")[0]
    print(f"Submitted job {job}: 2 nodes of the cloud partition 'burst' (burst-a-[0-3], all idle~ = powered down).\n")
    print(f"{'time':>5}  {'job':<11} {'burst-a-0':<22} {'burst-a-1':<22} instances in EC2")
    started, last, seen_up = time.time(), None, False
    while time.time() - started < 240:
        states = {}
        for line in sh("sinfo", "-h", "-N", "-p", "burst", "-o", "%N %T").splitlines():
            name, state = line.split()
            states[name] = state
        job_state = sh("squeue", "-h", "-j", job, "-o", "%T") or "done"
        found = ec2.describe_instances(Filters=[{"Name": "tag:slurm-ec2:cluster", "Values": [CLUSTER]},
                                                {"Name": "tag:slurm-ec2:partition", "Values": ["burst"]}])
        instances = sorted(f"{t.get('Name', '?')}={i['InstanceId'][:10]}..({i['State']['Name']}, {i.get('PrivateIpAddress')})"
                           for r in found["Reservations"] for i in r["Instances"]
                           for t in [{x["Key"]: x["Value"] for x in i.get("Tags", [])}]
                           if i["State"]["Name"] != "terminated")
        row = (job_state, states.get("burst-a-0", "?"), states.get("burst-a-1", "?"), ", ".join(instances) or "none")
        if row != last:
            print(f"{int(time.time() - started):>4}s  {row[0]:<11} {row[1]:<22} {row[2]:<22} {row[3]}")
            last = row
        seen_up = seen_up or job_state == "done"
        if seen_up and all(states.get(n, "").endswith("~") for n in ("burst-a-0", "burst-a-1")) and not instances:
            break
        time.sleep(1)
    print("""
What you saw:
  idle~    the nodes were powered down: declared in slurm.conf, no instance behind them;
  alloc#   Slurm gave them the job and ran `resume`, which launched two instances with one
           EC2 Fleet call, tagged them, and told Slurm their addresses (scontrol update);
  alloc    each instance booted: `get-nodename` read its Name tag over IMDSv2 and slurmd
           registered under that name; the job ran;
  idle     the job ended;
  idle%    after SuspendTime Slurm ran `suspend`, which terminated both instances;
  idle~    after SuspendTimeout the nodes were powered down again, and nothing runs in EC2.
The programs' log is in """ + os.path.join(args.dir, "log", "slurm-ec2.log"))


def moto_command(port):
    """moto's server on loopback, with its tag look-up made a dictionary read."""
    return [sys.executable, os.path.abspath(__file__), "moto", "--dir", "-", "--port", str(port)]


def run_moto(args):
    """moto finds a resource's tags by scanning every tag of the Region with a
    regular expression, for every filter of every instance a DescribeInstances
    looks at: quadratic, minutes for one look-up among 5,000 tagged instances,
    where EC2 takes a second. The same answer, read from its dictionary."""
    import moto.ec2.models.core as core
    import moto.server
    from moto.ec2.utils import EC2_PREFIX_TO_RESOURCE, get_prefix

    def get_tags(self):
        if not self.id:
            return []
        tags = self.ec2_backend.tags
        kind = EC2_PREFIX_TO_RESOURCE.get(get_prefix(self.id), "")
        return [{"resource_id": self.id, "key": key, "value": value, "resource_type": kind}
                for key, value in (tags[self.id].items() if self.id in tags else [])]

    core.TaggedEC2Resource.get_tags = get_tags
    moto.server.main(["-H", "127.0.0.1", "-p", str(args.port)])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["up", "down", "instances", "proxy", "player", "add-instance", "terminate", "demo",
                                            "moto"])
    parser.add_argument("--dir", required=True)
    parser.add_argument("--bin", default="")
    parser.add_argument("--root", default="", help="up: run Slurm and munge from this Debian root")
    parser.add_argument("--name", default="")
    parser.add_argument("--cluster", default="")
    parser.add_argument("--no-boot", action="store_true", help="add-instance: the player never boots it")
    parser.add_argument("--port", type=int, default=0, help="moto: its port")
    parser.add_argument("--partitions", default=os.path.join(os.path.dirname(__file__), "partitions.json"))
    args = parser.parse_args()
    commands = {"up": up, "down": down, "instances": instances, "proxy": run_proxy, "player": run_player,
                "add-instance": add_instance, "terminate": terminate, "demo": demo, "moto": run_moto}
    commands[args.command](args)


if __name__ == "__main__":
    main()
