"""`--emulate-gflops G`: make this machine compute like a G GFLOP/s device.

After a partition runs, the agent waits until the compute has taken what it would take
on the emulated device, `gflops / G` seconds, by the contract's cost model. A machine
slower than the emulated device cannot be sped up: the time is never less than the real
one. The wait is an asyncio sleep, so the emulated device serves other requests meanwhile
(a real device would be busy; its utilization is reported from the stretched time).
"""

from __future__ import annotations


def emulated_seconds(real_s: float, gflops: float, emulate_gflops: float | None) -> float:
    """How long the work counts as taking: `gflops / G`, never less than `real_s`."""
    if emulate_gflops is None or gflops <= 0:
        return real_s
    return max(gflops / emulate_gflops, real_s)


def extra_wait(real_s: float, gflops: float, emulate_gflops: float | None) -> float:
    """Seconds to wait after the real compute so that it takes `emulated_seconds`."""
    return emulated_seconds(real_s, gflops, emulate_gflops) - real_s
