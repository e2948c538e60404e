#!/bin/sh
# conf/gen-test-certs.sh [DIR] — throwaway TLS material for tests and local trials.
#
# Makes in DIR (default ./tests-tls), with the openssl command line:
#   ca.crt, ca.key          a self-signed CA
#   server.crt, server.key  signed by that CA; SAN DNS:localhost, IP:127.0.0.1, IP:::1
#   client.crt, client.key  signed by that CA; extendedKeyUsage clientAuth
# All keys are EC P-256, all certificates valid 365 days. Existing files are replaced, so
# running it twice gives a fresh, consistent set. Quiet on success; exits non-zero on failure.
# Never use these outside tests: the CA key sits next to the certificates.
set -eu

dir=${1:-./tests-tls}
days=365
umask 077
mkdir -p "$dir"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/conveyor-certs.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM

fail() {
    echo "gen-test-certs: $*" >&2
    exit 1
}

command -v openssl >/dev/null 2>&1 || fail "openssl not found"

run() {
    # Keep openssl quiet, but show what it said when it fails.
    if ! "$@" >"$tmp/out" 2>&1; then
        cat "$tmp/out" >&2
        fail "failed: $*"
    fi
}

newkey() {
    run openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"
}

# CA (own minimal config, so the system openssl.cnf cannot add or clash with extensions)
newkey "$tmp/ca.key"
cat >"$tmp/ca.cnf" <<EOF
[req]
distinguished_name = dn
x509_extensions = v3_ca
prompt = no
[dn]
O = Conveyor Test
CN = Conveyor Test CA
[v3_ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
EOF
run openssl req -new -x509 -config "$tmp/ca.cnf" -key "$tmp/ca.key" -sha256 -days "$days" \
    -out "$tmp/ca.crt"

# leaf NAME CN EXTFILE
leaf() {
    newkey "$tmp/$1.key"
    run openssl req -new -key "$tmp/$1.key" -subj "/O=Conveyor Test/CN=$2" -out "$tmp/$1.csr"
    run openssl x509 -req -in "$tmp/$1.csr" -CA "$tmp/ca.crt" -CAkey "$tmp/ca.key" \
        -CAcreateserial -CAserial "$tmp/ca.srl" -sha256 -days "$days" \
        -extfile "$3" -out "$tmp/$1.crt"
}

cat >"$tmp/server.ext" <<EOF
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1, IP:::1
EOF
leaf server localhost "$tmp/server.ext"

cat >"$tmp/client.ext" <<EOF
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth
EOF
leaf client "Conveyor Test Client" "$tmp/client.ext"

run openssl verify -CAfile "$tmp/ca.crt" "$tmp/server.crt" "$tmp/client.crt"

# Move into place only once everything worked; keys stay 0600, certificates 0644.
for f in ca server client; do
    chmod 644 "$tmp/$f.crt"
    chmod 600 "$tmp/$f.key"
    mv -f "$tmp/$f.crt" "$dir/$f.crt"
    mv -f "$tmp/$f.key" "$dir/$f.key"
done
