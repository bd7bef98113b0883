"""What the suite and the benchmark do around the program: stand-in images, stacks deployed through
the engine stand-in, HTTP clients, the request loop, the three-node test swarm, the figures printed."""
