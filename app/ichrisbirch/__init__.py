"""A small application with the ichrisbirch contract: entry modules, environment, health endpoints."""

__version__ = "0.1.0"
