"""The fault-injecting, counting proxy in front of moto (see Proxy)."""

import http.server
import json
import os
import re
import threading
import time
import urllib.request

from common import ec2_error, load
from realism import Realism, Stops

# How long a stopped instance is `stopping` outside realism mode.
STOP_SECONDS = 3.0


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
    health.json holds, per instance id, what DescribeInstanceStatus reports
    beyond moto's "all healthy": {"impaired_since": "<RFC 3339>"} and
    {"events": [[code, description, not before]]}.
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
        stop_seconds = realism["stop_seconds"] if realism else STOP_SECONDS
        stopping = self.server.stops.refusal(action, params, stop_seconds)
        if stopping:
            status, answer = ec2_error("IncorrectInstanceState",
                                       f"The instance '{stopping}' is not in a state from which it can be started.", 400)
        elif realism is None:
            status, answer = self.fault(action, params, values) or self.forward(action, body)
        else:
            status, answer = self.realistic(realism, action, params, values, body)
        if action == "StopInstances" and status == 200:
            self.server.stops.stopped(params)
        if action == "DescribeInstances" and status == 200:
            answer = self.server.stops.describe(answer, stop_seconds)
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
        # The instances a call started, for the benchmark's boot model.
        if action == "CreateFleet" and status == 200:
            record["instances"] = re.findall(r"<item>(i-[0-9a-f]+)</item>", answer.decode(errors="replace"))
        if action == "StartInstances" and status == 200:
            record["instances"] = Stops.ids(params)
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
        if action in ("StartInstances", "StopInstances"):
            if not model.take(settings, action + "Resource", len(Stops.ids(params))):
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
        if action == "DescribeInstanceStatus":
            return self.health(params)
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

    def health(self, params):
        """DescribeInstanceStatus with the injected health of the ids asked
        for; None (moto answers) when none is injected. The healthy are left
        out, which slurm-ec2 reads as EC2 listing them healthy."""
        injected = load(os.path.join(self.server.dir, "health.json"), {})
        asked = [v[0] for k, v in params.items() if k.startswith("InstanceId.")]
        sick = [i for i in asked if i in injected]
        if not sick:
            return None
        items = ""
        for instance in sick:
            health = injected[instance]
            since = health.get("impaired_since")
            check = (f"<status>impaired</status><details><item><name>reachability</name><status>failed</status>"
                     f"<impairedSince>{since}</impairedSince></item></details>") if since else "<status>ok</status>"
            events = "".join(f"<item><code>{c}</code><description>{d}</description><notBefore>{t}</notBefore></item>"
                             for c, d, t in health.get("events", []))
            items += (f"<item><instanceId>{instance}</instanceId><instanceState><code>16</code><name>running</name>"
                      f"</instanceState><instanceStatus>{check}</instanceStatus><systemStatus><status>ok</status>"
                      f"</systemStatus><eventsSet>{events}</eventsSet></item>")
        return 200, (f'<DescribeInstanceStatusResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">'
                     f"<requestId>e2e</requestId><instanceStatusSet>{items}</instanceStatusSet>"
                     f"</DescribeInstanceStatusResponse>").encode()

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
    server.stops = Stops(STOP_SECONDS)
    server.fleet_answers = {}  # ClientToken -> the CreateFleet's answer
    server.serve_forever()


# ---------------------------------------------------------------- player
