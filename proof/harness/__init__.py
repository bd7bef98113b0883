"""What the suite and the benchmark do around the program: stand-in images, stacks deployed by the
Pulumi CLI with Pulumi's own plugins, HTTP clients, the request loop, the three-node test swarm,
the figures printed."""
