#!/usr/bin/env bash
# Sets up and runs Certkeeper on the embedded store, by hand (no systemd):
# builds it, writes ./certkeeper-data/certkeeper.toml, imports this machine's
# CA bundle, starts the daemon, shows the inventory through the CLI and the
# API, and keeps the daemon running in the foreground until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
data="$root/certkeeper-data"
port="${CERTKEEPER_PORT:-8787}"
bundle=/etc/ssl/certs/ca-certificates.crt

missing=()
[ -s "$bundle" ] || missing+=(ca-certificates)
command -v curl >/dev/null || missing+=(curl)
dpkg-query -W -f='${Status}' libssl-dev 2>/dev/null | grep -q "ok installed" || missing+=(libssl-dev pkg-config)
if ((${#missing[@]})); then
  echo "installing missing Debian packages: ${missing[*]}"
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

cargo build -p certkeeper
bin="${CARGO_TARGET_DIR:-$root/target}/debug/certkeeper"

mkdir -p "$data"
config="$data/certkeeper.toml"
if [ ! -f "$config" ]; then
  cat > "$config" <<TOML
# Written by contrib/quickstart.sh; every option is in contrib/certkeeper.example.toml.
[api]
listen = "127.0.0.1:$port"

[store]
url = "surrealkv://$data/store"

# Re-import the system CA bundle every hour (cron with seconds first).
[[job]]
type = "import"
name = "system-ca-bundle"
schedule = "0 0 * * * *"
paths = ["$bundle"]
TOML
fi
"$bin" validate --config "$config"
"$bin" import --config "$config" "$bundle"

"$bin" run --config "$config" &
daemon=$!
trap 'kill -TERM $daemon 2>/dev/null; wait $daemon' INT TERM
for _ in $(seq 100); do
  curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
  sleep 0.2
done

echo; echo "== certificates expiring within 3 years (CLI, through the running daemon) =="
"$bin" certificates list --config "$config" --expiring-within 1095d --limit 10
echo; echo "== counts by status (API: GET /api/v1/counts) =="
curl -fsS "http://127.0.0.1:$port/api/v1/counts"; echo
echo; echo "certkeeper is running on http://127.0.0.1:$port (Ctrl-C stops it)."
echo "Try: $bin certificates list --config $config --all --format csv"
echo "Web portal: http://127.0.0.1:$port/ui/ (first make an account in another terminal:"
echo "  $bin admin create admin --role primary_admin --password-stdin --config $config )"
wait $daemon
