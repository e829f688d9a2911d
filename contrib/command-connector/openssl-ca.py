#!/usr/bin/env python3
"""A Certkeeper command connector that signs with a local `openssl ca`.

The worked example of the command connector protocol (version 1, see
README.md next to this file): Certkeeper runs this program once per
operation with a JSON request on stdin and reads one JSON answer from
stdout. It issues from, revokes in and lists a CA directory of the kind
`openssl ca` keeps (index.txt, serial, newcerts/), which it can also create:

    openssl-ca.py init /var/lib/example-ca --subject "/CN=Example Internal CA"
    openssl-ca.py answer --ca-dir /var/lib/example-ca --allow-domain internal.example

Set CA_KEY_PASSPHRASE in the environment (the connector's `env`) to keep the
CA key encrypted; it reaches openssl as `-passin env:CA_KEY_PASSPHRASE`, never
on a command line. Only the Python standard library and the `openssl`
command are used.

Policy: every identifier must be a DNS name under an --allow-domain suffix
(wildcards only with --allow-wildcards), an IP address inside an --allow-ip
network, or an e-mail address whose domain is allowed. The certificate's
names come from the request's identifiers, which are checked; only the
public key is taken from the CSR (its extensions are ignored).
"""

import argparse
import base64
import fcntl
import hashlib
import ipaddress
import json
import os
import re
import subprocess
import sys
import tempfile

PROTOCOL_VERSION = 1
DNS_NAME = re.compile(r"^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
EMAIL = re.compile(r"^[A-Za-z0-9._%+-]+@([A-Za-z0-9-]+\.)*[A-Za-z0-9-]+$")
EKU = {"server": "serverAuth", "client": "clientAuth", "code_signing": "codeSigning"}
REASONS = {"unspecified", "keyCompromise", "affiliationChanged", "superseded", "cessationOfOperation"}

CONFIG = """\
# Written by openssl-ca.py init; paths are relative to the CA directory,
# which is the working directory of every openssl command.
[ ca ]
default_ca = certkeeper

[ certkeeper ]
dir = .
database = $dir/index.txt
new_certs_dir = $dir/newcerts
certificate = $dir/ca.pem
private_key = $dir/ca.key
serial = $dir/serial
crlnumber = $dir/crlnumber
crl = $dir/crl.pem
default_md = sha256
default_days = 90
default_crl_days = 7
policy = policy_any
unique_subject = no
copy_extensions = none
email_in_dn = no

[ policy_any ]
commonName = optional

[ req ]
distinguished_name = req_dn
x509_extensions = v3_ca
prompt = no

[ req_dn ]

[ v3_ca ]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
"""


class Refused(Exception):
    """The request cannot succeed as it is: a permanent error."""


class AlreadyRevoked(Refused):
    """A revocation of a certificate that is already revoked."""


class Unavailable(Exception):
    """The CA cannot be used right now: a transient error."""


def answer(fields):
    fields = dict(fields)
    fields["version"] = PROTOCOL_VERSION
    json.dump(fields, sys.stdout)
    sys.stdout.write("\n")


def error(kind, message, **extra):
    answer({"error": dict({"class": kind, "message": message}, **extra)})


class Ca:
    """A CA directory and the policy it issues under."""

    def __init__(self, args):
        self.dir = os.path.abspath(args.ca_dir)
        self.domains = [d.lower().strip(".") for d in args.allow_domain]
        self.networks = [ipaddress.ip_network(n, strict=False) for n in args.allow_ip]
        self.wildcards = args.allow_wildcards
        self.max_days = args.max_days
        self.page_size = args.page_size
        for name in ("ca.pem", "ca.key", "index.txt", "serial", "openssl.cnf"):
            if not os.path.exists(self.path(name)):
                # Likely an unmounted volume or a CA being restored: retry.
                raise Unavailable(f"the CA directory {self.dir} has no {name}")

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def openssl(self, *args, input_bytes=None):
        """Runs openssl in the CA directory; its stdout, or Refused with its stderr."""
        command = ["openssl", *args]
        if "CA_KEY_PASSPHRASE" in os.environ and args[0] in ("ca",):
            command += ["-passin", "env:CA_KEY_PASSPHRASE"]
        done = subprocess.run(command, cwd=self.dir, input=input_bytes, capture_output=True)
        if done.returncode != 0:
            detail = done.stderr.decode("utf-8", "replace").strip().splitlines()[-3:]
            raise Refused(f"openssl {args[0]} failed: {' / '.join(detail)}")
        return done.stdout.decode("utf-8", "replace")

    def lock(self, exclusive):
        handle = open(self.path(".lock"), "a")
        fcntl.flock(handle, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        return handle

    # -- policy -------------------------------------------------------------

    def allowed_domain(self, name):
        return any(name == d or name.endswith("." + d) for d in self.domains)

    def san(self, identifiers):
        """The subjectAltName value for the request's identifiers, checked."""
        if not identifiers:
            raise Refused("the request names no identifier")
        entries = []
        for ident in identifiers:
            kind, value = ident.get("type"), str(ident.get("value", ""))
            if kind == "dns":
                name = value.lower().rstrip(".")
                if not DNS_NAME.match(name):
                    raise Refused(f"`{value}` is not a DNS name")
                if name.startswith("*.") and not self.wildcards:
                    raise Refused(f"wildcard {name} is not allowed")
                if not self.allowed_domain(name[2:] if name.startswith("*.") else name):
                    raise Refused(f"{name} is outside the allowed domains")
                entries.append(f"DNS:{name}")
            elif kind == "ip":
                try:
                    address = ipaddress.ip_address(value)
                except ValueError:
                    raise Refused(f"`{value}` is not an IP address") from None
                if not any(address in n for n in self.networks):
                    raise Refused(f"{address} is outside the allowed networks")
                entries.append(f"IP:{address}")
            elif kind == "email":
                if not EMAIL.match(value) or not self.allowed_domain(value.split("@")[1].lower()):
                    raise Refused(f"e-mail address {value} is not allowed")
                entries.append(f"email:{value}")
            else:
                raise Refused(f"identifier type `{kind}` is not supported")
        return ", ".join(dict.fromkeys(entries))

    # -- the CA's records ---------------------------------------------------

    def index(self):
        """index.txt as (status, serial) pairs, in the order issued."""
        rows = []
        with open(self.path("index.txt")) as index:
            for line in index:
                fields = line.rstrip("\n").split("\t")
                if len(fields) >= 4:
                    rows.append((fields[0], fields[3].upper()))
        return rows

    def certificate_pem(self, serial):
        with open(self.path("newcerts", serial + ".pem")) as cert:
            return pem_blocks(cert.read())[0]

    def chain(self, leaf_pem):
        parts = [leaf_pem, pem_blocks(open(self.path("ca.pem")).read())[0]]
        if os.path.exists(self.path("chain.pem")):
            parts += pem_blocks(open(self.path("chain.pem")).read())
        return "".join(parts)

    def serial_of(self, cert_pem):
        out = self.openssl("x509", "-noout", "-serial", input_bytes=cert_pem.encode())
        return out.strip().split("=", 1)[1].upper()

    # -- operations -----------------------------------------------------------

    def issue(self, request):
        if request.get("profile"):
            raise Refused(f"unknown profile `{request['profile']}`: this CA has none")
        usage = request.get("usage", "server")
        if usage not in EKU:
            raise Refused(f"usage `{usage}` is not supported")
        san = self.san(request.get("identifiers") or [])
        csr = str(request.get("csr_pem", "")).encode()
        seconds = request.get("validity_seconds") or 90 * 86400
        days = max(1, min(self.max_days, -(-int(seconds) // 86400)))
        key = request.get("idempotency_key")
        with self.lock(exclusive=True):
            if key:
                earlier = self.issued_under(key, csr)
                if earlier:
                    return {"chain_pem": self.chain(earlier[1]), "ca_reference": earlier[0]}
            first = san.split(", ")[0].split(":", 1)[1]
            with tempfile.TemporaryDirectory() as work:
                csr_path = os.path.join(work, "request.csr")
                ext_path = os.path.join(work, "leaf.ext")
                out_path = os.path.join(work, "leaf.pem")
                with open(csr_path, "wb") as f:
                    f.write(csr)
                with open(ext_path, "w") as f:
                    f.write(
                        "basicConstraints = critical, CA:FALSE\n"
                        "keyUsage = critical, digitalSignature, keyEncipherment\n"
                        f"extendedKeyUsage = {EKU[usage]}\n"
                        "subjectKeyIdentifier = hash\n"
                        "authorityKeyIdentifier = keyid\n"
                        f"subjectAltName = {san}\n"
                    )
                subject = "/CN=" + re.sub(r"([/\\])", r"\\\1", first) if len(first) <= 64 else "/"
                self.openssl(
                    "ca", "-batch", "-notext", "-config", "openssl.cnf", "-in", csr_path,
                    "-out", out_path, "-extfile", ext_path, "-days", str(days), "-subj", subject,
                )
                leaf = pem_blocks(open(out_path).read())[0]
            serial = self.serial_of(leaf)
            if key:
                with open(self.key_path(key), "w") as f:
                    f.write(serial)
        return {"chain_pem": self.chain(leaf), "ca_reference": serial}

    def key_path(self, key):
        os.makedirs(self.path("certkeeper-keys"), exist_ok=True)
        return self.path("certkeeper-keys", hashlib.sha256(key.encode()).hexdigest())

    def issued_under(self, key, csr):
        """(serial, PEM) issued earlier under `key` for the same public key, if valid."""
        try:
            serial = open(self.key_path(key)).read().strip()
            leaf = self.certificate_pem(serial)
        except (OSError, IndexError):
            return None
        if ("V", serial) not in self.index():
            return None
        leaf_key = self.openssl("x509", "-noout", "-pubkey", input_bytes=leaf.encode())
        csr_key = self.openssl("req", "-noout", "-pubkey", input_bytes=csr)
        return (serial, leaf) if leaf_key == csr_key else None

    def recorded(self, request):
        key = request.get("idempotency_key")
        if key:
            with self.lock(exclusive=True):
                try:
                    os.remove(self.key_path(key))
                except FileNotFoundError:
                    pass
        return {"ok": True}

    def revoke(self, request):
        reason = request.get("reason", "unspecified")
        if reason not in REASONS:
            raise Refused(f"unknown revocation reason `{reason}`")
        blocks = pem_blocks(str(request.get("certificate_pem", "")))
        if not blocks:
            raise Refused("certificate_pem holds no certificate")
        serial = self.serial_of(blocks[0])
        with self.lock(exclusive=True):
            status = dict((s, st) for st, s in self.index()).get(serial)
            # `openssl ca -revoke` would add an unknown certificate to the
            # database: only this CA's own, byte for byte, are revoked.
            if status is None or pem_der(self.certificate_pem(serial)) != pem_der(blocks[0]):
                raise Refused(f"the certificate with serial {serial} was not issued by this CA")
            if status == "R":
                raise AlreadyRevoked(f"the certificate with serial {serial} is already revoked")
            self.openssl("ca", "-config", "openssl.cnf", "-revoke",
                         os.path.join("newcerts", serial + ".pem"), "-crl_reason", reason)
            self.openssl("ca", "-config", "openssl.cnf", "-gencrl", "-out", "crl.pem")
        return {"ok": True}

    def list_issued(self, request):
        cursor = request.get("cursor") or "0"
        if not cursor.isdigit():
            raise Refused(f"cursor `{cursor}` is not one this program handed out")
        start = int(cursor)
        with self.lock(exclusive=False):
            rows = self.index()
            if start > len(rows):
                raise Refused(f"cursor {start} is past the end of the index")
            page = rows[start:start + self.page_size]
            records = []
            for status, serial in page:
                try:
                    pem = self.certificate_pem(serial)
                except (OSError, IndexError):
                    continue
                records.append({"certificate_pem": pem, "revoked": status == "R",
                                "ca_reference": serial})
        end = start + len(page)
        return {"records": records, "cursor": str(end), "more": end < len(rows)}

    def health(self, _request):
        self.openssl("x509", "-noout", "-checkend", "0", "-in", "ca.pem")
        pkey = ["pkey", "-noout", "-in", "ca.key"]
        if "CA_KEY_PASSPHRASE" in os.environ:
            pkey += ["-passin", "env:CA_KEY_PASSPHRASE"]
        self.openssl(*pkey)
        return {"ok": True}


def pem_blocks(text):
    """The PEM CERTIFICATE blocks in `text`, each ending in a newline."""
    return [m.group(0) + "\n" for m in re.finditer(
        r"-----BEGIN CERTIFICATE-----[A-Za-z0-9+/=\s]+?-----END CERTIFICATE-----", text)]


def pem_der(block):
    body = re.sub(r"-----[A-Z ]+-----|\s", "", block)
    return base64.b64decode(body)


def init(args):
    """Creates a fresh CA directory with a self-signed root."""
    ca_dir = os.path.abspath(args.ca_dir)
    os.umask(0o077)
    os.makedirs(os.path.join(ca_dir, "newcerts"), mode=0o700, exist_ok=False)
    with open(os.path.join(ca_dir, "openssl.cnf"), "w") as f:
        f.write(CONFIG)
    open(os.path.join(ca_dir, "index.txt"), "w").close()
    with open(os.path.join(ca_dir, "serial"), "w") as f:
        # A random start (positive, 16 bytes), so a re-created CA never
        # repeats serials.
        start = bytearray(os.urandom(16))
        start[0] = (start[0] & 0x7F) | 0x10
        f.write(start.hex().upper() + "\n")
    with open(os.path.join(ca_dir, "crlnumber"), "w") as f:
        f.write("1000\n")
    secret = "CA_KEY_PASSPHRASE" in os.environ
    genpkey = ["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
               "-out", "ca.key"]
    if secret:
        genpkey += ["-aes256", "-pass", "env:CA_KEY_PASSPHRASE"]
    req = ["openssl", "req", "-x509", "-new", "-config", "openssl.cnf", "-key", "ca.key",
           "-subj", args.subject, "-days", str(args.days), "-out", "ca.pem"]
    if secret:
        req += ["-passin", "env:CA_KEY_PASSPHRASE"]
    crl = ["openssl", "ca", "-config", "openssl.cnf", "-gencrl", "-out", "crl.pem"]
    if secret:
        crl += ["-passin", "env:CA_KEY_PASSPHRASE"]
    for step in (genpkey, req, crl):
        subprocess.run(step, cwd=ca_dir, check=True, capture_output=True)
    print(f"created a CA in {ca_dir}")


def serve(args):
    """Answers the one request on stdin."""
    try:
        request = json.load(sys.stdin)
    except ValueError as e:
        return error("permanent", f"the request is not JSON: {e}")
    if request.get("version") != PROTOCOL_VERSION:
        return error("permanent", f"protocol version {request.get('version')} is not "
                                  f"supported; this program speaks {PROTOCOL_VERSION}")
    operation = request.get("operation")
    try:
        ca = Ca(args)
        handler = {
            "issue": ca.issue,
            "recorded": ca.recorded,
            "revoke": ca.revoke,
            "list_issued": ca.list_issued,
            "health": ca.health,
        }.get(operation)
        if handler is None:
            # renewal_info, and whatever later versions of Certkeeper ask.
            return answer({"unsupported": True})
        return answer(handler(request))
    except AlreadyRevoked as e:
        return error("permanent", str(e), already_revoked=True)
    except Refused as e:
        return error("permanent", str(e))
    except Unavailable as e:
        return error("transient", str(e))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("init", help="create a CA directory")
    make.add_argument("ca_dir")
    make.add_argument("--subject", default="/CN=Certkeeper example CA")
    make.add_argument("--days", type=int, default=3650)
    run = commands.add_parser("answer", help="answer one Certkeeper request from stdin")
    run.add_argument("--ca-dir", required=True)
    run.add_argument("--allow-domain", action="append", default=[],
                     help="DNS suffix the CA issues for (repeatable)")
    run.add_argument("--allow-ip", action="append", default=[],
                     help="network whose addresses the CA issues for (repeatable)")
    run.add_argument("--allow-wildcards", action="store_true")
    run.add_argument("--max-days", type=int, default=397)
    run.add_argument("--page-size", type=int, default=100)
    args = parser.parse_args()
    if args.command == "init":
        init(args)
    else:
        serve(args)


if __name__ == "__main__":
    main()
