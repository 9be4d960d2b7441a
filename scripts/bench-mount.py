"""Reads for scripts/bench-mount.sh: warm reads through a kiln mount against the same files in
the ensured version directory, and cold first opens through the mount against POST /ensure
plus a read, each pair in the same run.

usage: bench-mount.py warm MOUNT_VERSION_DIR DIRECT_VERSION_DIR FILES MOUNT_PID
       bench-mount.py cold MOUNT_COURSE_DIR BASE_URL COURSE QUESTIONS...
"""
import json, os, statistics, sys, time, urllib.request


def files_below(root, limit):
    out = []
    for q in sorted(os.listdir(os.path.join(root, "questions"))):
        for dirpath, dirs, names in os.walk(os.path.join(root, "questions", q), followlinks=True):
            dirs.sort()
            for n in sorted(names):
                out.append(os.path.relpath(os.path.join(dirpath, n), root))
                if len(out) == limit:
                    return out
    return out


def read_all(root, files, builtin):
    t = time.perf_counter()
    n = 0
    for f in files:
        p = os.path.join(root, f)
        if builtin:
            with open(p, "rb") as fh:
                n += len(fh.read())
        else:
            fd = os.open(p, os.O_RDONLY)
            while True:
                b = os.read(fd, 1 << 16)
                if not b:
                    break
                n += len(b)
            os.close(fd)
    return time.perf_counter() - t, n


def cpu_seconds(pid):
    """User + system CPU of process `pid` so far."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def warm(mount_root, direct_root, limit, pid):
    # Listed through the mount: its tree costs no download, and the direct directory holds
    # a chunk's link only once it is ensured.
    files = files_below(mount_root, limit)
    assert len(files) == limit, f"only {len(files)} files"
    read_all(mount_root, files, False)  # loads every chunk, and the kernel's caches
    read_all(direct_root, files, False)
    for builtin in (False, True):
        m, d, mount_cpu, reader_cpu = [], [], 0.0, 0.0
        for _ in range(5):
            c0, r0 = cpu_seconds(pid), sum(os.times()[:2])
            tm, nm = read_all(mount_root, files, builtin)
            mount_cpu += cpu_seconds(pid) - c0
            reader_cpu += sum(os.times()[:2]) - r0
            td, nd = read_all(direct_root, files, builtin)
            assert nm == nd, (nm, nd)
            m.append(tm)
            d.append(td)
        how = "open()+read()" if builtin else "os.open+os.read"
        mm, dm = statistics.median(m), statistics.median(d)
        print(f"warm {how}: {limit} files, {nm} bytes: mount {mm*1e3:.0f} ms ({mm/limit*1e6:.1f} us/file), "
              f"direct {dm*1e3:.0f} ms ({dm/limit*1e6:.1f} us/file); ratio direct/mount = {dm/mm:.3f} (target >= 0.5); "
              f"CPU per file through the mount: mount process {mount_cpu/5/limit*1e6:.1f} us, reader {reader_cpu/5/limit*1e6:.1f} us")


def cold(mount_course, base, course, questions):
    half = len(questions) // 2
    via_mount, via_ensure = [], []
    for a, b in zip(questions[:half], questions[half:]):
        # The mount: the first open of a question file (its chunk not on disk) and the read.
        p = os.path.join(mount_course, "current", "questions", a, "question.html")
        t = time.perf_counter()
        with open(p, "rb") as f:
            f.read()
        via_mount.append(time.perf_counter() - t)
        # The API: POST /ensure of another question, then the read from the returned path.
        t = time.perf_counter()
        req = urllib.request.Request(f"{base}/v1/courses/{course}/ensure",
                                     data=json.dumps({"chunks": [f"question:{b}"]}).encode(),
                                     headers={"content-type": "application/json"})
        with urllib.request.urlopen(req) as r:
            ensured = json.load(r)
        with open(os.path.join(ensured["paths"][0], "question.html"), "rb") as f:
            f.read()
        via_ensure.append(time.perf_counter() - t)
    m, e = statistics.median(via_mount), statistics.median(via_ensure)
    print(f"cold first open: mount median {m*1e3:.2f} ms (p90 {sorted(via_mount)[int(len(via_mount)*0.9)]*1e3:.2f}), "
          f"POST /ensure + read median {e*1e3:.2f} ms (p90 {sorted(via_ensure)[int(len(via_ensure)*0.9)]*1e3:.2f}), "
          f"{half} questions each; ratio mount/ensure = {m/e:.3f} (target <= 1.2)")


if __name__ == "__main__":
    if sys.argv[1] == "warm":
        warm(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
    else:
        cold(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:])
