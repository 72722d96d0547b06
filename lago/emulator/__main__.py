"""``python -m lago.emulator``: serve the emulator with uvicorn."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from pathlib import Path

import uvicorn

from .app import DEFAULT_API_KEY, create_app
from .autosave import Autosave
from .persistence import load
from .state import EmulatorState


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m lago.emulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3000)
    parser.add_argument("--api-key", default=DEFAULT_API_KEY)
    parser.add_argument("--api-url", default=None, help="LAGO_API_URL: the webhook JWT issuer")
    parser.add_argument("--seed", type=int, default=None, help="seed for fault draws")
    parser.add_argument("--log-level", default="warning")
    parser.add_argument(
        "--state-file", default=None, help="keep the state in this JSON file (default: memory)"
    )
    return parser.parse_args()


def main() -> None:
    """Parse the command line and serve until interrupted."""
    args = _arguments()
    state = EmulatorState(api_url=args.api_url or f"http://{args.host}:{args.port}")
    state.faults.reseed(args.seed)
    app = create_app(state, api_key=args.api_key)
    if args.state_file is None:
        uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, access_log=False)
        return
    path = Path(args.state_file)
    if load(state, path):
        state.api_url = args.api_url or f"http://{args.host}:{args.port}"
    saving = Autosave(app, state, path)
    asyncio.run(_serve(saving, args))


async def _serve(app: Autosave, args: argparse.Namespace) -> None:
    """Serve ``app``, writing its state on a short debounce and once more at the end."""
    config = uvicorn.Config(
        app, host=args.host, port=args.port, log_level=args.log_level, access_log=False
    )
    writer = asyncio.create_task(app.run())
    try:
        await uvicorn.Server(config).serve()
    finally:
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await writer
        app.flush()


if __name__ == "__main__":
    main()
