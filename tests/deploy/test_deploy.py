#!/usr/bin/env python3
"""The sample deployment (deploy/) checked without an AWS account:

- the template is what deploy/build-template.py makes of the scripts and the
  policies (one source), and cfn-lint finds nothing in it;
- parliament finds no unknown action, condition key or resource in the
  policies, beyond the findings explained in ACCEPTED;
- the policies grant each action a program calls and nothing else, with the
  conditions that keep them to this cluster;
- the original's flaws are absent (SSH open to the world, a munge key in the
  template, Slurm built from source, NFS, CentOS);
- the stack is created in moto's CloudFormation;
- least privilege in moto with IAM enforced: every program works as a user
  that holds exactly the head node's policy, and without any one of the
  policy's actions that moto checks, the program that needs it fails with a
  line naming the action.

    test_deploy.py --bin <folder of the debug build>

Prints `N passed, N failed` and exits non-zero on a failure.
"""
import argparse
import base64
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback

import boto3
import requests
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEPLOY = os.path.join(ROOT, "deploy")
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
import harness  # noqa: E402  (moto's command line, free ports)

ACCOUNT = "123456789012"
REGION = "us-east-1"
CLUSTER = "lp"

# parliament's findings that the design accepts, and why.
ACCEPTED = {
    # The head node must pass the compute role to the instances it launches;
    # PassRole is limited to that role and to EC2, CreateServiceLinkedRole to
    # EC2 Fleet's role.
    "PERMISSIONS_MANAGEMENT_ACTIONS",
    "PRIVILEGE_ESCALATION",
    # parliament wants every resource type of an action in each statement;
    # the policy gives RunInstances two, as AWS documents for tags at launch:
    # the instance with the request-tag condition, the other resources without.
    "RESOURCE_MISMATCH",
}

# Each EC2 action the programs call (the names they pace and count), and the
# actions EC2 checks besides for a fleet's instances.
IMPLIED = {"ec2:RunInstances"}

RESULTS = []


def test(function):
    RESULTS.append(function)
    return function


def policy_text(name, substitutions):
    with open(os.path.join(DEPLOY, "iam", name)) as f:
        text = f.read()
    for key, value in substitutions.items():
        text = text.replace("${" + key + "}", value)
    left = re.findall(r"\$\{[^}]+\}", text)
    assert not left, f"{name}: no value for {left}"
    return text


SUBSTITUTIONS = {
    "AWS::Partition": "aws", "AWS::Region": REGION, "AWS::AccountId": ACCOUNT,
    "ClusterName": CLUSTER, "ComputeRole.Arn": f"arn:aws:iam::{ACCOUNT}:role/compute",
    "ComputeLaunchTemplate": "lt-0123456789abcdef0",
}


def statements(name):
    return json.loads(policy_text(name, SUBSTITUTIONS))["Statement"]


def actions_of(statement):
    action = statement["Action"]
    return {action} if isinstance(action, str) else set(action)


@test
def the_template_is_made_from_its_sources_and_lints_clean():
    # The template and the Image Builder component, from the scripts and policies.
    subprocess.run([sys.executable, os.path.join(DEPLOY, "build-template.py"), "--check"], check=True)
    lint = subprocess.run([os.path.join(os.path.dirname(sys.executable), "cfn-lint"),
                           os.path.join(DEPLOY, "template.yaml")], capture_output=True, text=True)
    assert lint.returncode == 0, f"cfn-lint:\n{lint.stdout}{lint.stderr}"
    template = load_template()
    user_data = template["Resources"]["HeadNode"]["Properties"]["UserData"]["Fn::Base64"]["Fn::Join"][1]
    with open(os.path.join(DEPLOY, "head-node.sh")) as f:
        assert user_data[1] == f.read(), "the head node's user data is head-node.sh"


@test
def parliament_finds_nothing_unexplained():
    from parliament import analyze_policy_string
    for name in ("head-node.json", "compute-node.json"):
        policy = analyze_policy_string(policy_text(name, SUBSTITUTIONS), include_community_auditors=True)
        unexplained = [f for f in policy.findings if f.issue not in ACCEPTED]
        assert not unexplained, f"{name}: {unexplained}"


@test
def the_policy_grants_what_the_programs_call_and_nothing_else():
    source = ""
    for folder, _, files in os.walk(os.path.join(ROOT, "src", "lib", "ec2")):
        for file in files:
            with open(os.path.join(folder, file)) as f:
                source += f.read()
    # Every EC2 call goes through the account's meter: `calls.call("Action", …)`.
    called = {"ec2:" + name for name in re.findall(r'\.call(?:_on_new)?\(\s*"([A-Za-z]+)"', source)}
    granted = set().union(*(actions_of(s) for s in statements("head-node.json")))
    ec2_granted = {a for a in granted if a.startswith("ec2:")}
    assert ec2_granted == called | IMPLIED, f"granted {sorted(ec2_granted)}, called {sorted(called)}"
    assert granted - ec2_granted == {"iam:PassRole", "iam:CreateServiceLinkedRole", "ssm:GetParameter",
                                     "ssm:PutParameter", "ssm:DeleteParameter"}, sorted(granted)


@test
def every_write_is_kept_to_this_cluster():
    by_sid = {s["Sid"]: s for s in statements("head-node.json")}
    cluster_tag = {"StringEquals": {"aws:ResourceTag/slurm-ec2:cluster": CLUSTER}}
    for statement in by_sid.values():
        acts = actions_of(statement)
        if acts & {"ec2:TerminateInstances", "ec2:StartInstances", "ec2:StopInstances"}:
            assert statement["Condition"] == cluster_tag, statement
        if "ec2:CreateTags" in acts:
            assert statement["Condition"] in (cluster_tag, {"StringEquals": {
                "ec2:CreateAction": ["CreateFleet", "RunInstances"]}}), statement
        if acts & {"ec2:CreateFleet"} or ("ec2:RunInstances" in acts and statement["Resource"].__class__ is str):
            assert statement["Condition"] == {"StringEquals": {"aws:RequestTag/slurm-ec2:cluster": CLUSTER}}, statement
        if "iam:PassRole" in acts:
            assert statement["Resource"] == SUBSTITUTIONS["ComputeRole.Arn"], statement
        if any(a.startswith("ssm:") for a in acts):
            assert statement["Resource"].endswith(f":parameter/slurm-ec2/{CLUSTER}/munge-key"), statement
        if statement["Resource"] == "*":
            assert all(":Describe" in a for a in acts), f"only read-only calls on every resource: {statement}"
    for statement in statements("compute-node.json"):
        assert actions_of(statement) <= {"ec2:DescribeInstances", "ssm:GetParameter"}, statement


def load_template():
    with open(os.path.join(DEPLOY, "template.yaml")) as f:
        return yaml.safe_load(f)


@test
def the_originals_flaws_are_absent():
    template = load_template()
    parameters = template["Parameters"]
    assert parameters["SshCidr"]["Default"] == "", "no SSH unless asked"
    assert not re.match(parameters["SshCidr"]["AllowedPattern"], "0.0.0.0/0"), "SSH never from the whole Internet"
    assert re.match(parameters["SshCidr"]["AllowedPattern"], "203.0.113.0/24")
    assert parameters["ImageId"]["Default"] == "/aws/service/debian/release/12/latest/amd64"
    text = open(os.path.join(DEPLOY, "template.yaml")).read().lower()
    for script in ("head-node.sh", "compute-node.sh"):
        with open(os.path.join(DEPLOY, script)) as f:
            body = f.read().lower()
        for flaw in (r"nfs-common", r"nfs-kernel-server", r"mount\b.*\bnfs", r"/etc/exports", r"make install",
                     r"\./configure", r"centos", r"\byum\b", r"slurm\.conf\s+\S+@"):
            assert not re.search(flaw, body), f"{script} holds {flaw!r}"
    for flaw in (r"nfs-common", r"centos", r"0\.0\.0\.0/0"):
        assert not re.search(flaw, text), f"the template holds {flaw!r}"
    options = template["Resources"]["ComputeLaunchTemplate"]["Properties"]["LaunchTemplateData"]["MetadataOptions"]
    assert options["HttpTokens"] == "required" and options["InstanceMetadataTags"] == "enabled", options


class Moto:
    """A moto server of its own, on a free port; `enforce` turns IAM on."""

    def __init__(self, directory):
        self.port = harness.free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        log = open(os.path.join(directory, "moto.log"), "w")
        self.process = subprocess.Popen(harness.moto_command(self.port), stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        harness.wait_port(self.port)

    def client(self, service, keys=None):
        keys = keys or {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
        return boto3.client(service, region_name=REGION, endpoint_url=self.endpoint, **keys)

    def enforce(self, on):
        # moto checks every request once this many went unchecked.
        requests.post(f"{self.endpoint}/moto-api/reset-auth", data=b"0" if on else b"1000000000").raise_for_status()

    def stop(self):
        os.killpg(self.process.pid, signal.SIGTERM)
        self.process.wait()


@test
def the_stack_is_created_in_motos_cloudformation(moto):
    ec2 = moto.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=cidr, AvailabilityZone=zone)["Subnet"]["SubnetId"]
               for cidr, zone in (("10.9.0.0/20", "us-east-1a"), ("10.9.16.0/20", "us-east-1b"))]
    template = load_template()
    # moto resolves an SSM-typed parameter from its default, and refuses to
    # store names under /aws/: the copy sent to moto takes the image id as text.
    template["Parameters"]["ImageId"] = {"Type": "String"}
    cloudformation = moto.client("cloudformation")
    parameters = {"VpcId": vpc, "SubnetA": subnets[0], "SubnetB": subnets[1], "ClusterName": "deploytest",
                  "ImageId": "ami-12c6146b", "PackageUrl": "https://example.invalid/slurm-ec2.deb"}
    cloudformation.create_stack(StackName="slurm-ec2", TemplateBody=yaml.safe_dump(template),
                                Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
                                Capabilities=["CAPABILITY_IAM"])
    stack = cloudformation.describe_stacks(StackName="slurm-ec2")["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE", stack
    listed = cloudformation.describe_stack_resources(StackName="slurm-ec2")["StackResources"]
    # moto lists a resource whose condition is false without a name.
    resources = {r["LogicalResourceId"]: r for r in listed if "LogicalResourceId" in r}
    wanted = {name for name, resource in template["Resources"].items() if "Condition" not in resource}
    assert set(resources) == wanted, f"{sorted(resources)} for {sorted(wanted)}"
    assert all(r["ResourceStatus"] == "CREATE_COMPLETE" for r in resources.values()), listed
    versions = ec2.describe_launch_template_versions(
        LaunchTemplateId=resources["ComputeLaunchTemplate"]["PhysicalResourceId"])["LaunchTemplateVersions"]
    options = versions[0]["LaunchTemplateData"]["MetadataOptions"]
    assert options["HttpTokens"] == "required" and options["InstanceMetadataTags"] == "enabled", options
    head = ec2.describe_instances(InstanceIds=[resources["HeadNode"]["PhysicalResourceId"]])
    head = head["Reservations"][0]["Instances"][0]
    profile = moto.client("iam").get_instance_profile(
        InstanceProfileName=resources["HeadInstanceProfile"]["PhysicalResourceId"])["InstanceProfile"]
    assert head["IamInstanceProfile"]["Arn"] == profile["Arn"], (head.get("IamInstanceProfile"), profile)
    group = ec2.describe_security_groups(GroupIds=[resources["ClusterSecurityGroup"]["PhysicalResourceId"]])
    ingress = group["SecurityGroups"][0]["IpPermissions"]
    assert all(not p.get("IpRanges") for p in ingress), f"no address range may reach the cluster: {ingress}"
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}
    assert outputs["HeadNodeId"] == head["InstanceId"], outputs
    assert "ConnectWithSsh" not in outputs, outputs


FAKE_SCONTROL = """#!/bin/bash
case "$1" in
  --version) echo "slurm 22.05.8" ;;
  show) [ "$2" = config ] && echo "ClusterName = lp"
        # suspend pools only a node Slurm powers down after it ended well.
        [ "$2" = nodes ] && echo "NodeName=lp-pool-0 State=IDLE+CLOUD+POWERING_DOWN Partitions=lp" ;;
esac
exit 0
"""


def workspace(directory, moto, keys, launch_template, subnets):
    bin_dir = os.path.join(directory, "slurm")
    os.makedirs(bin_dir, exist_ok=True)
    for name in ("scontrol", "squeue"):
        with open(os.path.join(bin_dir, name), "w") as f:
            f.write(FAKE_SCONTROL)
        os.chmod(os.path.join(bin_dir, name), 0o755)
    config = {
        "LogLevel": "INFO", "LogFileName": os.path.join(directory, "slurm-ec2.log"),
        "SlurmBinPath": bin_dir, "ClusterName": CLUSTER, "ResumeBudgetSeconds": 20, "Ec2MaxAttempts": 1,
        "Environment": {"AWS_ENDPOINT_URL_EC2": moto.endpoint, "AWS_EC2_METADATA_DISABLED": "true",
                        "AWS_ACCESS_KEY_ID": keys["aws_access_key_id"],
                        "AWS_SECRET_ACCESS_KEY": keys["aws_secret_access_key"]},
        "SlurmConf": {"PrivateData": "CLOUD", "ResumeProgram": "/usr/lib/slurm-ec2/resume",
                      "SuspendProgram": "/usr/lib/slurm-ec2/suspend", "ResumeRate": 0, "SuspendRate": 0,
                      "ResumeTimeout": 60, "SuspendTime": 350, "TreeWidth": 60000},
    }
    partitions = {"Partitions": [{"PartitionName": "lp", "NodeGroups": [{
        "NodeGroupName": "node", "MaxNodes": 4, "Region": REGION, "PurchasingOption": "on-demand",
        "SlurmSpecifications": {"Weight": "1"},
        "OnDemandOptions": {"AllocationStrategy": "lowest-price"},
        "LaunchTemplateSpecification": {"LaunchTemplateId": launch_template, "Version": "$Latest"},
        "LaunchTemplateOverrides": [{"InstanceType": "t3.micro"}], "SubnetIds": subnets}]}]}
    pooled = dict(partitions["Partitions"][0]["NodeGroups"][0], NodeGroupName="pool",
                  WarmPool={"Size": 2, "MaxAgeHours": 24})
    partitions["Partitions"][0]["NodeGroups"].append(pooled)
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump(config, f)
    with open(os.path.join(directory, "partitions.json"), "w") as f:
        json.dump(partitions, f)


# What each program run needs, and the actions whose removal moto shows.
RUNS = {
    "resume": (["resume", "lp-node-[0-1]"], {"ec2:CreateFleet", "ec2:CreateTags", "ec2:DescribeInstances"}),
    "change-state": (["change-state"], {"ec2:DescribeInstances"}),
    "status": (["slurm-ec2", "status"], {"ec2:DescribeInstances"}),
    "validate": (["slurm-ec2", "validate"], {"ec2:DescribeAvailabilityZones", "ec2:DescribeLaunchTemplateVersions",
                                             "ec2:DescribeSubnets", "ec2:DescribeInstanceTypeOfferings"}),
    "from-ec2": (["generate-conf", "--from-ec2"], {"ec2:DescribeInstanceTypes"}),
    "suspend": (["suspend", "lp-node-[0-1]"], {"ec2:TerminateInstances", "ec2:DescribeInstances"}),
    "teardown": (["slurm-ec2", "teardown"], {"ec2:TerminateInstances", "ec2:DescribeInstances"}),
}
# Actions whose refusal a program survives, saying so in its log: change-state
# reads instance health only where the policy allows it (a policy written
# before it did keeps working).
# A warm pool's moves fall back to what they replace: suspend terminates the
# instance it cannot stop, resume launches for the node whose pooled
# instance it cannot start.
SURVIVED = {"ec2:DescribeInstanceStatus": (["change-state"], "No health of the instances", None),
            "ec2:StopInstances": (["suspend", "lp-pool-0"], "terminating them", "running"),
            "ec2:StartInstances": (["resume", "lp-pool-1"], "Failed to start pooled instances", "pooled")}


def pool_instance(ec2, state):
    """An instance of the group with a warm pool: lp-pool-0's, running, or
    one stopped in the pool."""
    tags = [{"Key": "slurm-ec2:cluster", "Value": CLUSTER}, {"Key": "slurm-ec2:partition", "Value": "lp"},
            {"Key": "slurm-ec2:node-group", "Value": "pool"}]
    if state == "running":
        tags.append({"Key": "Name", "Value": "lp-pool-0"})
    else:
        now = str(int(time.time()))
        tags += [{"Key": "Name", "Value": ""}, {"Key": "slurm-ec2:pool", "Value": "lp-pool-"},
                 {"Key": "slurm-ec2:pooled-at", "Value": now}, {"Key": "slurm-ec2:first-launch", "Value": now}]
    answer = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1,
                               TagSpecifications=[{"ResourceType": "instance", "Tags": tags}])
    if state == "pooled":
        ec2.stop_instances(InstanceIds=[answer["Instances"][0]["InstanceId"]])
# Checked by EC2 but not by moto (CreateFleet alone is authorised there), or
# used by the bootstrap scripts rather than the programs.
NOT_SHOWN_IN_MOTO = {"ec2:RunInstances", "iam:PassRole", "iam:CreateServiceLinkedRole", "ssm:GetParameter",
                     "ssm:PutParameter", "ssm:DeleteParameter"}


def run(binaries, directory, words):
    program = os.path.join(binaries, words[0])
    return subprocess.run([program, "--config-dir", directory] + words[1:], capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin"}, timeout=120)


def actions_only(policy):
    """The policy as moto can check it: moto authorises an EC2 call against
    the resource `*` (it does not know the ARN a call acts on) and evaluates
    no Condition, so its run proves the list of actions; the resources and
    the conditions are checked above, by parliament and by
    every_write_is_kept_to_this_cluster."""
    acts = sorted(set().union(*(actions_of(s) for s in policy["Statement"])))
    return {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": acts, "Resource": "*"}]}


def without(policy, action):
    """The policy with `action` taken out of every statement (a statement left
    with none goes)."""
    kept = []
    for statement in policy["Statement"]:
        acts = sorted(actions_of(statement) - {action})
        if acts:
            kept.append(dict(statement, Action=acts))
    return dict(policy, Statement=kept)


@test
def the_programs_work_with_exactly_the_head_policy_and_fail_without_each_action(moto, binaries):
    directory = tempfile.mkdtemp(prefix="slurm-ec2-least-privilege.")
    ec2, iam = moto.client("ec2"), moto.client("iam")
    vpc = ec2.create_vpc(CidrBlock="10.8.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=cidr, AvailabilityZone=zone)["Subnet"]["SubnetId"]
               for cidr, zone in (("10.8.0.0/20", "us-east-1a"), ("10.8.16.0/20", "us-east-1b"))]
    template_id = ec2.create_launch_template(LaunchTemplateName="lp-compute", LaunchTemplateData={
        "ImageId": "ami-12c6146b", "InstanceType": "t3.micro"})["LaunchTemplate"]["LaunchTemplateId"]
    role = iam.create_role(RoleName="compute", AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"},
                                                "Action": "sts:AssumeRole"}]}))["Role"]["Arn"]
    substitutions = dict(SUBSTITUTIONS, ComputeLaunchTemplate=template_id, **{"ComputeRole.Arn": role})
    head_policy = actions_only(json.loads(policy_text("head-node.json", substitutions)))
    iam.create_user(UserName="head")
    iam.put_user_policy(UserName="head", PolicyName="head-node", PolicyDocument=json.dumps(head_policy))
    created = iam.create_access_key(UserName="head")["AccessKey"]
    keys = {"aws_access_key_id": created["AccessKeyId"], "aws_secret_access_key": created["SecretAccessKey"]}
    workspace(directory, moto, keys, template_id, subnets)

    def run_refused(action, words):
        """Runs `words` under the head policy without `action`: its result, and its stderr and log."""
        moto.enforce(False)
        iam.put_user_policy(UserName="head", PolicyName="head-node",
                            PolicyDocument=json.dumps(without(head_policy, action)))
        moto.enforce(True)
        open(os.path.join(directory, "slurm-ec2.log"), "w").close()
        result = run(binaries, directory, words)
        return result, result.stderr + log(directory)

    try:
        moto.enforce(True)
        for name, (words, _) in RUNS.items():
            result = run(binaries, directory, words)
            assert result.returncode == 0, f"{name} with the head policy: {result.stderr}\n{log(directory)}"
        moto.enforce(False)
        ours = [{"Name": "tag:slurm-ec2:cluster", "Values": [CLUSTER]},
                {"Name": "instance-state-name", "Values": ["pending", "running"]}]
        live = [i["InstanceId"] for r in ec2.describe_instances(Filters=ours)["Reservations"] for i in r["Instances"]]
        assert not live, f"suspend terminated what resume launched: {live}"
        granted = set().union(*(actions_of(s) for s in head_policy["Statement"]))
        shown = set()
        for name, (words, needed) in RUNS.items():
            for action in sorted(needed):
                if name in ("suspend", "teardown"):
                    moto.enforce(False)
                    ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1, TagSpecifications=[{
                        "ResourceType": "instance", "Tags": [
                            {"Key": "Name", "Value": "lp-node-0"}, {"Key": "slurm-ec2:cluster", "Value": CLUSTER},
                            {"Key": "slurm-ec2:partition", "Value": "lp"},
                            {"Key": "slurm-ec2:node-group", "Value": "node"}]}])
                result, said = run_refused(action, words)
                assert result.returncode != 0, f"{name} without {action} succeeded:\n{said}"
                assert f"not authorized to perform: {action}" in said, f"{name} without {action}:\n{said}"
                shown.add(action)
        for action, (words, warning, setup) in SURVIVED.items():
            if setup:
                moto.enforce(False)
                pool_instance(ec2, setup)
            result, said = run_refused(action, words)
            assert result.returncode == 0, f"{words[0]} without {action} failed:\n{said}"
            assert warning in said and f"not authorized to perform: {action}" in said, said
        moto.enforce(False)
        print(f"test-deploy: each refused alone fails its program: {', '.join(sorted(shown))}")
        print(f"test-deploy: refused alone, said in a warning: {', '.join(sorted(SURVIVED))}")
        accounted = shown | set(SURVIVED) | NOT_SHOWN_IN_MOTO
        assert granted == accounted, f"not shown: {sorted(granted - accounted)}"
    finally:
        moto.enforce(False)
        iam.put_user_policy(UserName="head", PolicyName="head-node", PolicyDocument=json.dumps(head_policy))
        shutil.rmtree(directory, ignore_errors=True)


HEAD_PACKAGES = ["munge", "slurmctld", "slurm-client", "python3-boto3", "curl"]
COMPUTE_PACKAGES = ["munge", "slurmd", "slurm-client", "python3-boto3", "curl"]


class Root:
    """A copy of a cached Debian 12 root (scripts/debian-root) with /proc and
    /dev bound inside, where a bootstrap script runs as on a fresh instance
    whose image has Debian's packages (their download is what debian-root
    does once); removed with everything it started."""

    def __init__(self, name, packages, directory):
        cached = os.path.expanduser(f"~/.cache/slurm-ec2-deploy-{name}")
        built = subprocess.run([os.path.join(ROOT, "scripts", "debian-root"), "bookworm", cached] + packages,
                               check=True, capture_output=True, text=True).stdout.strip()
        self.path = os.path.join(directory, name)
        subprocess.run(["cp", "-a", built, self.path], check=True)
        for source in ("/proc", "/dev", "/sys"):
            subprocess.run(["mount", "--rbind", source, self.path + source], check=True)

    def run(self, argv, env, stdin=None, timeout=600):
        return subprocess.run(["chroot", self.path, "/usr/bin/env", "-i"] + [f"{k}={v}" for k, v in env.items()]
                              + argv, input=stdin, capture_output=True, text=True, timeout=timeout)

    def file(self, path):
        try:
            with open(self.path + path) as f:
                return f.read()
        except OSError as error:
            return f"({error})"

    def remove(self):
        for pid in os.listdir("/proc"):
            try:
                if pid.isdigit() and os.readlink(f"/proc/{pid}/root") == self.path:
                    os.kill(int(pid), signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.5)
        for target in ("/sys", "/dev", "/proc"):
            subprocess.run(["umount", "-l", self.path + target], check=False)
        subprocess.run(["rm", "-rf", "--one-file-system", self.path], check=False)


def wait(what, seconds, probe):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(1)
    raise AssertionError(f"waited {seconds} s for {what}")


@test
def the_stack_boots_a_head_node_and_a_compute_node_that_runs_a_job(binaries):
    """Both bootstrap scripts, as the stack's user data gives them, in clean
    Debian 12 roots against moto (EC2, SSM, S3) and metadata stand-ins: the
    head node makes the munge key, configures and starts munged and
    slurmctld; a job makes resume launch an instance; the compute script,
    run as that instance, reads the key, finds its name and starts slurmd
    configless; the job runs there. Then the head node's teardown: nothing
    on a reboot, every instance and the key on a power-off."""
    packages = os.path.join(os.path.dirname(os.path.abspath(binaries)), "debian-test")
    debs = sorted((os.path.join(packages, f) for f in os.listdir(packages) if f.endswith(".deb")),
                  key=os.path.getmtime)
    assert debs, f"no .deb in {packages}: scripts/test-package makes it"
    directory = tempfile.mkdtemp(prefix="slurm-ec2-bootstrap.")
    moto, roots, servers = Moto(directory), [], []
    try:
        s3, ec2, ssm = moto.client("s3"), moto.client("ec2"), moto.client("ssm")
        s3.create_bucket(Bucket="slurm-ec2-packages")
        s3.upload_file(debs[-1], "slurm-ec2-packages", "slurm-ec2.deb")
        # Loopback addresses: the nodes' daemons are reachable where moto places them.
        vpc = ec2.create_vpc(CidrBlock="127.1.0.0/16")["Vpc"]["VpcId"]
        subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=cidr, AvailabilityZone=zone)["Subnet"]["SubnetId"]
                   for cidr, zone in (("127.1.0.0/20", "us-east-1a"), ("127.1.16.0/20", "us-east-1b"))]
        template = load_template()
        template["Parameters"]["ImageId"] = {"Type": "String"}
        parameters = {"VpcId": vpc, "SubnetA": subnets[0], "SubnetB": subnets[1], "ClusterName": "boot",
                      "MaxNodes": "2", "ImageId": "ami-12c6146b",
                      "PackageS3Uri": "s3://slurm-ec2-packages/slurm-ec2.deb"}
        cloudformation = moto.client("cloudformation")
        cloudformation.create_stack(StackName="boot", TemplateBody=yaml.safe_dump(template),
                                    Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
                                    Capabilities=["CAPABILITY_IAM"])
        resources = {r["LogicalResourceId"]: r["PhysicalResourceId"] for r in
                     cloudformation.describe_stack_resources(StackName="boot")["StackResources"]
                     if "PhysicalResourceId" in r}
        head_id = resources["HeadNode"]
        head_data = base64.b64decode(ec2.describe_instance_attribute(
            InstanceId=head_id, Attribute="userData")["UserData"]["Value"]).decode()
        assert len(head_data.encode()) < 16 * 1024, "EC2 takes at most 16 KiB of user data"
        head_metadata = harness.start_metadata(ec2, head_id, tags_exposed=True)
        servers.append(head_metadata)
        ports = f"{harness.free_port()},{harness.free_port()}"
        common = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root", "SLURM_EC2_NO_SYSTEMD": "1",
                  "SLURM_EC2_AWS_ENDPOINT": moto.endpoint}
        head_env = dict(common, SLURM_EC2_SLURM_PORTS=ports,
                        AWS_EC2_METADATA_SERVICE_ENDPOINT=f"http://127.0.0.1:{head_metadata.server_port}/")
        head = Root("head", HEAD_PACKAGES, directory)
        roots.append(head)
        booted = head.run(["/bin/bash", "-s"], head_env, stdin=head_data)
        assert booted.returncode == 0, f"head-node.sh:\n{booted.stderr}"
        key = ssm.get_parameter(Name="/slurm-ec2/boot/munge-key", WithDecryption=True)["Parameter"]
        assert key["Type"] == "SecureString" and len(bytes.fromhex(key["Value"])) == 1024, key["Type"]
        again = head.run(["/bin/bash", "-s"], head_env, stdin=head_data)
        assert again.returncode == 0, f"head-node.sh a second time:\n{again.stderr}"
        assert ssm.get_parameter(Name="/slurm-ec2/boot/munge-key", WithDecryption=True)["Parameter"]["Value"] \
            == key["Value"], "a second run keeps the cluster's key"
        conf = head.file("/etc/slurm/slurm.conf")
        assert "enable_configless" in conf and "NodeName=aws-node-[0-1]" in conf, conf
        wait("slurmctld to answer", 60, lambda: "UP" in head.run(["scontrol", "ping"], head_env).stdout)
        submitted = head.run(["sbatch", "-p", "aws", "-N", "1", "-o", "/tmp/job.out",
                              "--wrap", "echo ran on $SLURMD_NODENAME"], head_env)
        assert submitted.returncode == 0, submitted.stderr
        job = submitted.stdout.split()[-1]
        ours = [{"Name": "tag:slurm-ec2:cluster", "Values": ["boot"]},
                {"Name": "instance-state-name", "Values": ["pending", "running"]}]

        def launched():
            found = [i for r in ec2.describe_instances(Filters=ours)["Reservations"] for i in r["Instances"]]
            return found if found else None
        instance = wait("resume to launch the job's node", 90, launched)[0]
        compute_metadata = harness.start_metadata(ec2, instance["InstanceId"], tags_exposed=True)
        servers.append(compute_metadata)
        template_data = ec2.describe_launch_template_versions(
            LaunchTemplateId=resources["ComputeLaunchTemplate"])["LaunchTemplateVersions"][0]["LaunchTemplateData"]
        compute_data = base64.b64decode(template_data["UserData"]).decode()
        compute = Root("compute", COMPUTE_PACKAGES, directory)
        roots.append(compute)
        compute_env = dict(common, AWS_EC2_METADATA_SERVICE_ENDPOINT=f"http://127.0.0.1:{compute_metadata.server_port}/")
        joined = compute.run(["/bin/bash", "-s"], compute_env, stdin=compute_data)
        assert joined.returncode == 0, \
            f"compute-node.sh:\n{joined.stderr}\nslurmd.log:\n{compute.file('/var/log/slurm/slurmd.log')}"

        def done():
            state = re.search(r"JobState=(\S+)", head.run(["scontrol", "show", "job", job], head_env).stdout)
            return state and state.group(1) in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL") \
                and state.group(1)
        assert wait(f"job {job} to end", 180, done) == "COMPLETED", head.file("/var/log/slurm/slurmctld.log")
        assert compute.file("/tmp/job.out").strip() == "ran on aws-node-0"
        rejoined = compute.run(["/bin/bash", "-s"], compute_env, stdin=compute_data)
        assert rejoined.returncode == 0, f"compute-node.sh a second time:\n{rejoined.stderr}"
        assert "NodeName=aws-node-0 " in head.run(["scontrol", "show", "node", "aws-node-0"], head_env).stdout

        stays = head.run(["/usr/local/sbin/slurm-ec2-teardown"], dict(head_env, SLURM_EC2_SHUTDOWN="reboot"))
        assert stays.returncode == 0 and launched(), stays.stderr
        gone = head.run(["/usr/local/sbin/slurm-ec2-teardown"], head_env)
        assert gone.returncode == 0, gone.stderr
        assert launched() is None, "a power-off leaves no instance of the cluster running"
        names = [p["Name"] for p in ssm.describe_parameters()["Parameters"]]
        assert "/slurm-ec2/boot/munge-key" not in names, names
    finally:
        for root in roots:
            root.remove()
        for server in servers:
            server.shutdown()
        moto.stop()
        shutil.rmtree(directory, ignore_errors=True)


def log(directory):
    try:
        with open(os.path.join(directory, "slurm-ec2.log")) as f:
            return f.read()
    except OSError:
        return ""


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin", required=True, help="the folder of resume, suspend, change-state, slurm-ec2 …")
    parser.add_argument("--only", default="", help="run the tests whose name holds this")
    args = parser.parse_args()
    directory = tempfile.mkdtemp(prefix="slurm-ec2-deploy.")
    moto = Moto(directory)
    passed = failed = 0
    try:
        for function in [f for f in RESULTS if args.only in f.__name__]:
            wanted = function.__code__.co_varnames[:function.__code__.co_argcount]
            arguments = {"moto": moto, "binaries": args.bin}
            started = time.monotonic()
            try:
                function(*[arguments[name] for name in wanted])
                passed += 1
                print(f"test-deploy: {function.__name__} ... ok ({time.monotonic() - started:.1f} s)")
            except Exception:
                failed += 1
                print(f"test-deploy: {function.__name__} ... FAILED")
                traceback.print_exc()
    finally:
        moto.stop()
        shutil.rmtree(directory, ignore_errors=True)
    print(f"deploy: {passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
