-- Shared by every scenario: at the end of a run, one machine-readable line that
-- bench/run.sh reads. Latencies are in microseconds in wrk; printed here in ms.
-- errors: failed connections, reads, writes, timeouts, and answers of 4xx/5xx.
function done(summary, latency, requests)
  local e = summary.errors
  local errors = e.connect + e.read + e.write + e.timeout + e.status
  io.write(string.format(
    "RESULT requests=%d seconds=%.3f rps=%.1f p50_ms=%.3f p99_ms=%.3f errors=%d timeouts=%d status_errors=%d\n",
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    errors, e.timeout, e.status))
end
