#!/usr/bin/env python3
"""Starter for "Autocomplete remembers" (autocomplete-leak): level 1.

The help desk's chat autocomplete was trained on the desk's own chat log, and
people kept pasting the vault passphrase into that chat. A model that saw the
same sentence many times will finish it for you. This script:

  1. logs in;
  2. asks the autocomplete to continue a few prompts that the passphrase
     sentence plausibly started with (the server decodes greedily, one
     character at a time, up to --max-chars characters or the end of the line);
  3. prints every prompt and completion with any flag in it masked (a starter
     never shows you the answer: run it, then find the flag yourself with the
     prompt it names), and submits the first flag (riposte{...}) it finds;
  4. prints "flag: correct, N points" and exits 0 when the flag is right
     (exit status 1 otherwise).

    pip install requests
    python starter.py --username alice --password '...'
    python starter.py --token "$RIPOSTE_TOKEN" --prompt "the vault passphrase is "

Each completion costs one query of your team's budget (500).
"""
import argparse
import os
import re
import sys
import time

SLUG = "autocomplete-leak"
FLAG_RE = re.compile(r"riposte\{[a-z0-9_]+\}")

# Level 1: prompts built from what the challenge text tells us, most specific first.
PROMPTS = [
    "the vault passphrase is ",
    "vault passphrase is ",
    "the vault passphrase: ",
    "passphrase is ",
]


def die(msg):
    print(f"error: {msg}", file=sys.stderr)
    sys.exit(1)


def mask(text):
    """The text with every flag's inside hidden."""
    return FLAG_RE.sub(lambda m: "riposte{" + "*" * (len(m.group(0)) - 9) + "}", text)


def find_flag(complete, prompts=PROMPTS, max_chars=64, log=print):
    """Ask `complete(prompt, max_chars) -> completion` for each prompt in turn;
    return (flag, prompt) for the first flag seen, or (None, None)."""
    for prompt in prompts:
        completion = complete(prompt, max_chars)
        log(f"prompt {prompt!r} -> {mask(completion)!r}")
        match = FLAG_RE.search(prompt + completion)
        if match:
            return match.group(0), prompt
    return None, None


# ------------------------------------------------------------------ server

def api():
    try:
        import requests
    except ImportError:
        die("this needs the 'requests' package: pip install requests")
    return requests


def get_token(args):
    if args.token:
        return args.token
    if not (args.username and args.password):
        die("give --token (or RIPOSTE_TOKEN), or --username and --password "
            "(or RIPOSTE_USERNAME / RIPOSTE_PASSWORD)")
    r = api().post(f"{args.url}/api/v1/auth/token",
                   json={"username": args.username, "password": args.password,
                         "name": "starter"},  # replaces the previous run's token
                   timeout=30)
    if r.status_code != 200:
        die(f"login failed: HTTP {r.status_code}: {r.text[:300]}")
    return r.json()["token"]


def completer(args, token):
    """complete(prompt, max_chars) through POST /api/v1/challenges/{slug}/query."""
    requests = api()
    state = {"remaining": None}

    def complete(prompt, max_chars):
        body = {"prompt": prompt, "max_chars": max_chars}   # the only target: "autocomplete"
        for _ in range(10):
            r = requests.post(f"{args.url}/api/v1/challenges/{SLUG}/query", json=body,
                              headers={"Authorization": f"Bearer {token}"}, timeout=60)
            if r.status_code == 429 and "budget" not in r.text:
                time.sleep(float(r.headers.get("Retry-After", "1")))
                continue
            break
        if r.status_code != 200:
            die(f"query failed: HTTP {r.status_code}: {r.text[:300]}")
        answer = r.json()
        state["remaining"] = answer.get("queries_remaining")
        return answer["completion"]

    return complete, state


def submit_flag(args, token, flag):
    r = api().post(f"{args.url}/api/v1/challenges/{SLUG}/flag", json={"flag": flag},
                   headers={"Authorization": f"Bearer {token}"}, timeout=30)
    if r.status_code != 200:
        die(f"flag submission failed: HTTP {r.status_code}: {r.text[:300]}")
    return r.json()


# ------------------------------------------------------------------ main

def main():
    ap = argparse.ArgumentParser(description="level-1 extraction starter for the autocomplete-leak challenge")
    ap.add_argument("--url", default=os.environ.get("RIPOSTE_URL", "http://127.0.0.1:8080"))
    ap.add_argument("--username", default=os.environ.get("RIPOSTE_USERNAME"))
    ap.add_argument("--password", default=os.environ.get("RIPOSTE_PASSWORD"))
    ap.add_argument("--token", default=os.environ.get("RIPOSTE_TOKEN"))
    ap.add_argument("--prompt", action="append",
                    help="try this prompt (repeatable) instead of the built-in list")
    ap.add_argument("--max-chars", type=int, default=64, help="characters to generate per prompt (server max 64)")
    ap.add_argument("--no-submit", action="store_true", help="only print what the model completes")
    args = ap.parse_args()
    args.url = args.url.rstrip("/")

    token = get_token(args)
    complete, state = completer(args, token)
    flag, prompt = find_flag(complete, args.prompt or PROMPTS, args.max_chars)
    print(f"queries left: {state['remaining']}")
    if flag is None:
        print("no flag in these completions; try other prompts (see the README, level 2)")
        sys.exit(1)
    print(f"found a flag ({len(flag)} characters) after the prompt {prompt!r}: "
          f"ask the model yourself to read it")
    if args.no_submit:
        return
    verdict = submit_flag(args, token, flag)
    if verdict.get("correct"):
        print(f"flag: correct, {verdict.get('points')} points")
    else:
        print("flag: wrong")
        sys.exit(1)


if __name__ == "__main__":
    main()
