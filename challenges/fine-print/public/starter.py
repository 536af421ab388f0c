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

    pip install requests
    python starter.py --username alice --password '...'
    python starter.py --token "$RIPOSTE_TOKEN" --no-submit
"""
import argparse
import base64
import binascii
import os
import re
import sys

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


def requests_module():
    try:
        import requests
    except ImportError:
        die("this needs the 'requests' package: pip install requests")
    return requests


def get_token(args):
    if args.token:
        return args.token
    if not (args.username and args.password):
        die("give --token (or RIPOSTE_TOKEN), or --username and --password")
    r = requests_module().post(f"{args.url}/api/v1/auth/token",
                               json={"username": args.username, "password": args.password,
                                     "name": "starter"}, timeout=30)
    if r.status_code != 200:
        die(f"login failed: HTTP {r.status_code}: {r.text[:300]}")
    return r.json()["token"]


def main():
    ap = argparse.ArgumentParser(description="starter for the fine-print challenge")
    ap.add_argument("--url", default=os.environ.get("RIPOSTE_URL", "http://127.0.0.1:8080"))
    ap.add_argument("--username", default=os.environ.get("RIPOSTE_USERNAME"))
    ap.add_argument("--password", default=os.environ.get("RIPOSTE_PASSWORD"))
    ap.add_argument("--token", default=os.environ.get("RIPOSTE_TOKEN"))
    ap.add_argument("--no-submit", action="store_true", help="only look, do not submit")
    args = ap.parse_args()
    args.url = args.url.rstrip("/")
    token = get_token(args)
    requests = requests_module()
    headers = {"Authorization": f"Bearer {token}"}
    r = requests.get(f"{args.url}/api/v1/challenges/{SLUG}/files/digit_reader.onnx",
                     headers=headers, timeout=60)
    if r.status_code != 200:
        die(f"download failed: HTTP {r.status_code}: {r.text[:300]}")
    print(f"digit_reader.onnx: {len(r.content)} bytes")
    flag = find_flag(r.content)
    if flag is None:
        die("no flag found in the text of the file")
    print(f"found a flag ({len(flag)} characters)")
    if args.no_submit:
        return
    r = requests.post(f"{args.url}/api/v1/challenges/{SLUG}/flag", headers=headers,
                      json={"flag": flag}, timeout=30)
    if r.status_code != 200:
        die(f"flag submission failed: HTTP {r.status_code}: {r.text[:300]}")
    verdict = r.json()
    if not verdict.get("correct"):
        die("flag: wrong")
    print(f"flag: correct, {verdict.get('points')} points")


if __name__ == "__main__":
    main()
