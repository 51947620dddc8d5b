#!/bin/sh
# One health probe: appends "<ISO time>,<true|false>,<probe URL>" to today's log, the line format the data
# collection rule's transformation parses into AppHealthProbe_CL (TimeGenerated, Healthy_b, Probe_s).
set -u
PROBE_URL="${PROBE_URL:-http://127.0.0.1:80/health}"
LOG_DIR="${SHADOW_ROLLOUT_LOG_DIR:-/var/log/shadow-rollout}"
if curl -fsS -o /dev/null --max-time 5 "$PROBE_URL" 2>/dev/null; then healthy=true; else healthy=false; fi
printf '%s,%s,%s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$healthy" "$PROBE_URL" \
  >> "$LOG_DIR/health-probe-$(date -u +%Y%m%d).log"
