"""The instance player: boots a slurmd for each running instance, as EC2's
instances would: a stopped instance's slurmd stops, and it boots again when
started.

The boot model (player.json "boot_seconds": {partition: {"cold": s, "warm": s,
"jitter": s}}, off for partitions not named): an instance first seen running
boots after "cold" seconds, one started again (a warm pool's) after "warm",
each plus or minus up to "jitter"; the delay runs before get-nodename, as an
image's boot and user data would."""

import os
import random
import signal
import subprocess
import threading
import time

from common import CLUSTER, ec2_client, load
from metadata import start_metadata


def run_player(args):
    """Boots each running instance of the cluster: get-nodename against its
    metadata stand-in, then `slurmd -D -b -N <name>`; stops it at termination."""
    world = load(os.path.join(args.dir, "world.json"), {})
    ec2 = ec2_client(f"http://127.0.0.1:{world['moto_port']}")
    booting = {}  # instance id -> {"thread", "slurmd", "metadata"}
    seen = set()  # instances booted before: a start of one is warm
    log = open(os.path.join(args.dir, "log", "player.log"), "a", buffering=1)

    def boot_delay(partition, warm):
        model = load(os.path.join(args.dir, "player.json"), {}).get("boot_seconds", {}).get(partition)
        if not model:
            return 0.0
        jitter = float(model.get("jitter", 0))
        return max(0.0, float(model["warm" if warm else "cold"]) + random.uniform(-jitter, jitter))

    def boot(instance_id, tags, address, warm, state):
        control = load(os.path.join(args.dir, "player.json"), {})
        partition = tags.get("slurm-ec2:partition")
        delay = boot_delay(partition, warm)
        if delay:
            log.write(f"{instance_id}: {'warm' if warm else 'cold'} boot, {delay:.1f} s\n")
            time.sleep(delay)
        if state.get("gone"):
            return
        metadata = start_metadata(ec2, instance_id, partition not in control.get("hide_tags_partitions", []),
                                  partition in control.get("hide_name_partitions", []),
                                  os.path.join(args.dir, "notices.json"))
        state["metadata"] = metadata
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
        if name in control.get("skip", []) or name.startswith(tuple(control.get("skip_prefixes", []))):
            log.write(f"{instance_id}: told not to boot {name}\n")
            return
        time.sleep(control.get("delay", {}).get(name, 0))
        if state.get("gone"):
            return
        slurmd_env = dict(os.environ)
        if world.get("source_shim"):
            # Slurm 23.11+ takes NodeAddr from the address a node registers from.
            slurmd_env.update(LD_PRELOAD=world["source_shim"], SLURM_EC2_SOURCE_ADDR=address)
        slurmd = subprocess.Popen(world["prefix"] + ["/usr/sbin/slurmd", "-D", "-b", "-N", name, "-f", world["slurm_conf"]]
                                  + slurmd_args,
                                  stdout=subprocess.DEVNULL, env=slurmd_env,
                                  stderr=open(os.path.join(args.dir, "log", f"slurmd-{name}.err"), "a"))
        state["slurmd"] = slurmd
        log.write(f"{instance_id}: slurmd for {name} pid {slurmd.pid}\n")
        # The notice watcher, as slurm-ec2-watch.service runs it beside slurmd.
        state["watch"] = subprocess.Popen(
            world["prefix"] + [os.path.join(world["bin"], "slurm-ec2"), "--config-dir", world["bin"], "watch"],
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(args.dir, "log", f"watch-{name}.log"), "a"),
            env=dict(env, SLURM_CONF=world["slurm_conf"]))

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
                state = booting[instance_id] = {}
                warm = instance_id in seen
                seen.add(instance_id)
                thread = threading.Thread(target=boot, args=(instance_id, tags, instance.get("PrivateIpAddress", ""),
                                                             warm, state), daemon=True)
                state["thread"] = thread
                thread.start()
        for instance_id, state in list(booting.items()):
            if instance_id not in live and not state.get("gone"):
                state["gone"] = True
                if state.get("slurmd"):
                    state["slurmd"].terminate()
                    log.write(f"{instance_id}: terminated, slurmd stopped\n")
                if state.get("watch"):
                    state["watch"].terminate()
                if state.get("metadata"):
                    state["metadata"].shutdown()
                # Stopped, it may start again (a warm pool's): it boots anew then.
                del booting[instance_id]
        time.sleep(0.5)
    for state in booting.values():
        for process in ("slurmd", "watch"):
            if state.get(process):
                state[process].terminate()


# ---------------------------------------------------------------- world
