"""The proof kept beside the product: everything that shows the program does what it says without the
Pulumi CLI. It imports the product (`infra/`); the product never imports it.

- `mocks.py`: the program run in-process under Pulumi mocks, each registration recorded;
- `provider.py`: what pulumi-docker does with each field (diff, read-back forms, Check);
- `order.py`: the engine's dependency order and its delete-first cascade;
- `plan.py`: committed plans and `python -m proof.plan --diff` (what an `up` would do);
- `engine/`: the engine stand-in that deploys the program on a real Docker engine, run after run;
- `harness/`: stand-in images, deployed stacks, clients, the request loop, the test swarm.
"""
