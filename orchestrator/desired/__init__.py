"""Desired state: what each agent should run, computed from the plan in force and its
rollout (`compute`), cached per revision with who has news (`cache`), and owned by one
object (`states.DesiredStates`) that every writer publishes through."""
