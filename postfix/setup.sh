#!/bin/sh
# email2ticket on Postfix and PostgreSQL: every set-up step of postfix/README.md, in order.
#
# Run it as root from the checkout (or read it and type the steps yourself: each is commented):
#
#     HELPDESK_ADDRESS=helpdesk@example.com sh postfix/setup.sh
#
# Written and tested for Debian 12 (Postfix 3.7, PostgreSQL 15, Python 3.11); the MTA tests run this very
# file against a private Postfix and PostgreSQL with only the paths and names below changed
# (tests/mta/test_postfix_setup.py). It may be run again: it creates what is missing, and never
# overwrites the configuration file, the database or the key.
#
# Everything an admin would change is a variable below, and each may be given in the environment.
set -eu

# --- What you change -----------------------------------------------------------------------------
# The help desk's address(es), space-separated: mail to them becomes tickets. Its domain must reach this
# host (MX record); it is made a local or relay destination below if Postfix does not take mail for it yet.
HELPDESK_ADDRESS=${HELPDESK_ADDRESS:?set HELPDESK_ADDRESS, e.g. HELPDESK_ADDRESS=helpdesk@example.com}
# How Postfix hands the mail over (postfix/README.md, section 6): "pipe" (a process per message),
# "thin" (the pipe as a thin client of the resident service) or "lmtp" (LMTP to the resident service).
WIRING=${WIRING:-pipe}
# "Help Desk <helpdesk@example.com>" turns acknowledgements on (README.md, "Notifications"); empty: off.
NOTIFY_FROM=${NOTIFY_FROM:-}
# The unprivileged user that runs email2ticket-deliver (Postfix's pipe user=) and the service.
E2T_USER=${E2T_USER:-email2ticket}
# Where things go: the virtual environment, the configuration, the state (notification key), the log.
E2T_VENV=${E2T_VENV:-/opt/email2ticket}
E2T_ETC=${E2T_ETC:-/etc/email2ticket}
E2T_STATE=${E2T_STATE:-/var/lib/email2ticket}
E2T_LOG=${E2T_LOG:-/var/log/email2ticket}
# A directory on root's PATH for an `email2ticket` link (the admin command without its full path); empty: none.
E2T_BIN_LINK_DIR=${E2T_BIN_LINK_DIR-/usr/local/bin}
# What to install: this checkout (the directory above this script) or a built wheel.
HERE=$(cd "$(dirname "$0")" && pwd)
E2T_SOURCE=${E2T_SOURCE:-$HERE/..}
# PostgreSQL: the database and the role email2ticket logs in as (created here), where the server listens,
# and the operating-system account that administers it (Debian: postgres, which psql runs as).
DB_NAME=${DB_NAME:-helpdesk}
DB_USER=${DB_USER:-email2ticket}
DB_HOST=${DB_HOST:-127.0.0.1}
DB_PORT=${DB_PORT:-5432}
PG_OS_USER=${PG_OS_USER:-postgres}
# Or any database URL instead (then no role or database is created): sqlite:////var/lib/email2ticket/desk.db
DATABASE_URL=${DATABASE_URL:-}
# Postfix's configuration directory, and its log file for a system without syslog (no /dev/log).
POSTFIX_DIR=${POSTFIX_DIR:-/etc/postfix}
POSTFIX_MAILLOG=${POSTFIX_MAILLOG:-/var/log/postfix.log}
# With the resident service: where systemd units go.
SYSTEMD_DIR=${SYSTEMD_DIR:-/etc/systemd/system}
# --------------------------------------------------------------------------------------------------

CONFIG=$E2T_ETC/config.toml
EXAMPLES=$HERE/../examples
say() { printf '==> %s\n' "$*"; }
fail() { printf 'setup.sh: error: %s\n' "$*" >&2; exit 1; }
as_user() { runuser -u "$E2T_USER" -- "$@"; }
cd /  # the commands below run as other users, who may not be allowed into the current directory
umask 022  # the install must be readable by the pipe user; private files get their modes explicitly

case $WIRING in pipe | thin | lmtp) ;; *) fail "WIRING must be pipe, thin or lmtp (is $WIRING)" ;; esac
[ "$(id -u)" -eq 0 ] || fail "run this as root"
command -v postconf >/dev/null || fail "postconf not found: install Postfix first (apt-get install postfix)"

# 1. The pipe user: a system account with no home and no login.
if ! id -u "$E2T_USER" >/dev/null 2>&1; then
    say "creating system user $E2T_USER"
    useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$E2T_USER"
fi

# 2. Install: a virtual environment of the system Python under a world-readable directory, with a copy of
#    the package (not an editable install: the pipe user must read it, and it must not follow a checkout).
say "installing email2ticket into $E2T_VENV"
[ -x "$E2T_VENV/bin/python" ] || /usr/bin/python3 -m venv "$E2T_VENV"
"$E2T_VENV/bin/pip" install --quiet --disable-pip-version-check "$E2T_SOURCE"
as_user "$E2T_VENV/bin/email2ticket-deliver" --help >/dev/null || fail "$E2T_USER cannot run $E2T_VENV"
# The documentation beside it (the systemd unit's Documentation= names it).
install -d -m 0755 "$E2T_VENV/share/doc/email2ticket/postfix"
install -m 0644 "$HERE/../README.md" "$E2T_VENV/share/doc/email2ticket/README.md"
install -m 0644 "$HERE/README.md" "$E2T_VENV/share/doc/email2ticket/postfix/README.md"
# The admin command on root's PATH (every other command below and in the guide names its full path).
if [ -n "$E2T_BIN_LINK_DIR" ]; then
    ln -sf "$E2T_VENV/bin/email2ticket" "$E2T_BIN_LINK_DIR/email2ticket"
fi

# 3. Directories the pipe user writes: the state (the notification key, a SQLite database) and the log.
install -d -o "$E2T_USER" -g "$E2T_USER" -m 0750 "$E2T_STATE" "$E2T_LOG"

# 4. The PostgreSQL role and database, owned by that role (email2ticket init then creates the tables).
if [ -z "$DATABASE_URL" ] && [ -e "$CONFIG" ]; then
    say "$CONFIG exists: keeping its database_url"
elif [ -z "$DATABASE_URL" ]; then
    DB_PASSWORD=${DB_PASSWORD:-$(head -c 18 /dev/urandom | base64 | tr '+/' '-_')}
    say "creating PostgreSQL role $DB_USER and database $DB_NAME"
    runuser -u "$PG_OS_USER" -- psql --quiet --no-psqlrc -v ON_ERROR_STOP=1 \
        -v role="$DB_USER" -v password="$DB_PASSWORD" -v db="$DB_NAME" <<'SQL'
SELECT format('CREATE ROLE %I LOGIN', :'role') WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'role')
\gexec
SELECT format('ALTER ROLE %I LOGIN PASSWORD %L', :'role', :'password')
\gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'role')
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db')
\gexec
SQL
    DATABASE_URL="postgresql+psycopg://$DB_USER:$DB_PASSWORD@$DB_HOST:$DB_PORT/$DB_NAME"
fi

# 5. The configuration: examples/config.toml with the keys below set; readable by the pipe user only
#    (it holds the database password). An existing file is left alone.
set_key() {  # set_key KEY VALUE: the first commented-out line `# KEY = ...` becomes `KEY = VALUE`
    grep -q "^# \{0,1\}$1 = " "$CONFIG.new" || fail "examples/config.toml has no line for $1"
    sed -i "0,/^# \{0,1\}$1 = .*/s||$1 = $(printf '%s' "$2" | sed 's/[&|\\]/\\&/g')|" "$CONFIG.new"
}
if [ ! -e "$CONFIG" ]; then
    say "writing $CONFIG"
    install -d -m 0755 "$E2T_ETC"
    install -m 0640 -g "$E2T_USER" "$EXAMPLES/config.toml" "$CONFIG.new"
    set_key database_url "\"$DATABASE_URL\""
    set_key file "\"$E2T_LOG/deliver.log\""  # [logging]: syslog when there is one (/dev/log), else this file
    set_key key_file "\"$E2T_STATE/notification-keys\""  # [notifications]: the HMAC key, the pipe user's own
    [ -z "$NOTIFY_FROM" ] || set_key from_address "\"$NOTIFY_FROM\""
    QUEUE_DIR=$(postconf -h queue_directory)
    case $WIRING in  # [service]
    thin) set_key socket '"/run/email2ticket/deliver.sock"' ;;
    lmtp)
        set_key lmtp "\"unix:$QUEUE_DIR/email2ticket/lmtp.sock\""
        set_key socket_group "\"$(id -gn "$(postconf -h mail_owner)")\""  # Postfix's lmtp(8) connects
        ;;
    esac
    mv "$CONFIG.new" "$CONFIG"
fi

# 6. The schema and the notification key, made by the pipe user so that the key is its own (mode 0600).
say "email2ticket init"
as_user "$E2T_VENV/bin/email2ticket" --config "$CONFIG" init

# 7. A dry run as the pipe user: it can run the command, read the configuration and reach the database.
as_user "$E2T_VENV/bin/email2ticket-deliver" --config "$CONFIG" --dry-run --json <"$EXAMPLES/new-ticket.eml" \
    >/dev/null || fail "the dry run as $E2T_USER failed (its first line on stderr says why)"

# 8. Postfix, master.cf: the service of master.cf.snippet (or service.snippet), with this installation's paths.
PIPE="pipe flags=Rq user=$E2T_USER null_sender="
ENVELOPE='--sender ${sender} --recipient ${original_recipient} --queue-id ${queue_id}'
say "configuring Postfix in $POSTFIX_DIR"
case $WIRING in
pipe)
    postconf -M "email2ticket/unix=email2ticket unix - n n - 10 $PIPE \
argv=$E2T_VENV/bin/email2ticket-deliver --config $CONFIG $ENVELOPE"
    TRANSPORT=email2ticket:
    ;;
thin)
    postconf -M "email2ticket/unix=email2ticket unix - n n - 20 $PIPE \
argv=$E2T_VENV/bin/python -IS $E2T_VENV/bin/email2ticket-deliver --config $CONFIG \
--socket /run/email2ticket/deliver.sock --fallback standalone $ENVELOPE"
    TRANSPORT=email2ticket:
    ;;
lmtp)
    postconf -M "email2ticket-lmtp/unix=email2ticket-lmtp unix - - n - 20 lmtp"
    postconf -e email2ticket-lmtp_destination_recipient_limit=1 email2ticket-lmtp_destination_concurrency_limit=8
    TRANSPORT=email2ticket-lmtp:unix:email2ticket/lmtp.sock  # relative to the queue directory
    ;;
esac

# 9. main.cf: the settings of main.cf.snippet with postconf -e, never by appending the file (a second
#    definition of a parameter makes every Postfix command warn, and would lower Debian's
#    mailbox_size_limit = 0, which means no limit). After master.cf: a setting for a service that does
#    not exist yet makes postconf warn too.
TABLE="hash:$POSTFIX_DIR/transport"
add_to_list() {  # add_to_list PARAMETER VALUE: append VALUE to a list parameter unless it is there already
    current=$(postconf -h "$1")
    case $current in *'${{'*) current=$(postconf -hx "$1") ;; esac  # a default that depends on another
    case " $(printf '%s' "$current" | tr ',' ' ') " in *" $2 "*) return 0 ;; esac
    postconf -e "$1 = ${current:+$current, }$2"
}
grep -v '^[[:space:]]*#' "$HERE/main.cf.snippet" | grep '=' | while IFS= read -r setting; do
    name=$(printf '%s' "${setting%%=*}" | tr -d ' ')
    value=$(printf '%s' "${setting#*=}" | sed 's/^ *//')
    case $name in
    transport_maps) add_to_list transport_maps "$TABLE" ;;
    *_destination_recipient_limit) [ "$WIRING" = lmtp ] || postconf -e "$name = $value" ;;  # the pipe's
    message_size_limit | mailbox_size_limit | virtual_mailbox_limit)  # only ever raised: 0 (no limit) stays
        current=$(postconf -h "$name")
        if [ "$current" != 0 ] && [ "$current" -lt "$value" ]; then postconf -e "$name = $value"; fi
        ;;
    *) postconf -e "$name = $value" ;;
    esac
done
# Without syslog (no /dev/log: Debian 12 installs no rsyslog) Postfix logs nowhere unless told a file.
if [ ! -S /dev/log ] && [ -z "$(postconf -h maillog_file)" ]; then
    postconf -e "maillog_file = $POSTFIX_MAILLOG"
fi

# 10. The transport table routes each help-desk address to that service; Postfix must also accept the
#     addresses: in a local domain (mydestination) through local_recipient_maps, else as a relay domain.
touch "$POSTFIX_DIR/transport"
for address in $HELPDESK_ADDRESS; do
    if grep -q "^$address[[:space:]]" "$POSTFIX_DIR/transport"; then
        sed -i "s|^$address[[:space:]].*|$address    $TRANSPORT|" "$POSTFIX_DIR/transport"
    else
        printf '%s    %s\n' "$address" "$TRANSPORT" >>"$POSTFIX_DIR/transport"
    fi
    domain=$(printf '%s' "${address#*@}" | tr 'A-Z' 'a-z')
    destinations=" $(postconf -hx mydestination virtual_alias_domains virtual_mailbox_domains relay_domains |
        tr ',\n' '  ' | tr 'A-Z' 'a-z') "
    local=" $(postconf -hx mydestination | tr ',' ' ' | tr 'A-Z' 'a-z') "
    case $local in
    *" $domain "*)
        # (unless it is set empty on purpose: then Postfix accepts any local recipient)
        postconf -n | grep -qx 'local_recipient_maps =' || add_to_list local_recipient_maps "$TABLE"
        ;;
    *)
        case $destinations in *" $domain "*) ;; *)
            add_to_list relay_domains "$domain"
            add_to_list relay_recipient_maps "$TABLE"
            ;;
        esac
        ;;
    esac
done
postmap "$TABLE"

# 11. With the resident service: its unit, run as the pipe user with Postfix's group for the LMTP socket.
if [ "$WIRING" != pipe ]; then
    POSTFIX_GROUP=$(id -gn "$(postconf -h mail_owner)")
    QUEUE_DIR=$(postconf -h queue_directory)
    sed -e "s|/opt/email2ticket|$E2T_VENV|g" -e "s|/etc/email2ticket/config.toml|$CONFIG|g" \
        -e "s|^User=email2ticket|User=$E2T_USER|" -e "s|^Group=email2ticket|Group=$E2T_USER|" \
        -e "s|^SupplementaryGroups=postfix|SupplementaryGroups=$POSTFIX_GROUP|" \
        -e "s|-o email2ticket -g postfix|-o $E2T_USER -g $POSTFIX_GROUP|" -e "s|/var/spool/postfix|$QUEUE_DIR|g" \
        "$HERE/email2ticket.service" >"$SYSTEMD_DIR/email2ticket.service"
    install -d -o "$E2T_USER" -g "$POSTFIX_GROUP" -m 0750 "$QUEUE_DIR/email2ticket"
    if [ -d /run/systemd/system ]; then
        systemctl daemon-reload
        systemctl enable email2ticket
        systemctl restart email2ticket
    else
        say "no systemd here: start the service by hand (postfix/README.md, section 6), as root:"
        printf '    setpriv --reuid=%s --regid=%s --groups=%s --reset-env %s --config %s serve\n' \
            "$E2T_USER" "$E2T_USER" "$POSTFIX_GROUP" "$E2T_VENV/bin/email2ticket" "$CONFIG"
    fi
fi

# 12. Check and load the Postfix configuration.
postfix check
if postfix status >/dev/null 2>&1; then postfix reload; else say "Postfix is not running: postfix start"; fi

# 13. email2ticket doctor: every check OK, or a FAIL with its fix (the exit status of this script).
say "email2ticket doctor"
"$E2T_VENV/bin/email2ticket" --config "$CONFIG" doctor --user "$E2T_USER" --postfix-config "$POSTFIX_DIR"
