"""The one seam between `dr-rebuild` and the Pulumi engine (tests replace it with a fake).

The Automation API drives the `pulumi` CLI, which must be installed with its provider plugins
before a disaster (it downloads them at run time otherwise); the state backend and the secrets
provider must live outside the cluster that was lost. `StackEngine` is all the rebuild needs.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from jobs.errors import ExitCode, PgBackupError

# The stack config key the program's explicit Kubernetes provider reads (infra/config.py reads it
# as a secret); the provider is declared with `delete_unreachable=True`, so a refresh against the
# lost cluster drops its resources from the state instead of failing.
KUBECONFIG_KEY = "pgbackup:kubeconfig"


class StackEngine(Protocol):
    def select(self) -> str:
        """Select the existing stack; returns its fully qualified name."""
        ...

    def set_config(
        self, key: str, value: str, secret: bool = False, path: bool = False
    ) -> None: ...

    def up(self, on_output: Callable[[str], Any]) -> dict[str, Any]:
        """Run `pulumi up`; returns the stack outputs as plain values."""
        ...


class AutomationStack:
    """`StackEngine` over `pulumi.automation` (a local workspace in the project directory)."""

    def __init__(self, stack: str, project_dir: Path) -> None:
        self.stack_name = stack
        self.project_dir = project_dir
        self._stack: Any = None

    def _require(self) -> Any:
        if self._stack is None:
            self.select()
        return self._stack

    def select(self) -> str:
        from pulumi import automation as auto

        try:
            self._stack = auto.select_stack(
                stack_name=self.stack_name, work_dir=str(self.project_dir)
            )
        except auto.errors.StackNotFoundError as error:
            raise PgBackupError(
                f"Pulumi stack {self.stack_name} does not exist in the state backend",
                "log in to the backend that holds it (`pulumi login <url>`) and check the name",
                ExitCode.NOT_FOUND,
            ) from error
        except FileNotFoundError as error:
            raise PgBackupError(
                "the pulumi CLI is not installed",
                "install it and its plugins first (see the README's disaster-recovery runbook)",
                ExitCode.CONFIG,
            ) from error
        except auto.errors.CommandError as error:
            raise PgBackupError(
                f"pulumi could not select stack {self.stack_name}: {_last_line(error)}",
                "check `pulumi whoami` and the PULUMI_CONFIG_PASSPHRASE / secrets provider",
                ExitCode.UNREACHABLE,
            ) from error
        return str(self._stack.name)

    def set_config(self, key: str, value: str, secret: bool = False, path: bool = False) -> None:
        from pulumi import automation as auto

        if not secret:
            self._require().set_config(key, auto.ConfigValue(value=value), path=path)
            return
        # The Automation API passes values in argv, where `ps` shows them to everyone on the
        # machine: a secret (the new cluster's kubeconfig) goes through stdin instead, which
        # `pulumi config set` reads when no value is given.
        argv = ["pulumi", "config", "set", "--secret", "--stack", self._require().name, key]
        if path:
            argv.insert(4, "--path")
        done = subprocess.run(
            argv, input=value, text=True, capture_output=True, cwd=self.project_dir, check=False
        )
        if done.returncode != 0:
            raise PgBackupError(
                f"pulumi could not set {key}: {_last_line(Exception(done.stderr))}",
                "check `pulumi whoami` and the stack's secrets provider, then re-run",
                ExitCode.CONFIG,
            )

    def up(self, on_output: Callable[[str], Any]) -> dict[str, Any]:
        from pulumi import automation as auto

        try:
            result = self._require().up(on_output=on_output, refresh=True)
        except auto.errors.CommandError as error:
            raise PgBackupError(
                f"pulumi up of stack {self.stack_name} failed: {_last_line(error)}",
                "fix the cause shown above and re-run dr-rebuild (finished steps are skipped)",
                ExitCode.STEP_FAILED,
            ) from error
        return {name: output.value for name, output in result.outputs.items()}


def _last_line(error: Exception) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__
