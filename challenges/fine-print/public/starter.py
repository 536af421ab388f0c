#!/usr/bin/env python3
"""Starter for "Read the fine print" (fine-print).

A model file carries more than weights. This script does what the walkthrough
does, without the onnx package:

  1. logs in and downloads digit_reader.onnx;
  2. lists the readable text in it (like `strings`), longest runs first;
  3. tries to base64-decode every run that looks like base64 and looks for a
     flag (riposte{...}) in the text and in what decodes;
  4. submits the first flag it finds and prints "flag: correct, N points".

It never prints the flag itself: a starter shows the way, not the answer.
Run it, then read the file yourself (`strings digit_reader.onnx`) to see it.

    pip install <server>/clients/riposte-client.zip   # the Riposte client
    python starter.py --username alice --password '...'
    python starter.py --token "$RIPOSTE_TOKEN" --no-submit
"""
import argparse
import base64
import binascii
import os
import re
import sys

try:
    import riposte
except ImportError:
    sys.exit("this starter needs the Riposte client: pip install riposte-client from this server (see its API page: pip install <server>/clients/riposte-client.zip) or from the repository: pip install ./clients/python")

SLUG = "fine-print"
FLAG_RE = re.compile(rb"riposte\{[A-Za-z0-9_]+\}")
BASE64_RE = re.compile(rb"[A-Za-z0-9+/]{8,}={0,2}")


def die(msg):
    print(f"error: {msg}", file=sys.stderr)
    sys.exit(1)


def strings(data, least=6):
    """Runs of at least `least` printable ASCII bytes, as `strings` finds them."""
    return re.findall(rb"[\x20-\x7e]{%d,}" % least, data)


def find_flag(data, log=print):
    """The first flag in the file's text or in a base64 value, or None; logs
    what it looked at (flags masked)."""
    for run in sorted(set(strings(data)), key=len, reverse=True)[:40]:
        shown = FLAG_RE.sub(b"riposte{...}", run).decode("ascii", "replace")
        log(f"text: {shown[:80]}")
        match = FLAG_RE.search(run)
        if match:
            return match.group(0).decode()
        # A protobuf string is preceded by its length byte, which can be a
        # printable character itself: try the run from each of its first
        # characters until its length is a multiple of 4.
        for candidate in BASE64_RE.findall(run):
            for skip in range(4):
                part = candidate[skip:]
                if len(part) % 4:
                    continue
                try:
                    decoded = base64.b64decode(part, validate=True)
                except (binascii.Error, ValueError):
                    continue
                match = FLAG_RE.search(decoded)
                if match:
                    log(f"  base64 that decodes to a flag ({len(match.group(0))} characters)")
                    return match.group(0).decode()
    return None


def connect(args):
    """A client with --token, or logged in with --username and --password
    (its token is named "starter": each run replaces the previous run's)."""
    if args.token:
        return riposte.Client(args.url, token=args.token)
    if not (args.username and args.password):
        die("give --token (or RIPOSTE_TOKEN), or --username and --password")
    return riposte.Client(args.url).login(args.username, args.password, name="starter")


def main():
    ap = argparse.ArgumentParser(description="starter for the fine-print challenge")
    ap.add_argument("--url", default=os.environ.get("RIPOSTE_URL", "http://127.0.0.1:8080"))
    ap.add_argument("--username", default=os.environ.get("RIPOSTE_USERNAME"))
    ap.add_argument("--password", default=os.environ.get("RIPOSTE_PASSWORD"))
    ap.add_argument("--token", default=os.environ.get("RIPOSTE_TOKEN"))
    ap.add_argument("--no-submit", action="store_true", help="only look, do not submit")
    args = ap.parse_args()
    args.url = args.url.rstrip("/")
    rp = connect(args)
    data = rp.load(SLUG, "digit_reader.onnx")    # not an array file: the bytes
    print(f"digit_reader.onnx: {len(data)} bytes")
    flag = find_flag(data)
    if flag is None:
        die("no flag found in the text of the file")
    print(f"found a flag ({len(flag)} characters)")
    if args.no_submit:
        return
    verdict = rp.submit_flag(SLUG, flag)
    if not verdict.get("correct"):
        die("flag: wrong")
    print(f"flag: correct, {verdict.get('points')} points")


if __name__ == "__main__":
    try:
        main()
    except riposte.RiposteError as e:   # refused by the server: its reason, no traceback
        die(e)
