"""How long the WeChat callback takes to refuse hostile XML (the issue's target: within 100 ms).

    python bench/callback_hostile.py [--repeat 200] [--record]

Each payload of ``tests/channels/hostile_xml.py`` (external entities, parameter entity, external DTD,
billion laughs, quadratic blowup, internal DTD, XInclude, deep nesting, one byte over 64 KiB) goes
through ``parse_message`` ``--repeat`` times in this process; every call must raise ``BadMessage``
(anything else is an error: listed, and exit 1). For scale, a valid subscribe event is parsed the same
number of times, and opened through ``unwrap`` in safe mode (signature, msg_signature, AES, parse).

Per payload the slowest call and the median are printed; ``hostile_max_ms`` is the slowest refusal of
any payload, first calls included. The last line is the figure bench/RESULTS.md records; ``--record``
appends it there. Pure CPU: no database, no network.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

from common import ROOT, ms, record, say

sys.path.insert(0, str(ROOT))  # the payloads live beside the tests that refuse them

from tests.channels.hostile_xml import hostile_payloads

from datong.channels.wechat.callback import (
    BadMessage,
    SafeModeCipher,
    msg_signature,
    parse_message,
    unwrap,
)

SECTION = "## WeChat callback: refusing hostile XML (`bench/callback_hostile.py`)"
INTRO = """
Each hostile body of `tests/channels/hostile_xml.py` (external entity to `/etc/passwd` and to a local
file, parameter entity, external DTD, billion laughs, quadratic blowup, internal DTD, XInclude, 5,000
nested elements, 64 KiB + 1 byte) through `parse_message` N times in one process, each call refused
with `BadMessage`. `hostile_max_ms` is the slowest refusal of any payload (first calls included),
`hostile_median_ms` the slowest payload's median; `valid_ms` parses a valid subscribe event and
`safe_ms` opens one through `unwrap` in safe mode (both medians), for scale. Target: under 100 ms.
"""

KEY = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
APPID = "wx5823bf96d3bd56c7"
TOKEN = "bench-token"
VALID = (
    b"<xml><ToUserName><![CDATA[gh_0123456789ab]]></ToUserName>"
    b"<FromUserName><![CDATA[oLVPpjqs2BhvzwPj5A-vTYAX3GLc]]></FromUserName><CreateTime>1714036504</CreateTime>"
    b"<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[subscribe]]></Event>"
    b"<EventKey><![CDATA[qrscene_guide_0042]]></EventKey><Ticket><![CDATA[gQFx8DwAAAAAAAAAAS5o]]></Ticket></xml>"
)


def timings(call: Callable[[], object], repeat: int, *, refused: bool) -> list[float]:
    """Seconds per call; with ``refused`` every call must raise BadMessage."""
    out = []
    for _ in range(repeat):
        started = time.perf_counter()
        try:
            call()
        except BadMessage:
            if not refused:
                raise
        else:
            if refused:
                raise RuntimeError("accepted")
        out.append(time.perf_counter() - started)
    return out


def safe_call() -> Callable[[], object]:
    cipher = SafeModeCipher([KEY], APPID)
    encrypt = cipher.encrypt(VALID)
    timestamp, nonce = "1714036504", "1514711492"
    params = {
        "signature": hashlib.sha1("".join(sorted((TOKEN, timestamp, nonce))).encode()).hexdigest(),
        "timestamp": timestamp,
        "nonce": nonce,
        "encrypt_type": "aes",
        "msg_signature": msg_signature(TOKEN, timestamp, nonce, encrypt),
    }
    body = f"<xml><ToUserName>gh_0123456789ab</ToUserName><Encrypt>{encrypt}</Encrypt></xml>".encode()
    return lambda: unwrap(params, body, token=TOKEN, cipher=cipher)


def describe_machine() -> str:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 0
    mem = ""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = f", {int(line.split()[1]) / 1024 / 1024:.0f} GiB"
    except OSError:
        pass
    return f"{cores} cores{mem}, Python {platform.python_version()}"


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=200, help="calls per payload (default 200)")
    parser.add_argument("--record", action="store_true", help="append the figure to bench/RESULTS.md")
    args = parser.parse_args(argv)

    errors: list[str] = []
    worst: dict[str, tuple[float, float]] = {}  # name → (max, median) seconds
    with tempfile.TemporaryDirectory(prefix="datong-hostile-") as work:
        secret = Path(work) / "secret.txt"
        secret.write_text("not to be read\n", encoding="utf-8")
        for name, body in hostile_payloads(str(secret)).items():
            try:
                spent = timings(lambda body=body: parse_message(body), args.repeat, refused=True)
            except Exception as exc:  # a payload that is not refused is the one failure that matters
                errors.append(f"{name}: {type(exc).__name__}: {exc}")
                continue
            worst[name] = (max(spent), statistics.median(spent))
            shown = f"max {ms(worst[name][0]):7.3f} ms  median {ms(worst[name][1]):.3f} ms"
            say(f"  {name:<24} {len(body):>6} bytes  {shown}")
    valid = statistics.median(timings(lambda: parse_message(VALID), args.repeat, refused=False))
    safe = statistics.median(timings(safe_call(), args.repeat, refused=False))
    for line in errors:
        say(f"ERROR {line}")
    if not worst:
        sys.exit(1)
    slowest = max(worst, key=lambda name: worst[name][0])
    hostile_max, _ = worst[slowest]
    median = max(median for _max, median in worst.values())
    figure = (
        f"hostile_max_ms={ms(hostile_max):.2f} hostile_median_ms={ms(median):.3f} "
        f"valid_ms={ms(valid):.3f} safe_ms={ms(safe):.3f}"
    )
    if args.record and not errors:
        command = shlex.join(["python", "bench/callback_hostile.py", *argv])
        note = (
            f"{len(worst)} payloads × {args.repeat} calls, all refused; slowest: {slowest}; "
            f"target 100 ms {'met' if ms(hostile_max) < 100 else 'MISSED'}"
        )
        record(
            SECTION,
            INTRO,
            f"| {date.today().isoformat()} | {describe_machine()} | `{command}` | `{figure}` ({note}) |",
        )
    elif args.record:
        say("not recorded: the run had errors")
    print(figure, flush=True)
    if errors:
        sys.exit(1)


if __name__ == "__main__":
    main(sys.argv[1:])
