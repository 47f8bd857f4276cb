"""The fake Bot API as its own process, so it does not share a core's time with what is measured."""

from __future__ import annotations

import argparse

import uvicorn

from sandbox.botapi import FakeBotAPI, create_app

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(create_app(FakeBotAPI()), host="127.0.0.1", port=args.port, log_level="warning", access_log=False)
