"""Entry point of `pulumi up`: config -> components -> exports (see infra/program.py)."""

from infra.program import main

main()
