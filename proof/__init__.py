"""The proof kept beside the product: what the suite and the benchmark need around the program. It
imports the product (`infra/`); the product never imports it.

- `mocks.py`: the program run in-process under Pulumi mocks, each registration recorded (unit tests);
- `resources.py`: the resource type tokens and Pulumi's secret marker, as the tests read them;
- `harness/`: stacks deployed by the Pulumi CLI through the Automation API, stand-in images, HTTP
  clients, the request loop, the three-node test swarm, the figures printed.
"""
