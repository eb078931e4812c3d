"""The agent's boot files, carried in every bundle under boot/: a POSIX init script that knows how to start
`claw agent` on this target (its serial line and speed, the loopback listener ssh flashing forwards to, the
port `claw serve` answers on), and a systemd unit that runs that script, so the command line lives in one
place. Boards with systemd (Raspberry Pi OS, Debian, Jetson's Ubuntu) use the unit; BusyBox or sysvinit
images (Buildroot, Yocto, the emulated board) the script. `install.py --enable-agent` puts them in place.

A board's own settings go in /etc/default/clawdbot-agent, which the script reads after its defaults: a Pi
whose console is on another UART sets CLAW_AGENT_PORT there and keeps it across updates."""
from __future__ import annotations

from .targets import Target

AGENT_ROOT = "/var/lib/clawdbot"
AGENT_LISTEN = "127.0.0.1:7070"  # deploy/ssh.py's AGENT_PORT
SERVE_PORT = 8000
SCRIPT = "boot/clawdbot-agent"
UNIT = "boot/clawdbot-agent.service"

_SCRIPT = """#!/bin/sh
### BEGIN INIT INFO
# Provides:          clawdbot-agent
# Required-Start:    $local_fs $network
# Required-Stop:     $local_fs
# Default-Start:     2 3 4 5
# Default-Stop:      0 1 6
# Short-Description: clawdbot device agent: receives bundles, keeps claw serve running
### END INIT INFO
# Made by `invoke build` for @TARGET@. Override any setting in /etc/default/clawdbot-agent.
# The serial line must not also carry a login console (a getty, or the kernel's console=): the agent's frames
# and a shell's echo cannot share it. CLAW_AGENT_PORT= (empty) leaves the line alone and answers ssh only.
CLAW_AGENT_PORT=@PORT@
CLAW_AGENT_BAUD=@BAUD@
CLAW_AGENT_LISTEN=@LISTEN@
CLAW_AGENT_ROOT=@ROOT@
CLAW_AGENT_SERVE_PORT=@SERVE_PORT@
CLAW_AGENT_PYTHON=python3
CLAW_AGENT_LIB=  # default: $CLAW_AGENT_ROOT/agent/lib
CLAW_AGENT_LOG=/var/log/clawdbot-agent.log
CLAW_AGENT_PIDFILE=/run/clawdbot-agent.pid
CLAW_AGENT_DEFAULTS=${CLAW_AGENT_DEFAULTS:-/etc/default/clawdbot-agent}
[ -r "$CLAW_AGENT_DEFAULTS" ] && . "$CLAW_AGENT_DEFAULTS"

run() {
    set -- --root "$CLAW_AGENT_ROOT"
    [ -n "$CLAW_AGENT_SERVE_PORT" ] && set -- "$@" --serve-port "$CLAW_AGENT_SERVE_PORT"
    [ -n "$CLAW_AGENT_PORT" ] && set -- "$@" --port "$CLAW_AGENT_PORT" --baud "$CLAW_AGENT_BAUD"
    [ -n "$CLAW_AGENT_LISTEN" ] && set -- "$@" --listen "$CLAW_AGENT_LISTEN"
    # The agent's own install (install.py --enable-agent), which flashing never replaces: a bundle that
    # passed its health check but broke the agent would otherwise cut the board off from the next flash.
    lib=${CLAW_AGENT_LIB:-$CLAW_AGENT_ROOT/agent/lib}
    [ -d "$lib" ] && export PYTHONPATH="$lib${PYTHONPATH:+:$PYTHONPATH}"
    # A log file, never the terminal: this may be started on the very console the agent speaks on.
    exec "$CLAW_AGENT_PYTHON" -m clawdbot.cli agent "$@" </dev/null >>"$CLAW_AGENT_LOG" 2>&1
}

running() {
    [ -r "$CLAW_AGENT_PIDFILE" ] && kill -0 "$(cat "$CLAW_AGENT_PIDFILE")" 2>/dev/null
}

case "$1" in
    run)  # in the foreground: for systemd, or an init that supervises its children
        run ;;
    start)
        if running; then echo "clawdbot-agent: already running"; exit 0; fi
        run &
        echo $! >"$CLAW_AGENT_PIDFILE"
        echo "clawdbot-agent: started (pid $!, log $CLAW_AGENT_LOG)" ;;
    stop)
        if running; then
            pid=$(cat "$CLAW_AGENT_PIDFILE")
            kill -TERM "$pid"  # the agent stops claw serve and finishes the command in hand
            i=0
            while kill -0 "$pid" 2>/dev/null && [ $i -lt 60 ]; do sleep 1; i=$((i + 1)); done
        fi
        rm -f "$CLAW_AGENT_PIDFILE"
        echo "clawdbot-agent: stopped" ;;
    restart)
        "$0" stop && "$0" start ;;
    status)
        if running; then echo "clawdbot-agent: running (pid $(cat "$CLAW_AGENT_PIDFILE"))"; exit 0; fi
        echo "clawdbot-agent: not running"; exit 3 ;;
    *)
        echo "usage: $0 {run|start|stop|restart|status}" >&2; exit 2 ;;
esac
"""

_UNIT = """[Unit]
Description=clawdbot device agent (A/B bundle slots, claw serve)
Documentation=file://@ROOT@/current/manifest.json
After=network.target

[Service]
Type=simple
ExecStart=/etc/init.d/clawdbot-agent run
# SIGTERM: the agent stops claw serve and finishes the command in hand; a deploy is safe to cut anyway.
KillMode=mixed
TimeoutStopSec=60
Restart=always
RestartSec=2

[Install]
WantedBy=multi-user.target
"""


def boot_files(target: Target) -> dict[str, bytes]:
    """Bundle path -> contents of the agent's boot files for `target`."""
    values = {"@TARGET@": target.name, "@PORT@": str(target.access["serial_device"]),
              "@BAUD@": str(target.access["serial_baud"]), "@LISTEN@": AGENT_LISTEN, "@ROOT@": AGENT_ROOT,
              "@SERVE_PORT@": str(SERVE_PORT)}
    script, unit = _SCRIPT, _UNIT
    for key, value in values.items():
        script, unit = script.replace(key, value), unit.replace(key, value)
    return {SCRIPT: script.encode(), UNIT: unit.encode()}
