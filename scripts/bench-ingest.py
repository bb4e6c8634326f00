#!/usr/bin/env python3
"""Ingest throughput of `POST /api/runs/{id}/events`, from one Python client (stdlib only).

    cargo build --release && python3 scripts/bench-ingest.py [--secs 5] [--batch 200 1000]

Starts `target/release/trainconsole serve` on a free port with a temporary runs directory,
creates one external run per batch size and posts JSON-lines batches of step events (with an
Idempotency-Key, as the Python client does) for --secs seconds each, one request at a time.
Prints events/s and the median and 99th-percentile time per post. Each post is stored
(committed to SQLite) before it is answered.
"""
import argparse, http.client, json, os, re, statistics, subprocess, sys, tempfile, time

EXE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "target", "release", "trainconsole")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--secs", type=float, default=5.0)
    parser.add_argument("--batch", type=int, nargs="+", default=[200, 1000])
    args = parser.parse_args()
    runs = tempfile.mkdtemp(prefix="tc-bench-")
    log = open(os.path.join(runs, "serve.log"), "w+")
    server = subprocess.Popen([EXE, "serve", "--port", "0", "--runs-dir", runs], stdout=log, stderr=subprocess.STDOUT)
    try:
        port = None
        for _ in range(300):
            log.seek(0)
            m = re.search(r"http://127\.0\.0\.1:(\d+)", log.read())
            if m:
                port = int(m.group(1))
                break
            time.sleep(0.05)
        if port is None:
            sys.exit("the server printed no address")
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for batch in args.batch:
            conn.request("POST", "/api/runs", json.dumps({"name": f"bench {batch}", "total_steps": 10**9}))
            created = json.loads(conn.getresponse().read())
            headers = {"Authorization": f"Bearer {created['token']}", "Content-Type": "application/x-ndjson"}
            step, posts, latencies = 0, 0, []
            end = time.perf_counter() + args.secs
            while time.perf_counter() < end:
                lines = []
                for _ in range(batch):
                    step += 1
                    lines.append(json.dumps({"kind": "step", "time": 1.8e9 + step * 0.01, "step": step, "tokens": step * 2048,
                                             "loss": 2.0 + 1.0 / step, "lr": 3e-4, "grad_norm": 0.5, "step_time_ms": 10.0}))
                posts += 1
                started = time.perf_counter()
                conn.request("POST", f"/api/runs/{created['id']}/events", "\n".join(lines), {**headers, "Idempotency-Key": f"bench-{posts}"})
                response = conn.getresponse()
                body = response.read()
                latencies.append(time.perf_counter() - started)
                if response.status != 200:
                    sys.exit(f"post answered {response.status}: {body[:200]}")
            total = sum(latencies)
            latencies.sort()
            p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
            print(f"batch {batch:5d}: {step / total:9,.0f} events/s over {posts} posts; "
                  f"per post median {statistics.median(latencies) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms")
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
