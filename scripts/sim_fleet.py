#!/usr/bin/env python3
"""A fleet of `kiln serve` processes over one PostgreSQL catalog, one S3 store and (unless
--no-announce) Redis announcements, under an ensure load while courses are republished.

Run it through scripts/sim-fleet.sh, which builds kiln, starts the services and passes their
addresses. What it does:

  1. generates one course repository (kept under --work, reused by later runs) and syncs it
     as courses c000..c{C-1};
  2. starts N servers over the same config (in batches; each prints its port-0 address);
  3. IDLE phase (--idle-seconds): servers up, nothing asked of them;
  4. LOAD phase (--seconds): --rate ensures/s spread uniformly over servers, courses and
     questions, and every --publish-every seconds a change to one question committed to the
     repository and synced to one random course;
  5. prints one JSON summary line on stdout and a table on stderr: PostgreSQL connections and
     transactions (the whole database, which other users may share, beside the sockets the
     servers themselves hold to PostgreSQL and the activity on the simulation's schema),
     object-store requests (the servers' own counters), publish-to-served latency (each
     server's head applied_at - written_at), ensure errors and latency, the servers' peak
     RSS, and the CPU of the machine, the servers and this driver (whose /metrics polling
     while a publish spreads is load too: `driver_metrics_scrapes_load`);
  6. stops the servers (SIGTERM, then SIGKILL), drops the catalog schema, removes this run's
     directory (unless --keep).

Python 3.11 standard library only.
"""

import argparse
import concurrent.futures as cf
import ctypes
import http.client
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.parse

# --- small helpers ----------------------------------------------------------------------


def log(msg):
    print(f"[sim {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def now_ms():
    return int(time.time() * 1000)


def pct(values, p):
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    v = sorted(values)
    k = max(0, min(len(v) - 1, int(round(p / 100.0 * len(v) + 0.5)) - 1))
    return v[k]


def dist(values, digits=1):
    if not values:
        return {"n": 0, "p50": None, "p99": None, "max": None}
    r = lambda x: round(x, digits)
    return {"n": len(values), "p50": r(pct(values, 50)), "p99": r(pct(values, 99)), "max": r(max(values))}


def run(cmd, timeout, env=None, cwd=None):
    """Runs `cmd`, returns stdout; raises with stderr's tail if it fails or overruns."""
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"timed out after {timeout}s: {' '.join(cmd)}")
    if p.returncode != 0:
        raise RuntimeError(f"exit {p.returncode}: {' '.join(cmd)}\n{p.stderr[-2000:]}")
    return p.stdout


class Stop(Exception):
    pass


def on_signal(signum, _frame):
    raise Stop(f"signal {signum}")


# --- HTTP with kept-alive connections, per server port ----------------------------------


class Http:
    """Thread-safe: a few idle keep-alive connections per port. kiln closes a kept-alive
    connection 10 s after its last response (`header_read_timeout`), so one idle for
    `max_idle` seconds is not reused, and a request that fails on a reused connection (the
    server closed it meanwhile) is retried once on a fresh one."""

    def __init__(self, timeout=30.0, keep=6, max_idle=4.0):
        self.timeout, self.keep, self.max_idle = timeout, keep, max_idle
        self.idle = {}
        self.lock = threading.Lock()
        self.retried = 0

    def _get(self, port, fresh):
        if not fresh:
            now = time.monotonic()
            with self.lock:
                conns = self.idle.get(port)
                while conns:
                    conn, since = conns.pop()
                    if now - since < self.max_idle:
                        return conn, True
                    conn.close()
        return http.client.HTTPConnection("127.0.0.1", port, timeout=self.timeout), False

    def _put(self, port, conn):
        with self.lock:
            conns = self.idle.setdefault(port, [])
            if len(conns) < self.keep:
                conns.append((conn, time.monotonic()))
                return
        conn.close()

    def request(self, port, method, path, body=None, headers=None):
        for attempt in (0, 1):
            conn, reused = self._get(port, fresh=attempt > 0)
            try:
                conn.request(method, path, body=body, headers=headers or {})
                resp = conn.getresponse()
                data = resp.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError,
                    http.client.CannotSendRequest, http.client.BadStatusLine):
                conn.close()
                if reused and attempt == 0:
                    with self.lock:
                        self.retried += 1
                    continue
                raise
            except BaseException:
                conn.close()
                raise
            if resp.will_close:
                conn.close()
            else:
                self._put(port, conn)
            return resp.status, data
        raise AssertionError("unreachable")

    def close_all(self):
        with self.lock:
            for conns in self.idle.values():
                for c, _ in conns:
                    c.close()
            self.idle.clear()


METRIC_LINE = re.compile(r"^(kiln_[a-z_]+)(\{[^}]*\})? ([0-9.eE+-]+|NaN|\+Inf)$")


def parse_metrics(text):
    out = {}
    for line in text.splitlines():
        if not line.startswith("kiln_"):
            continue
        m = METRIC_LINE.match(line)
        if m:
            out[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return out


# --- servers ------------------------------------------------------------------------------

_libc = None


def _die_with_parent():
    """In the child, before exec: SIGTERM when the driver dies (PR_SET_PDEATHSIG)."""
    global _libc
    try:
        if _libc is None:
            _libc = ctypes.CDLL(None, use_errno=True)
        _libc.prctl(1, signal.SIGTERM, 0, 0, 0)
    except Exception:
        pass


class Server:
    def __init__(self, idx, root):
        self.idx = idx
        self.dir = os.path.join(root, f"s{idx:03d}")
        self.out = os.path.join(self.dir, "stdout")
        self.err = os.path.join(self.dir, "stderr")
        self.proc = None
        self.port = None
        self.died = None  # (time, returncode) once seen dead
        self.peak_rss_kb = 0

    def start(self, kiln, config, env):
        os.makedirs(self.dir, exist_ok=True)
        with open(self.out, "wb") as o, open(self.err, "wb") as e:
            self.proc = subprocess.Popen(
                [kiln, "--config", config, "serve", "--listen", "127.0.0.1:0",
                 "--cache-dir", os.path.join(self.dir, "cache")],
                stdin=subprocess.DEVNULL, stdout=o, stderr=e, env=env,
                preexec_fn=_die_with_parent)

    def poll_address(self):
        """The port once the server printed it; raises if the server exited."""
        if self.port:
            return self.port
        try:
            with open(self.out) as f:
                first = f.readline()
        except FileNotFoundError:
            first = ""
        m = re.match(r"listening on http://127\.0\.0\.1:(\d+)\s*$", first)
        if m:
            self.port = int(m.group(1))
            return self.port
        if self.proc.poll() is not None:
            raise RuntimeError(f"server {self.idx} exited with {self.proc.returncode} before "
                               f"printing its address:\n{self.err_tail()}")
        return None

    def err_tail(self, n=2000):
        try:
            with open(self.err, "rb") as f:
                f.seek(0, 2)
                size = f.tell()
                f.seek(max(0, size - n))
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def rss_kb(self):
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
        except OSError:
            pass
        return 0

    def hwm_kb(self):
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1])
        except OSError:
            pass
        return 0


def start_fleet(servers, kiln, config, env, batch, timeout):
    t0 = time.monotonic()
    for lo in range(0, len(servers), batch):
        group = servers[lo:lo + batch]
        for s in group:
            s.start(kiln, config, env)
        deadline = time.monotonic() + timeout
        while True:
            waiting = [s for s in group if s.poll_address() is None]
            if not waiting:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{len(waiting)} servers (e.g. {waiting[0].idx}) printed no "
                                   f"address within {timeout}s:\n{waiting[0].err_tail()}")
            time.sleep(0.05)
        log(f"servers up: {lo + len(group)}/{len(servers)} ({time.monotonic() - t0:.1f}s)")
    return time.monotonic() - t0


def stop_fleet(servers, grace=15.0):
    live = [s for s in servers if s.proc and s.proc.poll() is None]
    for s in live:
        try:
            s.proc.send_signal(signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace
    for s in live:
        left = deadline - time.monotonic()
        try:
            s.proc.wait(timeout=max(0.01, left))
        except subprocess.TimeoutExpired:
            pass
    killed = 0
    for s in live:
        if s.proc.poll() is None:
            killed += 1
            s.proc.kill()
    for s in live:
        try:
            s.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
    return killed


# --- who holds which sockets --------------------------------------------------------------


def established_by_remote_port(ports):
    """inode -> remote port, for established TCP connections to one of `ports`."""
    out = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    if parts[3] != "01":
                        continue
                    rport = int(parts[2].rsplit(":", 1)[1], 16)
                    if rport in ports:
                        out[parts[9]] = rport
        except OSError:
            pass
    return out


def server_sockets(servers, ports):
    """{port: [connections per server]} from the servers' open file descriptors."""
    inodes = established_by_remote_port(set(ports))
    counts = {p: [] for p in ports}
    for s in servers:
        per = dict.fromkeys(ports, 0)
        fd_dir = f"/proc/{s.proc.pid}/fd"
        try:
            for fd in os.listdir(fd_dir):
                try:
                    target = os.readlink(f"{fd_dir}/{fd}")
                except OSError:
                    continue
                if target.startswith("socket:["):
                    p = inodes.get(target[8:-1])
                    if p is not None:
                        per[p] += 1
        except OSError:
            pass
        for p in ports:
            counts[p].append(per[p])
    return counts


# --- CPU -----------------------------------------------------------------------------------

TICK = os.sysconf("SC_CLK_TCK")


def cpu_snapshot(servers):
    """(monotonic time, machine busy s, machine total s, servers' CPU s, this driver's CPU s)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]
    total = sum(fields[:8])
    srv = 0
    for s in servers:
        try:
            with open(f"/proc/{s.proc.pid}/stat") as f:
                rest = f.read().rsplit(")", 1)[1].split()
            srv += int(rest[11]) + int(rest[12])
        except (OSError, IndexError, ValueError):
            pass
    t = os.times()
    return (time.monotonic(), (total - idle) / TICK, total / TICK, srv / TICK, t.user + t.system)


def cpu_phase(a, b):
    """Cores in use over a phase: the machine's, the servers', the driver's, the rest."""
    dt = b[0] - a[0]
    machine = (b[1] - a[1]) / dt
    servers = (b[3] - a[3]) / dt
    driver = (b[4] - a[4]) / dt
    return {"cores": os.cpu_count(), "machine_busy_pct": round(100 * (b[1] - a[1]) / (b[2] - a[2]), 1),
            "servers_cores": round(servers, 3), "driver_cores": round(driver, 3),
            "other_cores": round(machine - servers - driver, 3)}


# --- the simulation -----------------------------------------------------------------------


class Sim:
    def __init__(self, a):
        self.a = a
        self.rng = random.Random(a.seed)
        self.http = Http(timeout=30.0)
        self.stop = threading.Event()
        self.env = dict(os.environ, KILN_QUIET="1")
        self.pg_db = urllib.parse.urlparse(a.pg_url).path.lstrip("/") or "postgres"
        self.servers = []
        self.run_dir = None
        self.config = None
        self.repo = None
        self.questions = []
        self.pg_samples = []  # (t, phase, conns, xacts, kiln_ops)
        self.rss_samples = []  # (t, phase, sum_kb)
        self.phase = "setup"
        self.lock = threading.Lock()
        # ensure load
        self.ens_lat = []
        self.ens_status = {}
        self.ens_sent = 0
        self.ens_skipped = 0
        self.ens_inflight = 0
        # publishes
        self.publishes = []
        self.published_versions = {}  # course -> [versions in publish order]
        self.watchers = []
        self.apply_lat = []
        self.converge_ms = []
        self.scrapes = 0

    # --- setup ---
    def kiln(self, *args, timeout=120):
        return run([self.a.kiln, "--config", self.config, *args], timeout, env=self.env)

    def psql(self, sql, timeout=10):
        return run(["psql", self.a.pg_url, "-XqtAc", sql], timeout).strip()

    def write_config(self):
        a = self.a
        text = (
            "[catalog]\n"
            'backend = "postgres"\n'
            f'url = "{a.pg_url}"\n'
            f'namespace = "{a.schema}"\n\n'
            "[store]\n"
            'backend = "s3"\n'
            f'bucket = "{a.bucket}"\n'
            f'endpoint = "{a.s3_endpoint}"\n\n'
        )
        if not a.no_announce:
            text += (
                "[announce]\n"
                'backend = "redis"\n'
                f'url = "{a.redis_url}"\n'
                f'namespace = "{a.redis_namespace}"\n\n'
            )
        text += f"[load]\nbudget = {a.budget}\n"
        self.config = os.path.join(self.run_dir, "fleet.toml")
        with open(self.config, "w") as f:
            f.write(text)

    def prepare_repo(self):
        a = self.a
        name = f"repo-q{a.questions}-f{a.files}-s{a.size}"
        self.repo = os.path.join(a.work, name)
        self.round_file = self.repo + ".round"
        self.gen_flags = [str(a.questions), "--files", str(a.files), "--size", str(a.size)]
        if not os.path.isdir(os.path.join(self.repo, ".git")):
            shutil.rmtree(self.repo, ignore_errors=True)
            log(f"generating {self.repo}")
            run([a.gen, self.repo, *self.gen_flags], 300)
            with open(self.round_file, "w") as f:
                f.write("0\n")
        try:
            with open(self.round_file) as f:
                self.round = int(f.read().strip() or 0)
        except (OSError, ValueError):
            self.round = 0

    def next_round(self):
        self.round += 1
        with open(self.round_file, "w") as f:
            f.write(f"{self.round}\n")
        return self.round

    def sync(self, course):
        t0 = time.monotonic()
        out = self.kiln("sync", self.repo, "--course", course, "--json", timeout=300)
        rec = json.loads(out.strip().splitlines()[-1])
        rec["wall_ms"] = round((time.monotonic() - t0) * 1000, 1)
        return rec

    def sync_all(self):
        a = self.a
        t0 = time.monotonic()
        last = None
        for i in range(a.courses):
            last = self.sync(f"c{i:03d}")
            self.published_versions[f"c{i:03d}"] = [last["version"]]
            if (i + 1) % 25 == 0 or i + 1 == a.courses:
                log(f"synced {i + 1}/{a.courses} courses ({time.monotonic() - t0:.1f}s)")
        chunks = json.loads(self.kiln("chunks", "c000", "--json"))
        self.questions = [c["name"] for c in chunks["chunks"] if c["kind"] == "question"]
        if not self.questions:
            raise RuntimeError("the generated course has no questions")
        return last["head_seq"], time.monotonic() - t0

    # --- probes ---
    def metrics(self, s):
        with self.lock:
            self.scrapes += 1
        status, body = self.http.request(s.port, "GET", "/metrics")
        if status != 200:
            raise RuntimeError(f"/metrics on server {s.idx}: HTTP {status}")
        return parse_metrics(body.decode())

    def scrape_all(self, pool):
        """Every live server's metrics (None where the scrape failed)."""
        live = [s for s in self.servers if s.died is None]

        def one(s):
            try:
                return s.idx, self.metrics(s)
            except Exception as e:  # noqa: BLE001 - reported as a failed scrape
                return s.idx, e

        return dict(pool.map(one, live))

    def pg_sample(self):
        q = (
            # Connections other than this query's own.
            f"SELECT (SELECT count(*) FROM pg_stat_activity WHERE datname = '{self.pg_db}' "
            "AND pid <> pg_backend_pid()), "
            f"(SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = '{self.pg_db}'), "
            "(SELECT coalesce(sum(coalesce(seq_scan, 0) + coalesce(idx_scan, 0) + n_tup_ins + "
            f"n_tup_upd + n_tup_del), 0) FROM pg_stat_user_tables WHERE schemaname = '{self.a.schema}')"
        )
        try:
            c, x, k = self.psql(q, timeout=5).split("|")
            return int(c), int(x), int(k)
        except Exception as e:  # noqa: BLE001
            log(f"psql sample failed: {e}")
            return None

    def sampler(self):
        """Once a second: PostgreSQL; every other second: RSS and liveness."""
        tick = 0
        while not self.stop.is_set():
            t = time.monotonic()
            s = self.pg_sample()
            if s:
                with self.lock:
                    self.pg_samples.append((t, self.phase, *s))
            if tick % 2 == 0:
                self.sample_rss()
            tick += 1
            self.stop.wait(max(0.0, 1.0 - (time.monotonic() - t)))

    def sample_rss(self):
        total = 0
        for s in self.servers:
            if s.died is None and s.proc.poll() is not None:
                s.died = (round(time.monotonic() - self.t_start, 1), s.proc.returncode)
                log(f"server {s.idx} (port {s.port}) exited with {s.proc.returncode}:\n{s.err_tail(800)}")
            if s.died is None:
                kb = s.rss_kb()
                s.peak_rss_kb = max(s.peak_rss_kb, kb)
                total += kb
        with self.lock:
            self.rss_samples.append((time.monotonic(), self.phase, total))

    # --- load ---
    def ensure_one(self, s, course, question):
        body = json.dumps({"chunks": [f"question:{question}"], "lease_ttl_ms": 1000}).encode()
        t0 = time.monotonic()
        try:
            status, data = self.http.request(
                s.port, "POST", f"/v1/courses/{course}/ensure", body=body,
                headers={"Content-Type": "application/json"})
            key = str(status)
            if status == 200:
                json.loads(data)["lease"]["id"]  # a well-formed answer
            else:
                with self.lock:
                    self.ens_examples.setdefault(key, data[:300].decode("utf-8", "replace"))
        except Exception as e:  # noqa: BLE001 - counted by type
            key = type(e).__name__
            with self.lock:
                self.ens_examples.setdefault(key, f"server {s.idx} port {s.port}: {e}")
        ms = (time.monotonic() - t0) * 1000
        with self.lock:
            self.ens_status[key] = self.ens_status.get(key, 0) + 1
            self.ens_inflight -= 1
            if key == "200":
                self.ens_lat.append(ms)

    def load(self, pool, t_begin, t_end):
        a = self.a
        courses = [f"c{i:03d}" for i in range(a.courses)]
        live = [s for s in self.servers]
        i = 0
        max_inflight = max(64, int(a.rate * 5))
        while not self.stop.is_set():
            t = t_begin + i / a.rate
            if t >= t_end:
                break
            wait = t - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            i += 1
            s = self.rng.choice(live)
            if s.died is not None:
                with self.lock:
                    self.ens_status["server_dead"] = self.ens_status.get("server_dead", 0) + 1
                continue
            with self.lock:
                if self.ens_inflight >= max_inflight:
                    self.ens_skipped += 1
                    continue
                self.ens_inflight += 1
                self.ens_sent += 1
            pool.submit(self.ensure_one, s, self.rng.choice(courses), self.rng.choice(self.questions))

    # --- publishes ---
    def publisher(self, t_begin, t_end, metrics_pool):
        a = self.a
        k = 1
        while not self.stop.is_set():
            t = t_begin + k * a.publish_every
            if t >= t_end - 1.0:
                return
            if self.stop.wait(max(0.0, t - time.monotonic())):
                return
            k += 1
            course = f"c{self.rng.randrange(a.courses):03d}"
            q = self.rng.randrange(a.questions)
            r = self.next_round()
            try:
                t0 = time.monotonic()
                commit = run([a.gen, self.repo, *self.gen_flags, "--change", str(q), "--round", str(r)],
                             120).strip()
                rec = self.sync(course)
                commit_ms = (time.monotonic() - t0) * 1000 - rec["wall_ms"]
            except Exception as e:  # noqa: BLE001
                log(f"publish {k - 1} failed: {e}")
                with self.lock:
                    self.publishes.append({"course": course, "error": str(e)[:500]})
                continue
            pub = {"course": course, "question": q, "round": r, "commit": commit,
                   "version": rec["version"], "seq": rec["head_seq"],
                   "sync_elapsed_ms": rec.get("elapsed_ms"), "sync_wall_ms": rec["wall_ms"],
                   "published_objects": rec.get("published_objects"),
                   "published_bytes": rec.get("published_bytes"), "outcome": rec.get("outcome"),
                   "commit_ms": round(commit_ms, 1), "synced_at_ms": now_ms()}
            with self.lock:
                self.publishes.append(pub)
                self.published_versions.setdefault(course, []).append(rec["version"])
            log(f"published {course} {rec['version'][:10]} as head {rec['head_seq']} "
                f"(sync {rec['wall_ms']:.0f} ms)")
            w = threading.Thread(target=self.watch, args=(pub, metrics_pool), daemon=True)
            w.start()
            self.watchers.append(w)

    def watch(self, pub, pool):
        """Polls every server until it uses head `seq` (or a later one); reads the latency
        off its metrics; then checks the new version is served by a sample of servers."""
        seq = pub["seq"]
        pending = {s.idx: s for s in self.servers if s.died is None}
        t0 = time.monotonic()
        deadline = t0 + self.a.apply_timeout
        lat, superseded, failures = [], 0, 0
        last_seen = 0.0

        def one(s):
            try:
                m = self.metrics(s)
            except Exception as e:  # noqa: BLE001
                return s.idx, e
            return s.idx, m

        while pending and time.monotonic() < deadline:
            for idx, m in pool.map(one, list(pending.values())):
                if isinstance(m, Exception):
                    failures += 1
                    continue
                got = m.get("kiln_published_head_seq", 0)
                if got >= seq:
                    del pending[idx]
                    last_seen = time.monotonic() - t0
                    if got == seq:
                        lat.append(m["kiln_published_head_applied_at_ms"] -
                                   m["kiln_published_head_written_at_ms"])
                    else:
                        superseded += 1
            if pending:
                time.sleep(0.1)
        # The served version, on a sample of the servers that reached the head.
        reached = [s for s in self.servers if s.died is None and s.idx not in pending]
        sample = self.rng.sample(reached, min(self.a.verify_sample, len(reached)))
        ok, bad = 0, []
        for s in sample:
            try:
                status, data = self.http.request(s.port, "GET", f"/v1/courses/{pub['course']}")
                served = json.loads(data).get("version") if status == 200 else f"HTTP {status}"
            except Exception as e:  # noqa: BLE001
                served = f"{type(e).__name__}: {e}"
            with self.lock:
                versions = self.published_versions.get(pub["course"], [])
                later = versions[versions.index(pub["version"]):] if pub["version"] in versions else []
            if served in later:
                ok += 1
            else:
                bad.append({"server": s.idx, "served": served})
        with self.lock:
            pub.update({"servers_applied": len(lat) + superseded, "servers_not_applied": len(pending),
                        "superseded": superseded, "scrape_failures": failures,
                        "apply_ms": dist(lat), "all_seen_after_s": round(last_seen, 3),
                        "verify_ok": ok, "verify_bad": bad})
            self.apply_lat.extend(lat)
            if lat and not pending:
                self.converge_ms.append(max(lat))

    # --- summaries ---
    def pg_phase(self, phase):
        rows = [r for r in self.pg_samples if r[1] == phase]
        if not rows:
            return {}
        conns = [r[2] for r in rows]
        out = {"samples": len(rows), "conns_max": max(conns),
               "conns_mean": round(sum(conns) / len(conns), 2)}
        if len(rows) >= 2:
            dt = rows[-1][0] - rows[0][0]
            dx = rows[-1][3] - rows[0][3]
            # Each sample is one psql session with one transaction of its own.
            own = len(rows) - 1
            out["xact_per_s"] = round(dx / dt, 2)
            out["xact_per_s_excl_sampler"] = round((dx - own) / dt, 2)
            out["kiln_schema_table_ops_per_s"] = round((rows[-1][4] - rows[0][4]) / dt, 2)
        return out

    def store_phase(self, before, after, seconds):
        kinds = ["head_changed", "head_unchanged", "head_failed", "object", "pointer"]
        tot = dict.fromkeys(kinds + ["downloads"], 0.0)
        extra = dict.fromkeys(["hits", "misses", "prefetched", "prefetch_used", "errors"], 0.0)
        n = 0
        for idx, b in before.items():
            e = after.get(idx)
            if isinstance(b, Exception) or not isinstance(e, dict):
                continue
            n += 1
            for k in kinds:
                key = f'kiln_published_requests_total{{kind="{k}"}}'
                tot[k] += e.get(key, 0) - b.get(key, 0)
            tot["downloads"] += e.get("kiln_load_downloads_total", 0) - b.get("kiln_load_downloads_total", 0)
            for k in extra:
                key = f"kiln_load_{k}_total"
                extra[k] += e.get(key, 0) - b.get(key, 0)
        total = sum(tot.values())
        return {
            "seconds": round(seconds, 1), "servers": n, "requests": int(total),
            "per_s": round(total / seconds, 2),
            "per_s_per_server": round(total / seconds / max(1, n), 4),
            "by_kind_per_s": {k: round(v / seconds, 2) for k, v in tot.items()},
            "load_counters": {k: int(v) for k, v in extra.items()},
        }

    def server_ensure_hist(self, before, after):
        """Approximate server-side ensure latency from the summed histogram deltas."""
        buckets = {}
        for idx, b in before.items():
            e = after.get(idx)
            if isinstance(b, Exception) or not isinstance(e, dict):
                continue
            for key, v in e.items():
                if key.startswith("kiln_load_ensure_duration_seconds_bucket"):
                    le = key.split('le="')[1].rstrip('"}')
                    buckets[le] = buckets.get(le, 0) + v - b.get(key, 0)
        if not buckets:
            return {}
        order = sorted(buckets.items(), key=lambda kv: float("inf") if kv[0] == "+Inf" else float(kv[0]))
        total = order[-1][1]
        out = {"count": int(total)}
        for p in (50, 99):
            for le, c in order:
                if total and c >= total * p / 100:
                    out[f"p{p}_le_ms"] = None if le == "+Inf" else float(le) * 1000
                    break
        return out

    def log_scan(self):
        warn = err = 0
        examples = []
        for s in self.servers:
            try:
                with open(s.err, errors="replace") as f:
                    for line in f:
                        w, e = " WARN " in line, " ERROR " in line
                        warn += w
                        err += e
                        if (w or e) and len(examples) < 6:
                            msg = re.sub(r"^\S+\s+", "", line.strip())
                            if msg not in examples:
                                examples.append(f"s{s.idx:03d}: {msg[:300]}")
            except OSError:
                pass
        return {"warn_lines": warn, "error_lines": err, "examples": examples}

    def redis_state(self):
        if self.a.no_announce:
            return None
        out = {}
        try:
            info = run(["redis-cli", "-u", self.a.redis_url, "info", "clients"], 10)
            m = re.search(r"connected_clients:(\d+)", info)
            out["connected_clients"] = int(m.group(1)) if m else None
            sub = run(["redis-cli", "-u", self.a.redis_url, "pubsub", "numsub",
                       f"{self.a.redis_namespace}:published-head"], 10).split()
            out["head_channel_subscribers"] = int(sub[1]) if len(sub) > 1 else None
        except Exception as e:  # noqa: BLE001
            out["error"] = str(e)[:200]
        return out

    # --- the whole run ---
    def main(self):
        a = self.a
        self.t_start = time.monotonic()
        os.makedirs(a.work, exist_ok=True)
        self.run_dir = os.path.join(a.work, f"run-{os.getpid()}")
        os.makedirs(self.run_dir, exist_ok=True)
        self.ens_examples = {}
        summary = {"servers": a.servers, "courses": a.courses, "announce": not a.no_announce,
                   "rate": a.rate, "seconds": a.seconds, "idle_seconds": a.idle_seconds,
                   "publish_every": a.publish_every, "bucket": a.bucket, "schema": a.schema}
        try:
            self.write_config()
            self.psql(f'DROP SCHEMA IF EXISTS "{a.schema}" CASCADE')
            self.prepare_repo()
            seq0, sync_s = self.sync_all()
            summary["initial_sync_s"] = round(sync_s, 1)
            pg_before = self.pg_sample()
            summary["pg_before_servers"] = {"conns": pg_before[0]} if pg_before else None

            self.servers = [Server(i, os.path.join(self.run_dir, "servers")) for i in range(a.servers)]
            summary["startup_s"] = round(start_fleet(self.servers, a.kiln, self.config, self.env,
                                                     a.batch, a.start_timeout), 1)
            metrics_pool = cf.ThreadPoolExecutor(max_workers=a.metrics_threads)
            # Every server on the last initial head before anything is measured.
            deadline = time.monotonic() + 60
            while True:
                scraped = self.scrape_all(metrics_pool)
                behind = [i for i, m in scraped.items()
                          if isinstance(m, Exception) or m.get("kiln_published_head_seq", 0) < seq0]
                if not behind:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{len(behind)} servers not on head {seq0} 60s after start "
                                       f"(e.g. server {behind[0]}: {scraped[behind[0]]})")
                time.sleep(0.5)

            sampler = threading.Thread(target=self.sampler, daemon=True)
            sampler.start()

            # IDLE
            self.phase = "idle"
            log(f"idle phase: {a.idle_seconds}s")
            t_idle0, m_idle0 = time.monotonic(), self.scrape_all(metrics_pool)
            cpu_idle0 = cpu_snapshot(self.servers)
            socks_idle = None
            self.stop.wait(a.idle_seconds / 2)
            socks_ports = [5432, 6379, int(urllib.parse.urlparse(a.s3_endpoint).port or 80)]
            socks_idle = server_sockets(self.servers, socks_ports)
            redis_idle = self.redis_state()
            self.stop.wait(max(0.0, a.idle_seconds - (time.monotonic() - t_idle0)))
            cpu_idle1 = cpu_snapshot(self.servers)
            t_idle1, m_idle1 = time.monotonic(), self.scrape_all(metrics_pool)
            scrapes_idle = self.scrapes

            # LOAD
            self.phase = "load"
            log(f"load phase: {a.seconds}s at {a.rate} ensures/s, a publish every {a.publish_every}s")
            ens_pool = cf.ThreadPoolExecutor(max_workers=a.threads)
            t_load0 = time.monotonic()
            m_load0 = m_idle1
            pub = threading.Thread(target=self.publisher,
                                   args=(t_load0, t_load0 + a.seconds, metrics_pool), daemon=True)
            pub.start()
            socks_load = None

            def mid_sockets():
                nonlocal socks_load
                if not self.stop.wait(a.seconds / 2):
                    socks_load = server_sockets(self.servers, socks_ports)

            mid = threading.Thread(target=mid_sockets, daemon=True)
            mid.start()
            self.load(ens_pool, t_load0, t_load0 + a.seconds)
            t_load_sent = time.monotonic()
            ens_pool.shutdown(wait=True, cancel_futures=False)
            drain_s = time.monotonic() - t_load_sent
            pub.join(timeout=a.apply_timeout + 300)
            for w in self.watchers:
                w.join(timeout=a.apply_timeout + 60)
            mid.join(timeout=5)
            cpu_load1 = cpu_snapshot(self.servers)
            scrapes_load = self.scrapes - scrapes_idle
            t_load1, m_load1 = time.monotonic(), self.scrape_all(metrics_pool)
            redis_load = self.redis_state()
            self.phase = "done"
            self.sample_rss()
            self.stop.set()
            sampler.join(timeout=15)
            metrics_pool.shutdown(wait=True)

            # --- summary ---
            summary["cpu"] = {"idle": cpu_phase(cpu_idle0, cpu_idle1),
                              "load": cpu_phase(cpu_idle1, cpu_load1)}
            # This driver's own /metrics requests in the load phase (watching publishes).
            summary["driver_metrics_scrapes_load"] = scrapes_load
            summary["pg"] = {"idle": self.pg_phase("idle"), "load": self.pg_phase("load")}
            summary["pg"]["server_connections"] = {
                "idle_total": sum(socks_idle[5432]) if socks_idle else None,
                "load_total": sum(socks_load[5432]) if socks_load else None}
            summary["store"] = {"idle": self.store_phase(m_idle0, m_idle1, t_idle1 - t_idle0),
                                "load": self.store_phase(m_load0, m_load1, t_load1 - t_load0)}
            s3p = socks_ports[2]
            summary["sockets_per_server"] = {
                ph: {"redis_max": max(sk[6379]), "redis_total": sum(sk[6379]),
                     "s3_max": max(sk[s3p]), "s3_total": sum(sk[s3p]),
                     "postgres_total": sum(sk[5432])}
                for ph, sk in (("idle", socks_idle), ("load", socks_load)) if sk}
            summary["redis"] = {"idle": redis_idle, "load": redis_load}
            ok = [p for p in self.publishes if "error" not in p]
            summary["publish"] = {
                "count": len(self.publishes), "failed": len(self.publishes) - len(ok),
                "apply_ms": dist(self.apply_lat),
                "fleet_converged_ms": dist(self.converge_ms),
                "servers_not_applied": sum(p.get("servers_not_applied", 0) for p in ok),
                "superseded": sum(p.get("superseded", 0) for p in ok),
                "verify_ok": sum(p.get("verify_ok", 0) for p in ok),
                "verify_bad": [b for p in ok for b in p.get("verify_bad", [])][:10],
                "sync_wall_ms": dist([p["sync_wall_ms"] for p in ok]),
                "published_objects_mean": round(sum(p["published_objects"] or 0 for p in ok) / len(ok), 1) if ok else None,
            }
            done = sum(self.ens_status.values())
            errors = {k: v for k, v in self.ens_status.items() if k != "200"}
            summary["ensure"] = {
                "scheduled": self.ens_sent + self.ens_skipped, "sent": self.ens_sent,
                "skipped_backlog": self.ens_skipped, "completed": done,
                "ok": self.ens_status.get("200", 0),
                "achieved_per_s": round(self.ens_sent / a.seconds, 1),
                "drain_after_load_s": round(drain_s, 2),
                "errors": errors, "error_examples": {k: self.ens_examples[k] for k in errors if k in self.ens_examples},
                "latency_ms": dist(self.ens_lat),
                "server_side": self.server_ensure_hist(m_load0, m_load1),
            }
            peaks = [s.peak_rss_kb for s in self.servers]
            hwm = [s.hwm_kb() for s in self.servers if s.died is None]
            summary["rss_mb"] = {
                "peak_sum": round(max((r[2] for r in self.rss_samples), default=0) / 1024, 1),
                "per_server_peak_max": round(max(peaks, default=0) / 1024, 1),
                "per_server_peak_mean": round(sum(peaks) / max(1, len(peaks)) / 1024, 1),
                "per_server_hwm_max": round(max(hwm, default=0) / 1024, 1),
            }
            # Requests of this driver retried because kiln had closed the idle connection.
            summary["driver_keepalive_retries"] = self.http.retried
            summary["crashed"] = [{"server": s.idx, "at_s": s.died[0], "code": s.died[1]}
                                  for s in self.servers if s.died]
            summary["server_logs"] = self.log_scan()
            # Per publish: course, head seq, sync ms, slowest apply ms, servers not applied.
            summary["publishes"] = [
                [p["course"], p.get("seq"), p.get("sync_wall_ms"),
                 (p.get("apply_ms") or {}).get("max"), p.get("servers_not_applied", "error")]
                for p in self.publishes]
            summary["ok"] = (not errors and not summary["crashed"] and
                             summary["publish"]["servers_not_applied"] == 0 and
                             not summary["publish"]["verify_bad"] and
                             summary["publish"]["failed"] == 0)
            return summary
        finally:
            self.stop.set()
            self.http.close_all()
            if self.servers:
                killed = stop_fleet(self.servers)
                summary["killed_after_sigterm"] = killed
                log(f"servers stopped ({killed} needed SIGKILL)")
            try:
                self.psql(f'DROP SCHEMA IF EXISTS "{a.schema}" CASCADE', timeout=60)
                log(f"dropped schema {a.schema}")
            except Exception as e:  # noqa: BLE001
                log(f"dropping schema {a.schema} failed: {e}")
            if a.keep:
                log(f"kept {self.run_dir}")
            elif self.run_dir:
                shutil.rmtree(self.run_dir, ignore_errors=True)


def table(s):
    """The summary as a table, for people."""
    lines = []
    add = lines.append
    f = lambda v: "-" if v is None else str(v)
    add(f"== kiln fleet: {s['servers']} servers, {s['courses']} courses, "
        f"{'announce (redis)' if s['announce'] else 'poll only'}, {s['rate']} ensures/s for "
        f"{s['seconds']}s, a publish every {s['publish_every']}s")
    add(f"startup {f(s.get('startup_s'))}s, initial syncs {f(s.get('initial_sync_s'))}s")
    pg = s.get("pg", {})
    add(f"{'':28}{'idle':>14}{'load':>14}")
    # Connections to the database other than the sampler's own, whoever holds them.
    for key, name in (("conns_max", "pg connections max"), ("conns_mean", "pg connections mean"),
                      ("xact_per_s", "pg xact/s"), ("xact_per_s_excl_sampler", "pg xact/s (excl. sampler)"),
                      ("kiln_schema_table_ops_per_s", "kiln schema table ops/s")):
        add(f"{name:28}{f(pg.get('idle', {}).get(key)):>14}{f(pg.get('load', {}).get(key)):>14}")
    cpu = s.get("cpu", {})
    for key, name in (("machine_busy_pct", "machine CPU busy %"), ("servers_cores", "servers' CPU (cores)"),
                      ("driver_cores", "driver CPU (cores)"), ("other_cores", "other CPU (cores)")):
        add(f"{name:28}{f(cpu.get('idle', {}).get(key)):>14}{f(cpu.get('load', {}).get(key)):>14}")
    sc = pg.get("server_connections", {})
    add(f"{'servers-> pg sockets':28}{f(sc.get('idle_total')):>14}{f(sc.get('load_total')):>14}")
    st = s.get("store", {})
    for key, name in (("per_s", "store req/s"), ("per_s_per_server", "store req/s per server")):
        add(f"{name:28}{f(st.get('idle', {}).get(key)):>14}{f(st.get('load', {}).get(key)):>14}")
    for k in ("head_changed", "head_unchanged", "head_failed", "object", "pointer", "downloads"):
        add(f"{'  ' + k + '/s':28}{f(st.get('idle', {}).get('by_kind_per_s', {}).get(k)):>14}"
            f"{f(st.get('load', {}).get('by_kind_per_s', {}).get(k)):>14}")
    p = s.get("publish", {})
    add(f"publishes {f(p.get('count'))} (failed {f(p.get('failed'))}); head applied - written ms: "
        f"{p.get('apply_ms')}; fleet converged ms: {p.get('fleet_converged_ms')}")
    add(f"  servers not applied {f(p.get('servers_not_applied'))}, superseded {f(p.get('superseded'))}, "
        f"served version ok {f(p.get('verify_ok'))}, bad {p.get('verify_bad')}; sync ms {p.get('sync_wall_ms')}")
    e = s.get("ensure", {})
    add(f"ensures sent {f(e.get('sent'))} ({f(e.get('achieved_per_s'))}/s), ok {f(e.get('ok'))}, "
        f"errors {e.get('errors')}, skipped (backlog) {f(e.get('skipped_backlog'))}")
    add(f"  client latency ms {e.get('latency_ms')}; server-side {e.get('server_side')}")
    r = s.get("rss_mb", {})
    add(f"RSS MB: peak sum {f(r.get('peak_sum'))}, per server peak max {f(r.get('per_server_peak_max'))} "
        f"mean {f(r.get('per_server_peak_mean'))}")
    add(f"sockets: {s.get('sockets_per_server')}; redis: {s.get('redis')}")
    add(f"crashed: {s.get('crashed')}; server log: {s.get('server_logs')}")
    add(f"ok: {s.get('ok')}")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--servers", type=int, default=50)
    ap.add_argument("--courses", type=int, default=100)
    ap.add_argument("--seconds", type=float, default=60, help="load phase")
    ap.add_argument("--idle-seconds", type=float, default=20)
    ap.add_argument("--rate", type=float, default=180, help="ensures per second, all servers")
    ap.add_argument("--publish-every", type=float, default=5)
    ap.add_argument("--no-announce", action="store_true", help="omit [announce]: servers poll")
    ap.add_argument("--keep", action="store_true", help="keep this run's directory")
    ap.add_argument("--questions", type=int, default=20)
    ap.add_argument("--files", type=int, default=4)
    ap.add_argument("--size", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--batch", type=int, default=25, help="servers started at once")
    ap.add_argument("--start-timeout", type=float, default=120, help="per batch")
    ap.add_argument("--threads", type=int, default=64, help="ensure client threads")
    ap.add_argument("--metrics-threads", type=int, default=16)
    ap.add_argument("--apply-timeout", type=float, default=30,
                    help="how long a publish may take to reach every server")
    ap.add_argument("--verify-sample", type=int, default=10)
    ap.add_argument("--budget", type=int, default=200_000_000)
    ap.add_argument("--work", default=os.path.expanduser("~/.cache/kiln-sim"))
    ap.add_argument("--kiln", required=True)
    ap.add_argument("--gen", required=True)
    ap.add_argument("--pg-url", required=True)
    ap.add_argument("--schema", default="kiln_sim")
    ap.add_argument("--redis-url", required=True)
    ap.add_argument("--redis-namespace", default="kiln-sim")
    ap.add_argument("--s3-endpoint", required=True)
    ap.add_argument("--bucket", default="kiln-sim")
    a = ap.parse_args()
    if a.servers < 1 or a.courses < 1 or a.rate <= 0 or a.seconds <= 0 or a.publish_every <= 0:
        ap.error("--servers, --courses, --rate, --seconds and --publish-every must be positive")
    if a.courses > 1000:
        ap.error("--courses: at most 1000 (c000..c999)")
    signal.signal(signal.SIGTERM, on_signal)
    try:
        summary = Sim(a).main()
    except (Stop, KeyboardInterrupt) as e:
        log(f"stopped: {e!r}")
        return 130
    except RuntimeError as e:
        log(f"FAILED: {e}")
        return 1
    print(table(summary), file=sys.stderr, flush=True)
    print(json.dumps(summary, separators=(",", ":")), flush=True)
    return 0 if summary.get("ok") else 2


if __name__ == "__main__":
    sys.exit(main())
