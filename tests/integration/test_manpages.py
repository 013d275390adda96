"""The man pages (docs/man/*.scd) against the programs they describe.

They are compared with what the binaries say, so a key, command or option
added without its documentation fails here: every configuration key of
`edibrokerd --list-keys` is in edibroker.conf(5), and every key there is
one the daemon knows; every command of `edibrokerctl --help` is in
edibrokerctl(8)'s COMMANDS, and the other way round; every long option of
edibrokerd's, edibrokerctl's and edibroker-peer's --help is in its page;
every program in bin/ has a page.
Each page renders without a warning from man(1), and the bash completion
completes commands, actions and a running daemon's endpoint names.
"""

import os
import re
import subprocess
import unittest

from harness import BIN, ROOT, BrokerTest

MAN = os.path.join(ROOT, "docs", "man")


def read(path):
    with open(path) as f:
        return f.read()


def output(*cmd):
    r = subprocess.run(list(cmd), capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        raise AssertionError("%s: %d %s" % (" ".join(cmd), r.returncode, r.stderr))
    return r.stdout


def documented_keys(scd):
    """section.key for each "*key* = ..." under a "# [section ...]" heading."""
    keys, section = set(), None
    for line in scd.splitlines():
        h = re.match(r"#+ (.*)", line)
        if h:
            s = re.match(r"\[(\w+)", h.group(1))
            section = s.group(1) if s else None
            continue
        k = re.match(r"\*([a-z0-9_]+)\* =", line)
        if k and section:
            keys.add("%s.%s" % (section, k.group(1)))
    return keys


def help_commands(text):
    """The command phrases of a --help: "status", "outage set", ..."""
    out, on = set(), False
    for line in text.splitlines():
        if line.startswith("commands:"):
            on = True
        elif on and not line.strip():
            break
        elif on and re.match(r"  [a-z]", line):
            words = []  # the synopsis ends where the description starts: 2+ blanks
            for w in re.split(r"\s{2,}", line.strip())[0].split():
                if not re.fullmatch(r"[a-z][a-z-]*", w):
                    break
                words.append(w)
            out.add(" ".join(words[:2]))
    return out


def page_commands(scd):
    """The bold phrases that open an entry of the COMMANDS section."""
    section = re.search(r"(?ms)^# COMMANDS$(.*?)^# ", scd).group(1)
    return set(re.findall(r"(?m)^\*([a-z][a-z -]*?)\*", section))


def long_options(text):
    return set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", text))


class ManPages(BrokerTest):
    def test_every_config_key_is_documented(self):
        known = set(output(os.path.join(BIN, "edibrokerd"), "--list-keys").split())
        self.assertIn("broker.state_dir", known)
        self.assertIn("endpoint.file_group", known)
        documented = documented_keys(read(os.path.join(MAN, "edibroker.conf.5.scd")))
        self.assertEqual(sorted(known - documented), [],
                         "keys the daemon knows that edibroker.conf(5) does not document")
        self.assertEqual(sorted(documented - known), [],
                         "keys edibroker.conf(5) documents that the daemon does not know")

    def test_the_key_check_catches_a_missing_key(self):
        scd = read(os.path.join(MAN, "edibroker.conf.5.scd"))
        without = re.sub(r"(?m)^\*file_mode\* =.*$", "", scd)
        self.assertNotIn("endpoint.file_mode", documented_keys(without))
        self.assertIn("endpoint.file_mode", documented_keys(scd))

    def test_every_command_is_documented(self):
        helptext = output(os.path.join(BIN, "edibrokerctl"), "--help")
        commands = help_commands(helptext)
        self.assertTrue({"status", "queue", "outage show", "maintenance add"} <= commands,
                        commands)
        documented = page_commands(read(os.path.join(MAN, "edibrokerctl.8.scd")))
        self.assertEqual(sorted(commands - documented), [],
                         "commands of edibrokerctl --help missing from edibrokerctl(8)")
        self.assertEqual(sorted(documented - commands), [],
                         "commands in edibrokerctl(8) that edibrokerctl --help does not list")

    def test_every_option_is_documented(self):
        for prog, page in (("edibrokerd", "edibrokerd.8.scd"),
                           ("edibrokerctl", "edibrokerctl.8.scd")):
            opts = long_options(output(os.path.join(BIN, prog), "--help"))
            self.assertIn("--config", opts)
            scd = read(os.path.join(MAN, page))
            missing = sorted(o for o in opts if "*%s*" % o not in scd)
            self.assertEqual(missing, [], "%s --help options missing from %s" % (prog, page))

    def test_every_peer_option_is_documented(self):
        opts = long_options(output(os.path.join(BIN, "edibroker-peer"), "--help"))
        self.assertTrue({"--zmq", "--broker-key", "--key", "--into", "--http"} <= opts, opts)
        scd = read(os.path.join(MAN, "edibroker-peer.1.scd"))
        missing = sorted(o for o in opts if "*%s*" % o not in scd)
        self.assertEqual(missing, [], "edibroker-peer --help options missing from its page")

    def test_every_program_has_a_page(self):
        for prog in sorted(os.listdir(BIN)):
            pages = [p for p in os.listdir(MAN) if re.fullmatch(
                re.escape(prog) + r"\.[18]\.scd", p)]
            self.assertEqual(len(pages), 1, "no man page for bin/%s in docs/man" % prog)

    def test_pages_render_without_warnings(self):
        env = dict(os.environ)
        for k in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS"):
            env.pop(k, None)
        subprocess.run(["make", "-s", "-C", ROOT, "man"], check=True, env=env, timeout=60,
                       stdout=subprocess.DEVNULL)
        env.update(LC_ALL="C.UTF-8", MANWIDTH="80")
        built = os.path.join(ROOT, "build", "man")
        pages = sorted(os.listdir(built))
        self.assertEqual(pages, sorted(p[:-4] for p in os.listdir(MAN) if p.endswith(".scd")))
        for page in pages:
            r = subprocess.run(["man", "--warnings", "-E", "UTF-8", "-l", "-Tutf8", "-Z",
                                os.path.join(built, page)], capture_output=True, text=True,
                               env=env, timeout=30)
            self.assertEqual((r.returncode, r.stderr), (0, ""), page)
            self.assertGreater(len(r.stdout), 1000, page)

    def test_bash_completion(self):
        b = self.broker().start()
        script = (
            "source /usr/share/bash-completion/bash_completion\n"
            "source %s\n"
            "c() { COMP_LINE=\"$1\"; read -ra COMP_WORDS <<<\"$1\";"
            " [[ $1 == *' ' ]] && COMP_WORDS+=('');"
            " COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); COMP_POINT=${#1}; COMPREPLY=();"
            " _edibrokerctl; echo \"${COMPREPLY[*]}\"; }\n"
            "c 'edibrokerctl '\nc 'edibrokerctl ou'\nc 'edibrokerctl outage '\n"
            "c 'edibrokerctl -s %s queue '\nc 'edibrokerctl --js'\nc 'edibrokerctl dead '\n"
            "c 'edibrokerctl -s %s hold '\nc 'edibrokerctl trace --envelope '\n"
            % (os.path.join(ROOT, "packaging", "bash-completion", "edibrokerctl"), b.sock,
               b.sock))
        env = dict(os.environ, PATH=BIN + ":" + os.environ["PATH"])
        r = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env,
                           timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        self.assertEqual(len(lines), 8, r.stdout + r.stderr)
        self.assertTrue({"status", "queue", "dead", "outage", "outages", "maintenance",
                         "trace", "requeue", "hold", "release", "retry", "resend", "delete"}
                        <= set(lines[0].split()), lines[0])
        self.assertEqual(lines[1].split(), ["outage", "outages"])
        self.assertEqual(lines[2].split(), ["close", "open", "set", "show"])
        self.assertEqual(lines[3].split(), ["hospital", "municipality"])
        self.assertEqual(lines[4].split(), ["--json"])
        self.assertEqual(lines[5], "", "dead takes no argument")
        self.assertEqual(lines[6].split(), ["hospital", "municipality"], "hold ENDPOINT")
        self.assertEqual(lines[7], "", "an envelope id is the operator's to type")


if __name__ == "__main__":
    unittest.main()
