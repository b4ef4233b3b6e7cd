#!/usr/bin/env python3
"""A PreSignUp trigger worker in Python (nats-py): workers are language-agnostic.

It answers `<prefix>.triggers.<pool>.PreSignUp` requests in a queue group with the
Cognito trigger event, `response` filled in, or with {"error": "..."} to refuse the
sign-up. Self sign-ups must carry the access code from ACCESS_CODE in
`validationData.accessCode` or `clientMetadata.accessCode`; users created by an
administrator are confirmed without one.

    pip install nats-py
    NATS_URL=nats://127.0.0.1:4222 ACCESS_CODE=OPEN-SESAME python3 pre_signup_worker.py

Prints `ready` once subscribed. Stops on SIGINT/SIGTERM after draining.
"""

import argparse
import asyncio
import json
import os
import signal

import nats


def decide(event, access_code):
    """Returns the event with `response` filled in, or raises ValueError to refuse."""
    request = event.get("request") or {}
    if event.get("triggerSource") == "PreSignUp_AdminCreateUser":
        event.setdefault("response", {})["autoConfirmUser"] = True
        return event
    if access_code:
        given = (request.get("validationData") or {}).get("accessCode") or (
            request.get("clientMetadata") or {}
        ).get("accessCode")
        if given != access_code:
            raise ValueError("A valid access code is required to sign up.")
    return event


async def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nats-url", default=os.environ.get("NATS_URL", "nats://127.0.0.1:4222"))
    parser.add_argument("--prefix", default=os.environ.get("COGNATE_PREFIX", "cognate"))
    parser.add_argument("--pool", default=os.environ.get("COGNATE_POOL", "*"))
    parser.add_argument("--access-code", default=os.environ.get("ACCESS_CODE", ""))
    args = parser.parse_args()

    nc = await nats.connect(args.nats_url, max_reconnect_attempts=-1)

    async def handle(msg):
        try:
            reply = decide(json.loads(msg.data), args.access_code)
        except ValueError as refusal:
            reply = {"error": str(refusal)}
        except Exception as bad:  # not a trigger event
            reply = {"error": f"invalid PreSignUp event: {bad}"}
        await msg.respond(json.dumps(reply).encode())

    subject = f"{args.prefix}.triggers.{args.pool}.PreSignUp"
    await nc.subscribe(subject, queue="cognate-workers", cb=handle)
    await nc.flush()
    print("ready", flush=True)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await nc.drain()


if __name__ == "__main__":
    asyncio.run(main())
