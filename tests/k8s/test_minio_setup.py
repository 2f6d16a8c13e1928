"""The MinIO setup Job's script. Its image (mc on ubi-micro) has a shell and mc and hardly anything else, and the Job
runs again on every upgrade: the script may call nothing but mc and shell builtins, and a second run must succeed and
change nothing. Checked by reading its command words, and by running it twice in real shells whose PATH holds only a
stand-in mc that keeps MinIO's state and fails where the real one does."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.k8s.render import Renderer, by_kind

# Reserved words and the builtins of every POSIX shell the script may use.
SHELL_WORDS = {"if", "then", "else", "elif", "fi", "while", "until", "do", "done", "case", "esac", "for", "!", "{", "}"}
BUILTINS = {"echo", "printf", "test", "[", "true", "false", ":", "set", "exit", "return", "read", "shift", "unset"}
SEPARATORS = set(";&|()\n")
ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")
# $( ... ) without a nested parenthesis, and not $(( arithmetic.
SUBSTITUTION = re.compile(r"\$\((?!\()([^()]*)\)")
SHELLS = [shell for shell in ("sh", "bash") if shutil.which(shell)]


def command_words(script: str) -> set[str]:
    """First word of every simple command, those of command substitutions included; assignments, reserved words,
    redirection targets and case patterns are not commands."""
    words: set[str] = set()
    for inner in SUBSTITUTION.findall(script):
        words |= command_words(inner)
    script = SUBSTITUTION.sub("_", script)
    script = "\n".join(line for line in script.splitlines() if not line.lstrip().startswith("#"))
    lexer = shlex.shlex(script, posix=True, punctuation_chars=";&|()<>\n")
    lexer.whitespace, lexer.whitespace_split, lexer.commenters = " \t\r", True, ""
    tokens = list(lexer)
    expecting, skip_next, subject, pattern = True, False, False, False
    for token in tokens:
        if skip_next:
            skip_next = False
        elif subject:  # the word after `case`, up to `in`
            subject, pattern = token != "in", token == "in"
        elif pattern:  # case patterns, up to their `)`, or the `esac`
            pattern, expecting = token != "esac" and not token.startswith(")"), token != "esac"
        elif set(token) & set("<>") and set(token) <= set("<>&"):
            skip_next = True  # a redirection: its target is no command
        elif set(token) <= SEPARATORS:
            expecting, pattern = True, ";;" in token
        elif not expecting:
            continue
        elif token in SHELL_WORDS or ASSIGNMENT.match(token):
            subject = token == "case"
        else:
            words.add(token)
            expecting = False
    return words


def test_command_words_find_what_an_image_may_lack() -> None:
    script = """until mc ls root >/dev/null 2>&1; do sleep 3; done
if ! info=$(mc admin user info root u --json) | grep -q x; then echo none; fi
case $info in *x*) ok=1 ;; *) printf '%s' "$info" | tr a b ;; esac"""
    assert command_words(script) == {"mc", "sleep", "grep", "echo", "printf", "tr"}


def setup_job(renderer: Renderer, variant: str) -> dict[str, Any]:
    (job,) = by_kind(renderer.chart("minio", variant), "Job")
    (container,) = job["spec"]["template"]["spec"]["containers"]
    return dict(container)


@pytest.mark.parametrize("variant", ["default", "kind"])
def test_setup_script_calls_only_mc_and_shell_builtins(renderer: Renderer, variant: str) -> None:
    container = setup_job(renderer, variant)
    assert container["command"][0] == "sh"
    assert command_words(container["args"][0]) - BUILTINS == {"mc"}


def test_setup_script_steps_are_idempotent_by_their_flags(renderer: Renderer) -> None:
    lines = [line.strip() for line in setup_job(renderer, "default")["args"][0].splitlines()]
    (make_bucket,) = [line for line in lines if line.startswith("mc mb ")]
    assert "--ignore-existing" in make_bucket
    (attach,) = [line for line in lines if "mc admin policy attach" in line]
    assert attach.startswith("*)"), "the attach must be the fallback of a check that the policy is attached"


# Stand-in for mc: MinIO's state in a JSON file, each call logged; what exists already fails as it does in mc and
# MinIO (mb without --ignore-existing; attach of an attached policy, as older mc releases report it).
FAKE_MC = """#!{python}
import json, sys
from pathlib import Path
state_file = Path({state!r})
state = json.loads(state_file.read_text())
args = sys.argv[1:]
state["calls"].append(args)
def done(code=0, out=""):
    print(out)
    state_file.write_text(json.dumps(state))
    sys.exit(code)
match args:
    case ["ready", "root"]:
        done(out="The cluster 'root' is ready")
    case ["mb", *flags, target] if target.startswith("root/"):
        if target in state["buckets"] and "--ignore-existing" not in flags:
            done(1, "mc: <ERROR> Unable to make bucket. Your previous request to create it succeeded")
        state["buckets"] = sorted(set(state["buckets"]) | {{target}})
        done()
    case ["admin", "policy", "create", "root", name, path]:
        state["policies"][name] = json.loads(Path(path).read_text())
        done()
    case ["admin", "user", "add", "root", key, secret]:
        state["users"].setdefault(key, {{"policies": []}})["secret"] = secret
        done()
    case ["admin", "user", "info", "root", key, "--json"] if key in state["users"]:
        info = {{"status": "success", "accessKey": key}}
        if state["users"][key]["policies"]:
            info["policyName"] = ",".join(state["users"][key]["policies"])
        done(out=json.dumps(info | {{"userStatus": "enabled"}}, indent=1))
    case ["admin", "policy", "attach", "root", name, "--user", key] if name in state["policies"]:
        if name in state["users"][key]["policies"]:
            done(1, "mc: <ERROR> The specified policy change is already in effect.")
        state["users"][key]["policies"].append(name)
        done()
done(2, "unexpected mc call")
"""


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize("other_policies", [[], ["diagnostics"]], ids=["fresh", "user-with-another-policy"])
def test_setup_script_runs_twice_with_only_mc_on_the_path(
    renderer: Renderer, tmp_path: Path, shell: str, other_policies: list[str]
) -> None:
    container = setup_job(renderer, "kind")
    values = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    (policy_mount,) = [m["mountPath"] for m in container["volumeMounts"] if m["name"] == "policy"]
    script = container["args"][0].replace(f"{policy_mount}/", f"{tmp_path}/")
    (tmp_path / "policy.json").write_text('{"Version": "2012-10-17", "Statement": []}')
    state_file = tmp_path / "state.json"
    users = {"cryptolake": {"secret": "old", "policies": other_policies}} if other_policies else {}
    state_file.write_text(json.dumps({"buckets": [], "policies": {}, "users": users, "calls": []}))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "mc"
    fake.write_text(FAKE_MC.format(python=sys.executable, state=str(state_file)))
    fake.chmod(0o755)
    env = {"PATH": str(bin_dir), "BUCKET": values["BUCKET"], "POLICY": values["POLICY"]}
    env |= {"LAKE_ACCESS_KEY": "cryptolake", "LAKE_SECRET_KEY": "s3cr3tkey", "MC_HOST_root": "http://root:x@minio"}
    attaches = []
    for _ in range(2):
        done = subprocess.run(
            [str(shutil.which(shell)), *container["command"][1:], script],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        state = json.loads(state_file.read_text())
        attaches.append(sum(call[:3] == ["admin", "policy", "attach"] for call in state["calls"]))
        assert state["buckets"] == [f"root/{values['BUCKET']}"]
        assert state["users"]["cryptolake"] == {"secret": "s3cr3tkey", "policies": [*other_policies, values["POLICY"]]}
    assert attaches == [1, 1], "the second run must find the policy attached and leave it"
