#!/bin/sh
# One-off job (compose service temporal-schema): create Temporal's two databases and bring
# their schemas to the version this admin-tools image ships. Safe to run again: an existing
# database or schema is left as it is, and update-schema applies only what is missing.
set -eu
: "${POSTGRES_SEEDS:?}" "${POSTGRES_USER:?}" "${SQL_PASSWORD:?}"
dir=/etc/temporal/schema/postgresql/v12
tool() {
  # The password reaches the tool through SQL_PASSWORD (environment), not its command line.
  temporal-sql-tool --plugin postgres12 --ep "$POSTGRES_SEEDS" -p "${DB_PORT:-5432}" \
    -u "$POSTGRES_USER" "$@"
}
for pair in temporal:temporal temporal_visibility:visibility; do
  database=${pair%%:*}
  schema=${pair##*:}
  tool --db "$database" create-database || echo "$database: exists"
  tool --db "$database" setup-schema -v 0.0 || echo "$database: schema already set up"
  # The versioned/ directory itself: pointed at its parent the tool finds nothing to apply.
  tool --db "$database" update-schema -d "$dir/$schema/versioned"
done
