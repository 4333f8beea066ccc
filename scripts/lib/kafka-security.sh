# shellcheck shell=bash
# The SASL_SSL mode of scripts/kafka-local (sourced by it): with KAFKA_SASL_SSL_PORT set, the
# broker gains a SASL_SSL listener (SCRAM-SHA-512) on 127.0.0.1:$KAFKA_SASL_SSL_PORT, an SSL
# listener that requires a client certificate (mTLS, ssl.client.auth=required) on
# 127.0.0.1:$KAFKA_SSL_PORT (default: the SASL_SSL port + 1), and the StandardAuthorizer.
# The PLAINTEXT listener's principal (ANONYMOUS) stays a super user, so tests and tools on it
# are unaffected. Into $KAFKA_SECURITY_DIR, once:
#   ca.pem / ca.key          a throw-away CA (openssl)
#   broker.p12               the broker's key and certificate (SAN IP:127.0.0.1), signed by it
#   client.pem / client.key  a client certificate (CN=scoring) signed by it, for mTLS: the
#                            SSL listener maps the CN to the principal, so User:scoring
#   client.json              bootstrap, CA file, mechanism, users and passwords, ACL prefixes,
#                            and the mTLS listener with the client certificate and key
# and into the cluster's metadata, once per data dir: SCRAM-SHA-512 users made with Kafka's
# own tools (StorageTool format --add-scram; ConfigCommand for a data dir formatted without
# them), and ACLs (AclCommand), a principal per role:
#   scoring         the worker: READ secure-in-*, WRITE secure-out-* and secure-dlq-*,
#                   READ group secure-*, WRITE transactional id secure-*
#   scoring-noout   the same without WRITE on secure-out-* (a misconfigured deployment)
#   publisher       WRITE secure-in-*, WRITE transactional id scoring-worker-publish-*
#                   (publish writes in one transaction)
#   reader          READ secure-out-*, group secure-read-*

KAFKA_SASL_SSL_PORT="${KAFKA_SASL_SSL_PORT:-}"
KAFKA_SSL_PORT="${KAFKA_SSL_PORT:-${KAFKA_SASL_SSL_PORT:+$((KAFKA_SASL_SSL_PORT + 1))}}"
KAFKA_SECURITY_DIR="${KAFKA_SECURITY_DIR:-$KAFKA_CACHE_DIR/security}"
SECURITY_USERS=(scoring scoring-noout publisher reader)

security_enabled() { [[ -n "$KAFKA_SASL_SSL_PORT" ]]; }

# Prints the stored password of user $1, making one when there is none.
security_password() {
  local file="$KAFKA_SECURITY_DIR/passwords"
  touch "$file"
  chmod 600 "$file"
  if ! grep -q "^$1=" "$file"; then
    echo "$1=$(head -c 18 /dev/urandom | base64 | tr '+/' 'xy')" >>"$file"
  fi
  sed -n "s/^$1=//p" "$file" | head -n 1
}

make_certificates() {
  local dir="$KAFKA_SECURITY_DIR"
  [[ -s "$dir/broker.p12" && -s "$dir/ca.pem" ]] && { make_client_certificate; return 0; }
  command -v openssl >/dev/null 2>&1 || die "openssl not found: apt-get install openssl"
  mkdir -p "$dir"
  chmod 700 "$dir"
  local store_pw
  store_pw="$(security_password .keystore)"
  {
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=kafka-local test CA" \
      -keyout "$dir/ca.key" -out "$dir/ca.pem"
    openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
      -keyout "$dir/broker.key" -out "$dir/broker.csr"
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n' \
      >"$dir/broker.ext"
    openssl x509 -req -in "$dir/broker.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" \
      -CAcreateserial -days 3650 -extfile "$dir/broker.ext" -out "$dir/broker.pem"
    openssl pkcs12 -export -in "$dir/broker.pem" -inkey "$dir/broker.key" -name broker \
      -passout "pass:$store_pw" -out "$dir/broker.p12.tmp"
  } >>"$LOG_FILE" 2>&1 || die "making the test CA and broker certificate failed (log: $LOG_FILE)"
  mv -f "$dir/broker.p12.tmp" "$dir/broker.p12"
  say "made a test CA and broker certificate in $dir"
  make_client_certificate
}

# The mTLS client's key and certificate (CN=scoring, clientAuth), signed by the test CA.
make_client_certificate() {
  local dir="$KAFKA_SECURITY_DIR"
  [[ -s "$dir/client.pem" && -s "$dir/client.key" ]] && return 0
  {
    openssl req -newkey rsa:2048 -nodes -subj "/CN=scoring" \
      -keyout "$dir/client.key" -out "$dir/client.csr"
    printf 'extendedKeyUsage=clientAuth\n' >"$dir/client.ext"
    openssl x509 -req -in "$dir/client.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" \
      -CAcreateserial -days 3650 -extfile "$dir/client.ext" -out "$dir/client.pem.tmp"
  } >>"$LOG_FILE" 2>&1 || die "making the mTLS client certificate failed (log: $LOG_FILE)"
  chmod 600 "$dir/client.key"
  mv -f "$dir/client.pem.tmp" "$dir/client.pem"
  say "made an mTLS client certificate (CN=scoring) in $dir"
}

security_properties() {
  security_enabled || return 0
  cat <<PROPS

# SASL_SSL mode (scripts/lib/kafka-security.sh)
sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
ssl.keystore.type=PKCS12
ssl.keystore.location=$KAFKA_SECURITY_DIR/broker.p12
ssl.keystore.password=$(security_password .keystore)
listener.name.ssl.ssl.client.auth=required
listener.name.ssl.ssl.truststore.type=PEM
listener.name.ssl.ssl.truststore.location=$KAFKA_SECURITY_DIR/ca.pem
ssl.principal.mapping.rules=RULE:^CN=([^,]+).*\$/\$1/,DEFAULT
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=User:ANONYMOUS
PROPS
}

# AclCommand --add: every --allow-principal gets every --operation on every resource
# (prefixed), so one JVM start makes a whole row of the table in the header.
acl() {
  run_java org.apache.kafka.tools.AclCommand --bootstrap-server "$BOOTSTRAP" --add --force \
    --resource-pattern-type prefixed "$@" >/dev/null || die "AclCommand $* failed"
}

make_acls() {
  local workers=(--allow-principal User:scoring --allow-principal User:scoring-noout)
  acl "${workers[@]}" --operation Read --operation Describe --topic secure-in- --group secure-
  acl "${workers[@]}" --operation Write --operation Describe --topic secure-dlq- \
    --transactional-id secure-
  acl "${workers[@]}" --allow-principal User:reader --operation Describe --topic secure-out-
  acl --allow-principal User:scoring --operation Write --topic secure-out-
  acl --allow-principal User:publisher --operation Write --operation Describe --topic secure-in-
  acl --allow-principal User:reader --operation Read --topic secure-out- --group secure-read-
  publisher_transaction_acl
}

# `publish` writes in one transaction (issue 28): its transactional ids are
# scoring-worker-publish-<uuid>. A separate stamp gives it to data dirs provisioned before.
publisher_transaction_acl() {
  acl --allow-principal User:publisher --operation Write --operation Describe \
    --transactional-id scoring-worker-publish-
  touch "$KAFKA_DATA_DIR/.security-publish-transactions"
}

# The SCRAM users as StorageTool format arguments (--add-scram, KRaft): written into the
# cluster metadata when the data dir is formatted, with no JVM start per user. Sets the
# array SCRAM_FORMAT_ARGS (empty without SASL_SSL mode).
scram_format_args() {
  SCRAM_FORMAT_ARGS=()
  security_enabled || return 0
  local user
  for user in "${SECURITY_USERS[@]}"; do
    SCRAM_FORMAT_ARGS+=(--add-scram
      "SCRAM-SHA-512=[name=$user,iterations=4096,password=$(security_password "$user")]")
  done
}

# After a format with scram_format_args: the users exist (provision_security skips them).
scram_formatted() { security_enabled && touch "$KAFKA_DATA_DIR/.scram-users"; }

# Users (unless made at format) and ACLs live in the cluster's metadata: once per data dir.
provision_security() {
  security_enabled || return 0
  local stamp="$KAFKA_DATA_DIR/.security-provisioned" started user
  if [[ -f "$stamp" ]]; then
    [[ -f "$KAFKA_DATA_DIR/.security-publish-transactions" ]] || publisher_transaction_acl
    write_client_json
    return 0
  fi
  started="$(now_ms)"
  # a data dir formatted without them (before this mode was on): Kafka's ConfigCommand
  [[ -f "$KAFKA_DATA_DIR/.scram-users" ]] || for user in "${SECURITY_USERS[@]}"; do
    run_java kafka.admin.ConfigCommand --bootstrap-server "$BOOTSTRAP" --alter \
      --add-config "SCRAM-SHA-512=[iterations=4096,password=$(security_password "$user")]" \
      --entity-type users --entity-name "$user" >/dev/null ||
      die "creating SCRAM user $user failed"
  done
  make_acls
  touch "$stamp"
  write_client_json
  say "SCRAM users and ACLs for ${SECURITY_USERS[*]} made in $(elapsed "$started")"
}

write_client_json() {
  local user sep="" users=""
  for user in "${SECURITY_USERS[@]}"; do
    users+="$sep\"$user\": \"$(security_password "$user")\""
    sep=", "
  done
  cat >"$KAFKA_SECURITY_DIR/client.json" <<JSON
{"bootstrap": "$KAFKA_HOST:$KAFKA_SASL_SSL_PORT", "ca": "$KAFKA_SECURITY_DIR/ca.pem",
 "security_protocol": "SASL_SSL", "mechanism": "SCRAM-SHA-512", "users": {$users},
 "prefixes": {"input": "secure-in-", "output": "secure-out-", "dlq": "secure-dlq-",
              "group": "secure-", "reader_group": "secure-read-"},
 "mtls": {"bootstrap": "$KAFKA_HOST:$KAFKA_SSL_PORT", "security_protocol": "SSL",
          "certificate": "$KAFKA_SECURITY_DIR/client.pem", "key": "$KAFKA_SECURITY_DIR/client.key",
          "principal": "scoring"}}
JSON
  chmod 600 "$KAFKA_SECURITY_DIR/client.json"
}
