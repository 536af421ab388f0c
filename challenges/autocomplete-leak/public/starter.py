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

    pip install <server>/clients/riposte-client.zip   # the Riposte client
    python starter.py --username alice --password '...'
    python starter.py --token "$RIPOSTE_TOKEN" --prompt "the vault passphrase is "

Each completion costs one query of your team's budget (500).
"""
import argparse
import os
import re
import sys

try:
    import riposte
except ImportError:
    if __name__ == "__main__":
        sys.exit("this starter needs the Riposte client: pip install riposte-client from this server (see its API page: pip install <server>/clients/riposte-client.zip) or from the repository: pip install ./clients/python")
    riposte = None   # imported by build/build.py for the attack alone: no server, no client

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

def connect(args):
    """A client with --token, or logged in with --username and --password
    (its token is named "starter": each run replaces the previous run's)."""
    if args.token:
        return riposte.Client(args.url, token=args.token)
    if not (args.username and args.password):
        die("give --token (or RIPOSTE_TOKEN), or --username and --password "
            "(or RIPOSTE_USERNAME / RIPOSTE_PASSWORD)")
    return riposte.Client(args.url).login(args.username, args.password, name="starter")


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

    rp = connect(args)

    def complete(prompt, max_chars):   # one query of the budget each; the only target: "autocomplete"
        return rp.complete(SLUG, prompt, max_chars)["completion"]

    flag, prompt = find_flag(complete, args.prompt or PROMPTS, args.max_chars)
    print(f"queries left: {rp.budget_left}")
    if flag is None:
        print("no flag in these completions; try other prompts (see the README, level 2)")
        sys.exit(1)
    print(f"found a flag ({len(flag)} characters) after the prompt {prompt!r}: "
          f"ask the model yourself to read it")
    if args.no_submit:
        return
    verdict = rp.submit_flag(SLUG, flag)
    if verdict.get("correct"):
        print(f"flag: correct, {verdict.get('points')} points")
    else:
        print("flag: wrong")
        sys.exit(1)


if __name__ == "__main__":
    try:
        main()
    except riposte.RiposteError as e:   # refused by the server: its reason, no traceback
        die(e)
