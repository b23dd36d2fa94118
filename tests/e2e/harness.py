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
  add-instance --dir D --name N [--cluster C] [--no-boot] [--tag K=V]... [--template] [--stopped]
                            launch an instance outside slurm-ec2; print its id
  new-template-version --dir D
                            a new version of the world's launch template
  proxy   --dir D           (internal) the fault-injecting, counting proxy
  player  --dir D           (internal) plays EC2's instances: boots slurmd

Faults are read from D/faults.json on every request (see Proxy), the EC2
model from D/realism.json (see Realism), requests are appended to
D/requests.jsonl, and the player reads D/player.json ({"skip": [names],
"delay": {name: seconds}, "hide_tags_partitions": [...],
"hide_name_partitions": [...]}).

The parts live beside this file: common (shared helpers), realism (the EC2
model), proxy, metadata (the instance metadata stand-in), player,
slurm_world (up, down, seed and what tests ask of the world), moto_runner
and demo. This file is the command line, and what the benchmark and the
deployment's test use of the world.
"""

import argparse
import os

from common import CLUSTER, REGION, ec2_client, free_port, spawn, wait_port  # noqa: F401 (used by bench.py)
from demo import demo
from metadata import start_metadata  # noqa: F401 (used by the deployment's test)
from moto_runner import moto_command, run_moto  # noqa: F401
from player import run_player
from proxy import run_proxy
from realism import Realism  # noqa: F401 (used by bench.py)
from slurm_world import add_instance, down, instances, new_template_version, seed, terminate, up  # noqa: F401


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["up", "down", "instances", "proxy", "player", "add-instance", "terminate", "demo",
                                            "moto", "new-template-version"])
    parser.add_argument("--dir", required=True)
    parser.add_argument("--bin", default="")
    parser.add_argument("--root", default="", help="up: run Slurm and munge from this Debian root")
    parser.add_argument("--name", default="")
    parser.add_argument("--cluster", default="")
    parser.add_argument("--no-boot", action="store_true", help="add-instance: the player never boots it")
    parser.add_argument("--tag", action="append", default=[], help="add-instance: one more tag, K=V")
    parser.add_argument("--template", action="store_true", help="add-instance: from the world's launch template")
    parser.add_argument("--stopped", action="store_true", help="add-instance: stopped at once")
    parser.add_argument("--port", type=int, default=0, help="moto: its port")
    parser.add_argument("--port-offset", type=int, default=0,
                        help="up: added to every node's slurmd port of partitions.json, so that several "
                             "worlds (one per Slurm version) run at once")
    parser.add_argument("--partitions", default=os.path.join(os.path.dirname(__file__), "partitions.json"))
    args = parser.parse_args()
    commands = {"up": up, "down": down, "instances": instances, "proxy": run_proxy, "player": run_player,
                "add-instance": add_instance, "terminate": terminate, "demo": demo, "moto": run_moto,
                "new-template-version": new_template_version}
    commands[args.command](args)


if __name__ == "__main__":
    main()
