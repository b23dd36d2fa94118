"""The instance metadata stand-in: one per played instance (IMDSv2 tokens,
tags, IAM credentials, and EC2's notices on demand: D/notices.json maps an
instance id to {"instance_action": {...}, "rebalance": {...}, "scheduled": [...]},
served as EC2 serves them)."""

import http.server
import json
import threading
import time

from common import REGION, ROLE, load

NOTICE_PATHS = {"spot/instance-action": "instance_action", "events/recommendations/rebalance": "rebalance",
                "events/maintenance/scheduled": "scheduled"}


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
        base = "/latest/meta-data/"
        key = self.path[len(base):] if self.path.startswith(base) else None
        # The watcher asks every few seconds: answered without asking moto.
        if key in NOTICE_PATHS:
            notice = load(self.server.notices_path, {}).get(self.server.instance_id, {}).get(NOTICE_PATHS[key])
            return self.reply(200, json.dumps(notice)) if notice is not None else self.reply(404, "")
        instance = self.server.describe()
        if instance is None:
            return self.reply(404, "")
        tags = {t["Key"]: t["Value"] for t in instance.get("Tags", [])
                if not (self.server.name_hidden and t["Key"] == "Name")}
        fixed = {
            "instance-id": instance["InstanceId"],
            "instance-type": instance.get("InstanceType", ""),
            "local-ipv4": instance.get("PrivateIpAddress", ""),
            "hostname": instance.get("PrivateDnsName", ""),
            "placement/region": REGION,
            "placement/availability-zone": instance.get("Placement", {}).get("AvailabilityZone", ""),
            "ami-launch-index": str(instance.get("AmiLaunchIndex", 0)),
        }
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


def start_metadata(ec2, instance_id, tags_exposed, name_hidden=False, notices_path=""):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Metadata)
    server.notices_path = notices_path
    server.instance_id = instance_id
    server.tags_exposed = tags_exposed
    server.name_hidden = name_hidden

    def describe():
        found = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
        return found[0]["Instances"][0] if found else None

    server.describe = describe
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
