#!/usr/bin/env python3
"""Version-switch latency across three `kiln serve` processes.

Publishes a new version of a generated course N times and measures, for each of three
servers, the time from the moment `kiln sync` exits (the version and the published head are
written by then) until the server's `GET /v1/courses/{course}` reports it. Servers read only
the published head in the store: run once with servers polling it (`head_poll`, 250 ms on a
local store) and once with `--announce redis://...` (the sync announces each head on Redis
pub/sub). `--postgres URL` puts the catalog (which only the sync uses) on PostgreSQL.

usage: bench-switch.py KILN GEN_COURSE WORKDIR [--postgres URL] [--announce REDIS_URL] [--rounds N]
"""
import json, os, subprocess, sys, threading, time, urllib.request, statistics, tempfile, shutil

def main():
    kiln, gen, work = sys.argv[1:4]
    pg = None
    announce = None
    rounds = 20
    args = sys.argv[4:]
    while args:
        a = args.pop(0)
        if a == "--postgres":
            pg = args.pop(0)
        elif a == "--announce":
            announce = args.pop(0)
        elif a == "--rounds":
            rounds = int(args.pop(0))
    os.makedirs(work, exist_ok=True)
    repo = os.path.join(work, "repo")
    if not os.path.exists(repo):
        subprocess.run([gen, repo, "200", "--files", "4", "--size", "1000"], check=True, stdout=subprocess.DEVNULL)
    data = tempfile.mkdtemp(dir=work)
    cfg = os.path.join(data, "kiln.toml")
    with open(cfg, "w") as f:
        if pg:
            schema = "kiln_switch_%d" % os.getpid()
            f.write('[catalog]\nbackend = "postgres"\nurl = "%s"\nnamespace = "%s"\n' % (pg, schema))
        if announce:
            f.write('[announce]\nbackend = "redis"\nurl = "%s"\nnamespace = "kiln-switch-%d"\n' % (announce, os.getpid()))
    env = dict(os.environ, KILN_QUIET="1")
    base = [kiln, "--data-dir", data, "--config", cfg]
    def sync():
        out = subprocess.run(base + ["--json", "sync", repo, "--course", "sw"], check=True, capture_output=True, env=env)
        return json.loads(out.stdout)["version"]
    sync()
    servers = []
    for i in range(3):
        p = subprocess.Popen(base + ["serve", "--listen", "127.0.0.1:0", "--cache-dir", os.path.join(data, "c%d" % i)],
                             stdout=subprocess.PIPE, env=env, text=True)
        line = p.stdout.readline().strip()
        servers.append((p, line.rsplit(" ", 1)[1]))
    def version_of(url):
        with urllib.request.urlopen(url + "/v1/courses/sw", timeout=5) as r:
            return json.load(r)["version"]
    lat = []
    try:
        for r in range(rounds):
            subprocess.run([gen, repo, "200", "--files", "4", "--size", "1000", "--change", str(r % 200), "--round", str(r + 1)],
                           check=True, stdout=subprocess.DEVNULL)
            v = sync()
            t0 = time.monotonic()
            res = [None] * 3
            def watch(i, url):
                while version_of(url) != v:
                    if time.monotonic() - t0 > 10:
                        res[i] = float("inf"); return
                    time.sleep(0.001)
                res[i] = (time.monotonic() - t0) * 1000
            ts = [threading.Thread(target=watch, args=(i, u)) for i, (_, u) in enumerate(servers)]
            [t.start() for t in ts]
            [t.join() for t in ts]
            lat.append(max(res))
    finally:
        for p, _ in servers:
            p.terminate()
            p.wait()
        shutil.rmtree(data, ignore_errors=True)
    lat.sort()
    p50 = statistics.median(lat)
    print("catalog=%s rounds=%d slowest-of-3 switch ms: p50=%.1f max=%.1f" % ("postgres" if pg else "sqlite", rounds, p50, lat[-1]))

main()
