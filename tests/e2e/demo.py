"""The demo: one job bursting into the world, step by step."""

import os
import subprocess
import time

from common import CLUSTER, ec2_client, load


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
