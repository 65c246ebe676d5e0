"""``offload``: serve the API, run workers, run the scheduler."""

from __future__ import annotations

import argparse
import sys

from service.settings import Settings, SettingsError, get_settings


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    from service import server

    return server.run(args.host, args.port, args.access_log, settings)


def _worker(args: argparse.Namespace, settings: Settings) -> int:
    from service import worker

    return worker.run(args.processes, settings)


def _scheduler(args: argparse.Namespace, settings: Settings) -> int:
    import asyncio
    import contextlib
    import signal

    from taskiq.cli.scheduler.args import SchedulerArgs
    from taskiq.cli.scheduler.run import run_scheduler

    async def until_stopped() -> None:
        # TaskiQ's scheduler shuts its sources down when cancelled; SIGTERM would just kill it.
        this = asyncio.current_task()
        assert this is not None
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, this.cancel)
        await run_scheduler(
            SchedulerArgs(
                scheduler="scheduler:scheduler",
                modules=["tasks"],
                configure_logging=False,
                update_interval=args.update_interval,
            )
        )

    with contextlib.suppress(KeyboardInterrupt, asyncio.CancelledError):
        asyncio.run(until_stopped())
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="offload", description="Offload: serve the API, run workers, run the scheduler."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser(
        "serve", help="the API; on the embedded default also a worker and the scheduler"
    )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--access-log", action="store_true", help="log every request")
    serve.set_defaults(run=_serve)
    worker = commands.add_parser("worker", help="worker processes that run jobs")
    worker.add_argument("--processes", type=int, default=1, help="worker processes to start")
    worker.set_defaults(run=_worker)
    scheduler = commands.add_parser("scheduler", help="fires cron schedules")
    scheduler.add_argument(
        "--update-interval", type=int, default=10, help="seconds between schedule reloads"
    )
    scheduler.set_defaults(run=_scheduler)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = get_settings()
    except SettingsError as error:
        print(f"offload: {error}", file=sys.stderr)  # noqa: T201
        return 2
    from service.logs import configure_logging

    configure_logging(settings)
    return int(args.run(args, settings))


if __name__ == "__main__":
    sys.exit(main())
