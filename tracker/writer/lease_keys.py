"""The keys and Lua scripts of the writers' leases in Redis (``tracker.writer.leases`` says how they are used).

Single-key commands and scripts only, so any slot of a Redis Cluster serves them.
"""

from __future__ import annotations

from tracker.partitions import Partitions

RELEASED = "released"  # a lease's value once its holder let it go cleanly (holders' values hold a "/")

# KEYS[1] the name's claim; ARGV: holder, TTL ms. 1: this holder has the name (taken now or renewed); 0: another has it.
CLAIM_NAME = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
return 0
"""

# KEYS[1] the name's claim; ARGV: holder. Deletes it only if this holder has it.
RELEASE_NAME = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# KEYS[1] the lease; ARGV: holder, TTL ms, marker of a clean release. 0: held by another; 1: taken
# while missing (the previous holder may have lost it early: wait a lease); 2: taken after a release.
ACQUIRE = """
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[3] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
if holder then return 2 end
return 1
"""
# KEYS[1] the lease; ARGV: holder, TTL ms. 1: renewed; 0: gone or another's.
RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
# KEYS[1] the lease; ARGV: holder, "1" to mark it released (else delete it), marker, TTL ms of the mark.
RELEASE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '1' then
  redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4])
else
  redis.call('DEL', KEYS[1])
end
return 1
"""


def lease_key(partitions: Partitions, partition: int) -> str:
    """The partition's lease (in its stream's slot on a Redis Cluster)."""
    return "adserver:lease:" + partitions.stream(partition)


def registry_key(partitions: Partitions) -> str:
    return "adserver:writers:" + partitions.stream_key


def name_key(partitions: Partitions, name: str) -> str:
    """The claim on a writer name (``ADSERVER_WRITER_NAME``) among the writers of these partitions."""
    return f"adserver:writer-name:{partitions.stream_key}:{name}"
