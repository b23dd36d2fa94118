"""The EC2 model the proxy applies in realism mode: token buckets, latency and
eventual consistency (see Realism)."""

import json
import os
import random
import threading
import time
import xml.etree.ElementTree as ET

from common import load


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
      no_address_seconds  then it is listed without its private address
      stop_seconds        how long a stopped instance is `stopping` (Stops)
  StartInstances and StopInstances also draw one token per instance from
  their resource buckets ("StartInstancesResource", "StopInstancesResource"),
  as RunInstances and TerminateInstances do in EC2's documentation."""

    DEFAULTS = {
        "buckets": {"CreateFleet": [50, 5], "CreateTags": [100, 10], "TerminateInstances": [100, 5],
                    "StartInstances": [5, 2], "StartInstancesResource": [1000, 2],
                    "StopInstancesResource": [1000, 20],
                    "DescribeInstances": [100, 20], "DescribeInstancesById": [50, 10]},
        "latency": {"CreateFleet": [1.0, 0.003], "CreateTags": [0.1, 0.2], "DescribeInstances": [0.2, 0.5],
                    "TerminateInstances": [0.3, 0.6], "StartInstances": [0.3, 0.6],
                    "StopInstances": [0.3, 0.6], "other": [0.1, 0.3]},
        "invisible_seconds": 2.0,
        "no_address_seconds": 2.0,
        "stop_seconds": 10.0,
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
        if action in ("TerminateInstances", "StartInstances"):
            return action
        if action in ("CreateFleet", "RunInstances", "StopInstances"):
            return "CreateFleet"
        if action == "DescribeInstances":
            filtered = any(k.startswith("Filter.") or k == "MaxResults" for k in params)
            return "DescribeInstances" if filtered else "DescribeInstancesById"
        return "DescribeInstances"

    def take(self, settings, bucket, count=1):
        burst, rate = settings["buckets"].get(bucket, [100, 20])
        now = time.time()
        with self.lock:
            tokens, at = self.levels.get(bucket, [burst, now])
            tokens = min(burst, tokens + (now - at) * rate)
            granted = tokens >= count
            self.levels[bucket] = [tokens - count if granted else tokens, now]
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


class Stops:
    """EC2's stop takes time, moto's none: for `seconds` after StopInstances
    an instance is `stopping` in DescribeInstances and StartInstances refuses
    it (IncorrectInstanceState), as EC2 does. Always on: realism mode sets
    its own duration ("stop_seconds")."""

    def __init__(self, seconds):
        self.seconds = seconds
        self.lock = threading.Lock()
        self.since = {}  # instance id -> when StopInstances stopped it

    @staticmethod
    def ids(params):
        return [v[0] for k, v in params.items() if k.startswith("InstanceId.")]

    def stopping(self, instance_id, seconds=None):
        with self.lock:
            since = self.since.get(instance_id)
        return since is not None and time.time() - since < (self.seconds if seconds is None else seconds)

    def refusal(self, action, params, seconds=None):
        """The error StartInstances gets for an instance still stopping, if any."""
        if action != "StartInstances":
            return None
        for instance_id in self.ids(params):
            if self.stopping(instance_id, seconds):
                return instance_id
        return None

    def stopped(self, params):
        now = time.time()
        with self.lock:
            for instance_id in self.ids(params):
                self.since[instance_id] = now

    def describe(self, body, seconds=None):
        """moto's DescribeInstances answer with the instances still stopping as such."""
        if not any(self.stopping(i, seconds) for i in list(self.since)):
            return body
        root = ET.fromstring(body)
        ns = root.tag[1:].split("}")[0] if root.tag.startswith("{") else ""
        q = (lambda tag: f"{{{ns}}}{tag}") if ns else (lambda tag: tag)
        if ns:
            ET.register_namespace("", ns)
        changed = False
        for instance in root.iter(q("instancesSet")):
            for item in instance:
                if not self.stopping(item.findtext(q("instanceId")) or "", seconds):
                    continue
                state = item.find(q("instanceState"))
                if state is not None and state.findtext(q("name")) == "stopped":
                    state.find(q("name")).text = "stopping"
                    state.find(q("code")).text = "64"
                    changed = True
        return ET.tostring(root, encoding="utf-8", xml_declaration=True) if changed else body
