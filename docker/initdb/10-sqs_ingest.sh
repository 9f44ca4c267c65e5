#!/bin/bash
# Configure sqs_ingest from the container's environment, then create the
# extension and the target table in the worker's database. Runs once, when
# the data directory is initialised. Secret values may be given as files
# (SQS_INGEST_*_FILE), as Docker secrets are.
set -euo pipefail

read_setting() {
	local name=$1 file_var="${1}_FILE"
	if [ -n "${!file_var:-}" ]; then
		cat "${!file_var}"
	else
		printf '%s' "${!name:-}"
	fi
}

quote() { printf "'%s'" "${1//\'/\'\'}"; }

{
	echo "sqs_ingest.database = $(quote "${SQS_INGEST_DATABASE:-$POSTGRES_DB}")"
	echo "sqs_ingest.workers = ${SQS_INGEST_WORKERS:-1}"
	echo "sqs_ingest.queue_url = $(quote "${SQS_INGEST_QUEUE_URL:-}")"
	echo "sqs_ingest.endpoint = $(quote "${SQS_INGEST_ENDPOINT:-}")"
	echo "sqs_ingest.region = $(quote "${SQS_INGEST_REGION:-us-east-1}")"
	echo "sqs_ingest.access_key_id = $(quote "$(read_setting SQS_INGEST_ACCESS_KEY_ID)")"
	echo "sqs_ingest.secret_access_key = $(quote "$(read_setting SQS_INGEST_SECRET_ACCESS_KEY)")"
	echo "sqs_ingest.mask_key = $(quote "$(read_setting SQS_INGEST_MASK_KEY)")"
} >>"$PGDATA/postgresql.conf"
chmod 600 "$PGDATA/postgresql.conf"

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" \
	--dbname "${SQS_INGEST_DATABASE:-$POSTGRES_DB}" \
	-c 'CREATE EXTENSION IF NOT EXISTS sqs_ingest' \
	-f /usr/share/sqs_ingest/user_logins.sql
