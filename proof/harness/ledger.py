"""The second application (tests/apps/ledger) as a stack runs it: its contract, in configuration only."""

from __future__ import annotations

import json

from infra.identity import PROJECT_DIR

LEDGER_DIR = PROJECT_DIR / "tests" / "apps" / "ledger"
LEDGER_PORT = 9000

# Stack config (keys without the project prefix) that runs the ledger instead of the shipped app.
LEDGER_CONTRACT: dict[str, str] = {
    "appDirectory": str(LEDGER_DIR.relative_to(PROJECT_DIR)),
    "apiCommand": json.dumps(
        [
            "gunicorn",
            "ledger.service:application",
            "--bind",
            f"0.0.0.0:{LEDGER_PORT}",
            "--workers",
            "2",
            "--graceful-timeout",
            "20",
        ]  # fmt: skip
    ),
    "apiContainerPort": str(LEDGER_PORT),
    "apiHealthPath": "/livez",
    "apiHealthCommand": "[]",  # probed over HTTP: the image has python3, neither curl nor wget
    "appEnabled": "false",
    "schedulerEnabled": "false",
    "migrationCommand": json.dumps(["python", "-m", "ledger.schema", "upgrade", "head"]),
}
