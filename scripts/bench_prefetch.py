"""The driver of scripts/bench-prefetch.sh: starts the two servers, warms them, publishes
changes and times first and warm ensures. Prints one summary line per server kind."""
import json, os, shutil, subprocess, sys, time, urllib.request

kiln, gen, repo, data, work, questions, rounds, delay_ms = sys.argv[1:9]
questions, rounds, delay = int(questions), int(rounds), int(delay_ms) / 1000.0
env = dict(os.environ, KILN_QUIET="1")


def call(base, path, body=None):
    req = urllib.request.Request(base + path, method="POST" if body is not None else "GET")
    if body is not None:
        req.data = json.dumps(body).encode()
        req.add_header("content-type", "application/json")
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())


def start(name, prefetch):
    cfg = os.path.join(work, f"{name}.toml")
    with open(cfg, "w") as f:
        f.write(f"[load]\nprefetch_changes = {'true' if prefetch else 'false'}\nhead_poll = \"100ms\"\n")
    out = open(os.path.join(work, f"{name}.out"), "w+")
    # A fresh cache: an earlier run's chunks would make every first ensure warm.
    shutil.rmtree(os.path.join(work, f"cache-{name}"), ignore_errors=True)
    p = subprocess.Popen([kiln, "--data-dir", data, "--config", cfg, "serve", "--listen", "127.0.0.1:0",
                          "--cache-dir", os.path.join(work, f"cache-{name}")], stdout=out, env=env)
    deadline = time.time() + 60
    while time.time() < deadline:
        out.seek(0)
        line = out.readline()
        if line.startswith("listening on"):
            return p, line.split()[-1]
        time.sleep(0.01)
    raise SystemExit(f"{name} did not start")


def ensure_ms(base, chunk):
    t0 = time.perf_counter()
    r = call(base, "/v1/courses/big/ensure", {"chunks": [chunk], "lease_ttl_ms": 1000})
    return (time.perf_counter() - t0) * 1000, r


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


chunks = json.loads(subprocess.check_output([kiln, "--data-dir", data, "--json", "chunks", "big"], env=env))
names = [c["name"] for c in chunks["chunks"] if c["kind"] == "question"]
servers = {"prefetch": start("prefetch", True), "no-prefetch": start("no-prefetch", False)}
try:
    for _, base in servers.values():
        for n in names:
            ensure_ms(base, f"question:{n}")
    warm = {k: [] for k in servers}
    first = {k: [] for k in servers}
    # Rounds never used before on this repository: each change makes a chunk no cache has.
    base_round = int(time.time() * 1000) % 10**9
    for r in range(rounds):
        i = (r * 7919) % questions
        subprocess.check_call([gen, repo, str(questions), "--change", str(i), "--round", str(base_round + r)],
                              stdout=subprocess.DEVNULL)
        out = json.loads(subprocess.check_output(
            [kiln, "--data-dir", data, "--json", "sync", repo, "--course", "big"], env=env))
        version = out["version"]
        changed = f"question:{names[i]}"
        for k, (_, base) in servers.items():
            deadline = time.time() + 60
            while call(base, "/v1/courses/big")["version"] != version:
                if time.time() > deadline:
                    raise SystemExit(f"{k} never showed {version}")
                time.sleep(0.002)
            time.sleep(delay)
            ms, got = ensure_ms(base, changed)
            assert got["version"] == version, got
            first[k].append(ms)
            for j in range(5):
                ms, _ = ensure_ms(base, f"question:{names[(i + 1 + j) % questions]}")
                warm[k].append(ms)
    for k in servers:
        w50, w99 = pct(warm[k], 50), pct(warm[k], 99)
        f50, f99 = pct(first[k], 50), pct(first[k], 99)
        print(json.dumps({"server": k, "rounds": rounds, "delay_ms": delay_ms,
                          "warm_p50_ms": round(w50, 3), "warm_p99_ms": round(w99, 3),
                          "first_p50_ms": round(f50, 3), "first_p99_ms": round(f99, 3),
                          "first_p99_over_warm_p99": round(f99 / w99, 2)}))
        print(f"{k:12} first ensure of the changed question p50 {f50:.2f} ms p99 {f99:.2f} ms; "
              f"warm p50 {w50:.2f} ms p99 {w99:.2f} ms; ratio p99 {f99 / w99:.2f}x (target <= 2x with prefetch)",
              file=sys.stderr)
    metrics = urllib.request.urlopen(servers["prefetch"][1] + "/metrics").read().decode()
    for line in metrics.splitlines():
        if line.startswith("kiln_load_prefetch"):
            print(line, file=sys.stderr)
finally:
    for p, _ in servers.values():
        p.terminate()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
