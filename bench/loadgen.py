"""An open-loop HTTP load generator (standard library only, so spawned processes start
fast): each process sends its share of the requests on a fixed schedule, whatever the
server's pace, and records each request's latency. Used by the payments benchmark."""

import http.client
import json
import time


def send_schedule(args) -> list[tuple[float, int, str]]:
    """args = (port, host, path, bodies, rate, start_at). Sends bodies[i] at
    start_at + i / rate; returns [(latency_ms, status, error)] in order."""
    port, host, path, bodies, rate, start_at = args
    results = []
    conn = None
    for i, body in enumerate(bodies):
        due = start_at + i / rate
        pause = due - time.time()
        if pause > 0:
            time.sleep(pause)
        data = json.dumps(body).encode()
        started = time.perf_counter()
        try:
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request(
                "POST",
                path,
                body=data,
                headers={"Host": host, "Content-Type": "application/json"},
            )
            response = conn.getresponse()
            response.read()
            status, error = response.status, ""
            if response.getheader("Connection", "").lower() == "close":
                conn.close()
                conn = None
        except (OSError, http.client.HTTPException) as exc:
            status, error = 0, str(exc) or type(exc).__name__
            if conn is not None:
                conn.close()
            conn = None
        results.append(((time.perf_counter() - started) * 1000, status, error))
    if conn is not None:
        conn.close()
    return results
