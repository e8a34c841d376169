# -*- coding: utf-8 -*-
# Copyright (c) 2026, hardened.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PostgreSQL memory and CPU parameters computed from a host's size (pure functions).

The rules are the usual conservative ones for a dedicated database host:

* ``shared_buffers`` 25 % of memory (at least 128 MB, at most 16 GB beyond 64 GB hosts);
* ``effective_cache_size`` 75 % of memory;
* ``maintenance_work_mem`` memory / 16, between 64 MB and 2 GB;
* ``work_mem`` (memory - shared_buffers) / (3 x max_connections), at least 4 MB;
* parallel workers from the CPU count.

Every value can be overridden; overrides win and are returned unchanged.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class PgTuneError(ValueError):
    """Memory or CPU figures that make no sense."""


def _mb(value):
    value = int(value)
    if value >= 1024 and value % 1024 == 0:
        return "%dGB" % (value // 1024)
    return "%dMB" % value


def tune(memory_mb, cpus, max_connections=100, overrides=None):
    """Return a dict of PostgreSQL parameters (strings/ints) for a host of that size."""
    try:
        memory_mb = int(memory_mb)
        cpus = int(cpus)
        max_connections = int(max_connections)
    except (TypeError, ValueError):
        raise PgTuneError("memory_mb, cpus and max_connections must be integers, got %r, %r, %r"
                          % (memory_mb, cpus, max_connections))
    if memory_mb < 256:
        raise PgTuneError("memory_mb %d is too small for PostgreSQL (at least 256 MB)" % memory_mb)
    if cpus < 1 or max_connections < 10:
        raise PgTuneError("cpus must be >= 1 and max_connections >= 10 (got %d, %d)" % (cpus, max_connections))
    shared = max(128, memory_mb // 4)
    if memory_mb > 65536:
        shared = min(shared, 16384)
    effective = memory_mb * 3 // 4
    maintenance = min(2048, max(64, memory_mb // 16))
    work = max(4, (memory_mb - shared) // (3 * max_connections))
    workers = max(8, cpus)
    out = {
        "max_connections": max_connections,
        "shared_buffers": _mb(shared),
        "effective_cache_size": _mb(effective),
        "maintenance_work_mem": _mb(maintenance),
        "work_mem": _mb(work),
        "max_worker_processes": workers,
        "max_parallel_workers": cpus,
        "max_parallel_workers_per_gather": max(1, min(4, cpus // 2)),
        "max_parallel_maintenance_workers": max(1, min(4, cpus // 2)),
        "huge_pages": "try",
    }
    out.update(overrides or {})
    return out


def timings_problems(ttl, loop_wait, retry_timeout):
    """Why Patroni's timings are unsafe, as a list of messages (empty when they are fine)."""
    problems = []
    try:
        ttl, loop_wait, retry_timeout = int(ttl), int(loop_wait), int(retry_timeout)
    except (TypeError, ValueError):
        return ["ttl, loop_wait and retry_timeout must be integers"]
    if loop_wait < 1:
        problems.append("loop_wait must be at least 1 (got %d)" % loop_wait)
    if retry_timeout < 3:
        problems.append("retry_timeout must be at least 3 (got %d)" % retry_timeout)
    if loop_wait + 2 * retry_timeout > ttl:
        problems.append("loop_wait + 2 x retry_timeout must not exceed ttl: %d + 2 x %d = %d > %d; the "
                        "leader could lose its key before it notices and demotes"
                        % (loop_wait, retry_timeout, loop_wait + 2 * retry_timeout, ttl))
    return problems
