"""The error boundary of every command (`Cli.invoke`) and the errors a command raises for the
user: one message saying what failed, why and what to do; exit status 2 for configuration and
usage, 1 for anything else."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from dynamic_assets.declarations.model import Declarations

CONFIGURATION = 2  # exit status of a configuration or usage error, as click's usage errors
FAILED = 1


class Failure(click.ClickException):
    """An error as the user sees it: `Error: <message>` on stderr, then exit status 1."""

    exit_code = FAILED


class Misconfigured(Failure):
    """A configuration or usage error: exit status 2."""

    exit_code = CONFIGURATION


def explain(exc: Exception, command: str | None = None) -> Failure:
    """The one message and exit status a user sees for an exception a command raised."""
    from dynamic_assets.db.connection import ConnectionStringError, DatabaseUnreachable
    from dynamic_assets.declarations.model import ConfigError

    if isinstance(exc, DatabaseUnreachable):
        message = str(exc)
        if os.environ.get("SUPABASE_DB_URL"):
            glue = " " if message.endswith("?") else "; "
            message += glue + "SUPABASE_DB_URL is set, so the embedded server is not used"
        return Misconfigured(message)
    if isinstance(exc, ConnectionStringError):
        return Misconfigured(f"SUPABASE_DB_URL: {exc}")
    if isinstance(exc, ConfigError):
        return Misconfigured(str(exc))
    what = f"{command} failed" if command else "failed"
    return Failure(f"{what}: {type(exc).__name__}: {exc} (--debug shows the traceback)")


def debugging(ctx: click.Context) -> bool:
    return bool(ctx.params.get("debug")) or os.environ.get("DYNAMIC_ASSETS_DEBUG", "") not in (
        "",
        "0",
    )


class Cli(click.Group):
    """The group whose `invoke` is the error boundary of every command."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:
            if debugging(ctx):
                raise
            raise explain(exc, ctx.invoked_subcommand) from exc


def declared_dataset(decls: Declarations, name: str) -> None:
    """A configuration error naming the declared datasets when `name` is not one of them."""
    names = [d.name for d in decls.datasets]
    if name not in names:
        raise Misconfigured(
            f"dataset {name!r} is not declared: the declared datasets are {', '.join(names)}"
        )
