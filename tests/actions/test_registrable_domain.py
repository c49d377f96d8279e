"""The registrable domain from the rules of the host's top-level domain alone is the one the
whole Public Suffix List gives, for hosts under every rule of the list."""

from __future__ import annotations

import json
import subprocess
import sys

from publicsuffixlist import PSLFILE, PublicSuffixList

from runestone.actions.urls import _suffix_list_for, registrable_domain


def _hosts_under_every_rule() -> list[str]:
    hosts = []
    with open(PSLFILE, encoding="utf-8") as file:
        for line in file:
            rule = line.strip()
            if not rule or rule.startswith("//"):
                continue
            base = rule.lstrip("!").replace("*", "wild")
            hosts += [base, "a." + base, "b.a." + base]
    hosts += ["example", "a.example", "localhost.localdomain", "a.b.c.d.e.f.com",
              "xn--80ak6aa92e.com", "a.xn--p1ai", "www.xn--p1ai", "a.b.рф", "a.c.com"]
    return sorted(set(hosts), key=lambda host: host.rpartition(".")[2])


def test_same_answer_as_the_whole_list_for_every_rule() -> None:
    whole = PublicSuffixList()
    differ = []
    for host in _hosts_under_every_rule():
        expected = whole.privatesuffix(host) or host
        if (_suffix_list_for(host).privatesuffix(host) or host) != expected:
            differ.append(host)
    assert not differ, differ[:20]


def test_known_domains() -> None:
    assert registrable_domain("api.github.com") == "github.com"
    assert registrable_domain("a.b.co.uk") == "b.co.uk"
    assert registrable_domain("x.y.github.io") == "y.github.io"


def test_a_url_command_does_not_build_the_whole_list() -> None:
    """The whole list took ~100 ms to build on every cold hook naming a URL."""
    probe = ("import time, publicsuffixlist as p\n"
             "calls = []\n"
             "original = p.PublicSuffixList._parse\n"
             "def counting(self, source, *a, **k):\n"
             "    calls.append(len(source) if isinstance(source, list) else -1)\n"
             "    return original(self, source, *a, **k)\n"
             "p.PublicSuffixList._parse = counting\n"
             "from runestone.actions.urls import url_fact\n"
             "assert url_fact('https://api.github.com/x').domain == 'github.com'\n"
             "print(calls)\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True).stdout
    sizes = json.loads(out)
    assert sizes and all(0 <= size < 2000 for size in sizes), sizes
