#!/bin/sh
# The shadow-rollout guest kit, for the Linux VMs of a target scale set and of the shadow pool. Delivered as the
# CustomScript extension named "shadow-rollout-guest" (docs/deploy.md#guest-prerequisites); a rollout refuses to
# start on a scale set whose model lacks it or the Azure Monitor agent (shared/domain/guest.py).
#
#  - the health probe: a systemd timer runs health-probe.sh every minute; it appends one CSV line per probe
#    (time, healthy, probe) to /var/log/shadow-rollout/health-probe-YYYYMMDD.log, which the Azure Monitor agent
#    collects into AppHealthProbe_CL through the data collection rule's text-log source;
#  - the load generator: stress-ng, which the shadows' baseline starts through Run Command.
#
# Usage: install.sh [PROBE_URL]   (default http://127.0.0.1:80/health; any 2xx answer within 5 s is healthy)
set -eu
PROBE_URL="${1:-http://127.0.0.1:80/health}"
PREFIX=/opt/shadow-rollout
here="$(cd "$(dirname "$0")" && pwd)"

if ! command -v stress-ng >/dev/null 2>&1 || ! command -v curl >/dev/null 2>&1; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y stress-ng curl >/dev/null \
    || { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y stress-ng curl >/dev/null; }
fi
install -d -m 0755 "$PREFIX" /var/log/shadow-rollout /etc/shadow-rollout
install -m 0755 "$here/health-probe.sh" "$PREFIX/health-probe.sh"
printf 'PROBE_URL=%s\n' "$PROBE_URL" > /etc/shadow-rollout/health-probe.env
cat > /etc/systemd/system/shadow-rollout-health-probe.service <<UNIT
[Unit]
Description=shadow-rollout health probe (one probe, one line in /var/log/shadow-rollout)
[Service]
Type=oneshot
EnvironmentFile=/etc/shadow-rollout/health-probe.env
ExecStart=$PREFIX/health-probe.sh
UNIT
cat > /etc/systemd/system/shadow-rollout-health-probe.timer <<UNIT
[Unit]
Description=shadow-rollout health probe every minute
[Timer]
OnCalendar=*-*-* *:*:00
AccuracySec=1s
[Install]
WantedBy=timers.target
UNIT
systemctl daemon-reload
systemctl enable --now shadow-rollout-health-probe.timer
# logs older than 3 days go (the agent needs at least 2 days to have read them)
printf '%s\n' "find /var/log/shadow-rollout -name 'health-probe-*.log' -mtime +3 -delete" \
  > /etc/cron.daily/shadow-rollout-health-probe-cleanup
chmod 0755 /etc/cron.daily/shadow-rollout-health-probe-cleanup
echo "shadow-rollout guest kit installed: probe $PROBE_URL every minute, stress-ng $(stress-ng --version | head -1)"
