"""The baseline for the HTTP figure: FastAPI validating the same body, doing nothing else.

``POST /v1/jobs/qr`` validates :class:`schemas.qr.QrOptions` exactly as Offload's route does
(including the QR capacity check) and answers 202 with a small JSON object; it stores and
queues nothing. Run it with the same uvicorn settings as ``offload serve``::

    .venv/bin/python -m bench.bare_app --port 8001
"""

from __future__ import annotations

import argparse
from typing import Any

import uvicorn
from fastapi import FastAPI, status

from schemas.qr import QrOptions

app = FastAPI(title="bare")


@app.post("/v1/jobs/qr", status_code=status.HTTP_202_ACCEPTED)
async def create_qr_job(options: QrOptions) -> dict[str, Any]:
    return {"id": "0" * 32, "status": "queued", "format": options.format.value}


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args()
    uvicorn.run(app, host=args.host, port=args.port, log_config=None, access_log=False)


if __name__ == "__main__":
    main()
