"""Entry point for `pulumi up`: the program lives in infra/."""

from infra.program import main

main()
