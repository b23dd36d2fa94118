"""Parts every piece of the world shares: the Region and cluster, ports, JSON
files, an EC2 client, and starting a process with its log."""

import json
import os
import socket
import subprocess
import time


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



def spawn(argv, log_path, env=None):
    out = open(log_path, "a")
    return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True).pid




# The command line every part of the world is started by.
HARNESS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "harness.py")
