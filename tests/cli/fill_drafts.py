#!/usr/bin/env python3
# CLI scenario: `veld form fill` on a pseudo-terminal the test drives
# (python's pty), and `veld drafts`.  A fill killed after some answers
# leaves a draft that the next fill resumes with every answer there; action
# proposals are added, changed and removed at the prompt; a balance with a
# priority domain and no action is not stored but stays a draft, listed by
# `veld drafts --json`; once complete the record is stored and the draft is
# gone; a date of what happened cannot lie in the future; a new balance
# starts from the previous one's answers (--from-previous).
import json
import os
import pty
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time

VELD = os.environ["VELD"]
TMP = tempfile.mkdtemp(prefix="cli-fill.", dir=os.environ.get("VELD_TEST_TMP") or None)
STORE = os.path.join(TMP, "store")
ENV = dict(os.environ, VELD_PASSPHRASE="test passphrase")
PASSED = 0
FAILED = 0

DOMAINS = 16


def ok(cond, what):
    global PASSED, FAILED
    if cond:
        PASSED += 1
    else:
        FAILED += 1
        print("FAIL: " + what, file=sys.stderr)


def veld(*args, code=0):
    p = subprocess.run([VELD, "-C", STORE, *args], env=ENV, capture_output=True, text=True)
    ok(p.returncode == code, "veld %s: exit %d, wanted %d; %s" % (" ".join(args), p.returncode, code, p.stderr[:300]))
    return p.stdout


class Term:
    """`veld ARGS` on a pseudo-terminal: read what it prints, type lines."""

    def __init__(self, *args):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            os.execve(VELD, [VELD, "-C", STORE, *args], ENV)
        self.out, self.pos, self.code = "", 0, None

    def _read(self, timeout):
        r, _, _ = select.select([self.fd], [], [], timeout)
        if not r:
            return False
        try:
            data = os.read(self.fd, 65536)
        except OSError:
            data = b""
        if not data:
            raise EOFError
        self.out += data.decode("utf-8", "replace").replace("\r\n", "\n")
        return True

    def expect(self, pattern, timeout=60):
        """Wait for `pattern` after what was matched before; the match."""
        deadline = time.time() + timeout
        rx = re.compile(pattern, re.M)
        while True:
            m = rx.search(self.out, self.pos)
            if m:
                self.pos = m.end()
                return m
            try:
                self._read(max(0.0, deadline - time.time()))
            except EOFError:
                raise AssertionError("ended before /%s/; tail: %r" % (pattern, self.out[-600:]))
            if time.time() > deadline:
                raise AssertionError("no /%s/ in time; tail: %r" % (pattern, self.out[-600:]))

    def send(self, line):
        os.write(self.fd, (line + "\n").encode())

    def answer(self, prompt, line):
        """At the prompt matching `prompt` (up to the waiting ": " or "> "), type `line`."""
        self.expect(prompt + r"[^\n]*(: |> )$")
        self.send(line)

    def prompt(self):
        """Wait for the next prompt; its line."""
        return self.expect(r"^[^\n]*(: |> )$").group(0)

    def kill(self):
        os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)
        os.close(self.fd)

    def wait(self):
        try:
            while True:
                self._read(60)
        except EOFError:
            pass
        _, status = os.waitpid(self.pid, 0)
        os.close(self.fd)
        self.code = os.waitstatus_to_exitcode(status)
        return self.code


def drafts():
    return json.loads(veld("drafts", "--json"))


def record_fields(rid):
    return json.loads(veld("record", "show", rid, "--json"))["fields"]


def domain(t, score, stab="", destab="", prio=""):
    t.answer(r"Score \*", score)
    t.answer(r"Stabiliserende factoren", stab)
    t.answer(r"Destabiliserende factoren", destab)
    t.answer(r"Prioriteit \(j/n\)", prio)


def action(t, dom, goal, act, status):
    t.answer(r"Domein \*", dom)
    t.answer(r"Doelstelling \*", goal)
    t.answer(r"Actie \*", act)
    t.answer(r"Verantwoordelijke", "")
    t.answer(r"Termijn", "2031-01-01")  # planned: may lie ahead
    t.answer(r"Status \*", status)


def scenario():
    subprocess.run([VELD, "-C", STORE, "device", "init", "--name", "t", "--role", "assistant"], env=ENV,
                   capture_output=True, check=True)
    case = veld("case", "new", "--name", "Pty Persoon", "--postcode", "3000").strip()

    # 1. Seven answers, then the process is killed at the eighth question.
    t = Term("form", "fill", case, "sociale_balans")
    t.answer(r"Afnamedatum \* \(JJJJ-MM-DD, niet later dan vandaag\)", "2999-01-01")
    t.expect(r"! afnamedatum: Afnamedatum kan niet in de toekomst liggen\.")
    t.answer(r"Afnamedatum \*", "2024-01-10")
    t.answer(r"Context", "1")
    t.answer(r"betrokken", "j")
    t.expect(r"-- Familiale situatie")
    domain(t, "3", "Steun van zus", "", "n")
    t.answer(r"Score \*", "2")
    t.expect(r"Stabiliserende factoren[^\n]*: $")
    t.kill()
    listed = veld("drafts", "--json")
    d = json.loads(listed)
    ok(len(d) == 1 and d[0]["case"] == case and d[0]["form"] == "sociale_balans", "the killed fill left a draft: " + listed)
    ok(d and d[0]["answers"] == 7, "the draft holds every answer: " + listed)
    ok("Steun" not in listed and "Pty Persoon" not in listed, "the listing holds no client data")
    ok(case in veld("drafts"), "drafts lists it as text too")

    # 2. Resumed where it stopped; a priority domain, actions added and one
    # removed: the action the priority needs is gone, so nothing is stored.
    t = Term("form", "fill", case, "sociale_balans")
    t.expect(r"Concept [0-9a-f]{32} van .* hervat: 7 antwoord")
    t.expect(r"== verder bij: Stabiliserende factoren\n-- Huisvesting")
    t.answer(r"Stabiliserende factoren", "")
    t.answer(r"Destabiliserende factoren", "Huur te hoog")
    t.answer(r"Prioriteit", "j")
    for _ in range(DOMAINS - 2):
        domain(t, "6")
    t.answer(r"Synthese", "Wonen eerst")
    t.expect(r"-- Actievoorstellen \(herhaalbaar[^\n]*\n  ! huisvesting: Huisvesting: een domein met prioriteit")
    t.answer(r"   ", "+")
    action(t, "2", "Huurpremie", "Huurpremie aanvragen", "1")
    t.expect(r"1\) Huisvesting")
    t.answer(r"   ", "+")
    action(t, "werk", "Werk zoeken", "Inschrijven bij VDAB", "1")
    t.expect(r"2\) Werk")
    t.answer(r"   ", "-1")
    t.expect(r"item 1 verwijderd\n   1\) Werk")
    t.answer(r"   ", "")
    t.expect(r"Nog niet in orde:\n  ! huisvesting: Huisvesting: een domein met prioriteit")
    for label in ("Score", "Stabiliserende", "Destabiliserende", "Prioriteit"):
        t.answer(label, "")
    t.answer(r"   ", "")
    ok(t.wait() == 5, "a balance that the rule refuses is not stored (exit 5)")
    ok(re.search(r"Niet opgeslagen\. Het concept is bewaard; verder met: veld form fill %s sociale_balans" % case, t.out)
       and re.search(r"kept as draft [0-9a-f]{32}: go on with `veld form fill %s sociale_balans`" % case, t.out),
       "fill says how to go on")
    d = drafts()
    ok(len(d) == 1 and d[0]["form"] == "sociale_balans", "the refused balance stays a draft")
    ok("sociale_balans" not in veld("case", "show", case, "--json"), "no balance stored")

    # 3. Resumed at the actions: one changed, the missing one added: stored.
    t = Term("form", "fill", case, "sociale_balans")
    t.expect(r"hervat")
    t.expect(r"== verder bij: Actievoorstellen")
    t.expect(r"1\) Werk")
    t.answer(r"   ", "1")
    t.answer(r"Domein \* \[Werk\]", "")
    t.answer(r"Doelstelling \* \[Werk zoeken\]", "Werk vinden")
    t.answer(r"Actie", "")
    t.answer(r"Verantwoordelijke", "")
    t.answer(r"Termijn", "")
    t.answer(r"Status \* \[Gepland\]", "lopend")
    t.answer(r"   ", "+")
    action(t, "huisvesting", "Betaalbare woning", "Inschrijving sociale huisvesting", "gepland")
    t.answer(r"   ", "")
    m = t.expect(r"opgeslagen: ([0-9a-f]{32})")
    ok(t.wait() == 0, "the completed balance is stored")
    rid = m.group(1)
    ok(drafts() == [], "the draft is gone once the record is stored")
    f = record_fields(rid)
    ok(f.get("afnamedatum") == "2024-01-10" and f.get("context") == "opmaak" and f.get("client_betrokken") is True,
       "answers before the kill kept: %r" % f)
    ok(f.get("familiale_situatie.stabiliserend") == "Steun van zus" and f.get("huisvesting.score") == 2,
       "answers before the kill kept")
    ok(f.get("huisvesting.destabiliserend") == "Huur te hoog" and f.get("huisvesting.prioriteit") is True,
       "answers after the resume kept")
    acts = {k: v for k, v in f.items() if k.startswith("actievoorstellen.")}
    ok(sorted(v for k, v in acts.items() if k.endswith(".doelstelling")) == ["Betaalbare woning", "Werk vinden"],
       "two actions, one changed: %r" % acts)
    ok("Huurpremie aanvragen" not in acts.values(), "the removed action is gone")
    ok(sorted(v for k, v in acts.items() if k.endswith(".status")) == ["gepland", "lopend"], "statuses kept")

    # 4. The next balance starts from this one: every answer offered, the
    # date of the assessment asked afresh.
    t = Term("form", "fill", case, "sociale_balans", "--from-previous")
    t.expect(r"Vertrekt van de vorige \(%s, 2024-01-10\)" % rid)
    t.answer(r"Afnamedatum \* \(JJJJ-MM-DD, niet later dan vandaag\)(?! \[)", "2024-06-01")
    t.answer(r"Context \[Opmaak\]", "2")
    while True:
        line = t.prompt()
        t.send("")
        if line.startswith("   >"):
            break
    m = t.expect(r"opgeslagen: ([0-9a-f]{32})")
    ok(t.wait() == 0, "a balance from the previous one is stored")
    f2 = record_fields(m.group(1))
    ok(f2.get("afnamedatum") == "2024-06-01" and f2.get("context") == "evaluatie", "new answers taken")
    ok(f2.get("huisvesting.destabiliserend") == "Huur te hoog" and f2.get("familiale_situatie.score") == 3,
       "previous answers carried over")
    ok(sorted(v for k, v in f2.items() if k.endswith(".doelstelling")) == ["Betaalbare woning", "Werk vinden"],
       "previous actions carried over")

    # 5. Without a terminal: exit 2, as before.
    p = subprocess.run([VELD, "-C", STORE, "form", "fill", case, "woonzoek"], env=ENV, stdin=subprocess.DEVNULL,
                       capture_output=True, text=True)
    ok(p.returncode == 2, "form fill without a terminal is a usage error")
    veld("drafts", "extra", "words", code=2)


def main():
    try:
        scenario()
    except AssertionError as e:
        ok(False, str(e))
    finally:
        shutil.rmtree(TMP, ignore_errors=True)
    print("%d passed, %d failed" % (PASSED, FAILED))
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
