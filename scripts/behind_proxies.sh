#!/usr/bin/env bash
# The server role behind real reverse proxies: Debian's nginx and HAProxy in front
# of syncws servers, plain and with TLS terminated at the proxy, HAProxy's send-proxy-v2 and
# nginx's stream proxy_protocol, and an nginx route with a 3 s proxy_read_timeout for the idle
# tests; then runs tests/behind_proxies.rs against them.
#
#   scripts/behind_proxies.sh
#
# Installs nginx (with its stream module), haproxy and openssl if they are missing (apt-get,
# as root or through sudo). Everything runs from a temporary directory and is stopped and
# removed at the end. The configurations are the ones docs/deploying.md shows.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/services.sh
missing=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
[ -e /usr/lib/nginx/modules/ngx_stream_module.so ] || missing+=(libnginx-mod-stream)
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || missing+=(haproxy)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
install_packages "${missing[@]}"
stop_system_services nginx haproxy
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)
"$NGINX" -v
"$HAPROXY" -v | head -n 1

SERVICES_WORK=$(mktemp -d)
work=$SERVICES_WORK
trap services_cleanup EXIT

# Backends (started by the test binary) and proxy ports.
free_port B_ECHO      # echo; trusts 127.0.0.2 for X-Forwarded-For
free_port B_PP        # echo; trusts 127.0.0.2 for PROXY headers
free_port B_PINGS     # echo with server pings every second
free_port N_PLAIN
free_port N_TLS
free_port N_IDLE
free_port N_PP
free_port H_PLAIN
free_port H_TLS
free_port H_PP

# A certificate for localhost and 127.0.0.1 (its own CA), for TLS terminated at the proxies.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
    -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
cat "$work/cert.pem" "$work/key.pem" >"$work/combined.pem"

mkdir -p "$work/nginx"
# The location every WebSocket route shares: HTTP/1.1 upstream, the upgrade headers passed
# on, the client's address appended to X-Forwarded-For, connections to the backend from
# 127.0.0.2 (so the backend can tell the proxy from the client).
ws_location() {
    cat <<EOF
            proxy_pass http://127.0.0.1:$1;
            proxy_http_version 1.1;
            proxy_set_header Upgrade \$http_upgrade;
            proxy_set_header Connection \$connection_upgrade;
            proxy_set_header Host \$host;
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_bind 127.0.0.2;
            proxy_buffering off;
            proxy_read_timeout $2;
            proxy_send_timeout $2;
EOF
}
cat >"$work/nginx.conf" <<EOF
load_module /usr/lib/nginx/modules/ngx_stream_module.so;
worker_processes 1;
daemon off;
pid $work/nginx.pid;
error_log $work/nginx-error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $work/nginx/body;
    proxy_temp_path $work/nginx/proxy;
    fastcgi_temp_path $work/nginx/fastcgi;
    uwsgi_temp_path $work/nginx/uwsgi;
    scgi_temp_path $work/nginx/scgi;
    map \$http_upgrade \$connection_upgrade {
        default upgrade;
        ''      close;
    }
    server {
        listen 127.0.0.1:$N_PLAIN;
        listen 127.0.0.1:$N_TLS ssl;
        ssl_certificate $work/cert.pem;
        ssl_certificate_key $work/key.pem;
        location / {
$(ws_location "$B_ECHO" 3600s)
        }
    }
    # Idle sockets are cut after 3 s without traffic, unless pings keep them busy.
    server {
        listen 127.0.0.1:$N_IDLE;
        location / {
$(ws_location "$B_ECHO" 3s)
        }
        location /server-pings {
$(ws_location "$B_PINGS" 3s)
        }
    }
}
stream {
    server {
        listen 127.0.0.1:$N_PP;
        proxy_pass 127.0.0.1:$B_PP;
        proxy_protocol on;
        proxy_bind 127.0.0.2;
    }
}
EOF

cat >"$work/haproxy.cfg" <<EOF
global
    maxconn 1024
defaults
    mode http
    timeout connect 5s
    timeout client 1h
    timeout server 1h
    timeout tunnel 1h
frontend echo
    bind 127.0.0.1:$H_PLAIN
    bind 127.0.0.1:$H_TLS ssl crt $work/combined.pem
    option forwardfor
    default_backend echo
backend echo
    server echo1 127.0.0.1:$B_ECHO source 127.0.0.2
frontend pp
    bind 127.0.0.1:$H_PP
    default_backend pp
backend pp
    server pp1 127.0.0.1:$B_PP send-proxy-v2 source 127.0.0.2
EOF

"$NGINX" -t -c "$work/nginx.conf" -p "$work/nginx" 2>&1 | tail -n 2
"$HAPROXY" -c -f "$work/haproxy.cfg" | tail -n 1

start() {
    local name=$1
    shift
    setsid "$@" >"$work/$name.out" 2>&1 &
    SERVICES_PIDS+=($!)
}
start nginx "$NGINX" -c "$work/nginx.conf" -p "$work/nginx"
start haproxy "$HAPROXY" -db -f "$work/haproxy.cfg"
for port in "$N_PLAIN" "$N_TLS" "$N_IDLE" "$N_PP" "$H_PLAIN" "$H_TLS" "$H_PP"; do
    wait_listening "$port" || { echo "behind_proxies.sh: nothing listens on $port"; cat "$work"/*.out "$work"/*.log 2>/dev/null; exit 1; }
done

export SYNCWS_BP_BACKEND_ECHO=$B_ECHO SYNCWS_BP_BACKEND_PP=$B_PP SYNCWS_BP_BACKEND_PINGS=$B_PINGS
export SYNCWS_BP_NGINX_PLAIN=$N_PLAIN SYNCWS_BP_NGINX_TLS=$N_TLS SYNCWS_BP_NGINX_IDLE=$N_IDLE
export SYNCWS_BP_NGINX_PP=$N_PP SYNCWS_BP_HAPROXY_PLAIN=$H_PLAIN SYNCWS_BP_HAPROXY_TLS=$H_TLS
export SYNCWS_BP_HAPROXY_PP=$H_PP SYNCWS_BP_CA="$work/cert.pem"
if ! cargo test --features _real-proxy-tests --test behind_proxies; then
    for f in "$work"/*.out "$work"/*.log; do
        [ -s "$f" ] && { echo "--- $f"; tail -n 30 "$f"; }
    done
    exit 1
fi
echo "BEHIND-PROXIES OK"
