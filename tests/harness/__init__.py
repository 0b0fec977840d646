"""One way to start fleets, for the tests and the benchmarks alike.

- `ports`: listening ports for servers and agents (from below the ephemeral range);
- `processes`: a launcher for real `continuum` processes (servers, agents), each stopped
  at the end, whatever happened; `wait_until` with their logs when a wait fails;
- `services`: the PostgreSQL and Redis of this machine (fresh databases, key prefixes);
- `emulated`: a small fleet of real agent processes in emulation mode (`EmulatedFleet`);
- `simulated`: heartbeat-only simulated agents in one asyncio loop, for fleets of
  hundreds or thousands (`SimulatedFleet`), on the lean HTTP client of `leanhttp`;
- `netns`: network namespaces with shaped links (and partitions), for tests that need a
  real network;
- `faults`: a private Redis and a private PostgreSQL to restart, and a recorder of live
  traffic and of what each agent holds while a fault happens.

Nothing here imports pytest except `fixtures`, the pytest plugin that wraps these for the
test suite (registered in tests/conftest.py). Benchmarks put the repository root on
sys.path and import from here.
"""
