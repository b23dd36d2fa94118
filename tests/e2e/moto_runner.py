"""moto's server, with what it lacks patched in."""

import sys

from common import HARNESS


def moto_command(port):
    """moto's server on loopback, with its tag look-up made a dictionary read."""
    return [sys.executable, HARNESS, "moto", "--dir", "-", "--port", str(port)]


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
