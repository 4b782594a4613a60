"""A minimal HealthChain CDS Hooks service answering one constant card: the peer of ``bench/serve.py``.

Run with HealthChain's own environment (it imports nothing from epidose):

    .venv-healthchain/bin/python bench/healthchain_peer.py --port PORT [--workers 2]

HealthChain parses each request into its ``CDSRequest`` model (context and prefetch as sent) and
answers the same card whatever the body; uvicorn serves it on 127.0.0.1. It prints the hook's path.
"""

from __future__ import annotations

import argparse
import logging

SERVICE_ID = "bench-constant"


def build_app():  # type: ignore[no-untyped-def]
    from healthchain.gateway import CDSHooksService, HealthChainAPI
    from healthchain.models import Card, CDSRequest, CDSResponse

    app = HealthChainAPI(title="HealthChain constant card", enable_events=False)
    service = CDSHooksService()

    @service.hook("patient-view", id=SERVICE_ID)
    def constant_card(request: CDSRequest) -> CDSResponse:
        return CDSResponse(cards=[Card(summary="Levetiracetam: constant benchmark card", indicator="info",
                                       source={"label": "bench"})])

    app.register_service(service)
    return app


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    logging.getLogger("healthchain").setLevel(logging.WARNING)
    uvicorn.run("healthchain_peer:build_app", factory=True, host="127.0.0.1", port=args.port,
                workers=args.workers, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
