# sqs_ingest: PGXS build
MODULE_big = sqs_ingest
OBJS = \
	sqs_ingest.o \
	src/config.o \
	src/secrets.o \
	src/subxact.o \
	src/ingest/drain.o \
	src/ingest/launcher.o \
	src/ingest/flow.o \
	src/ingest/runner.o \
	src/ingest/standby.o \
	src/ingest/stats.o \
	src/ingest/worker.o \
	src/aws/aws_credentials.o \
	src/aws/aws_files.o \
	src/aws/aws_xml.o \
	src/aws/credential_http.o \
	src/aws/redact.o \
	src/aws/sigv4.o \
	src/aws/sqs_client.o \
	src/aws/sqs_decode.o \
	src/aws/sqs_decode_xml.o \
	src/aws/sqs_wire.o \
	src/aws/sts_decode.o \
	src/aws/transport.o \
	src/aws/wait_events.o \
	src/store/catalog.o \
	src/store/queue_grants.o \
	src/store/recovery_log.o \
	src/store/security.o \
	src/store/sink.o \
	src/mapping/calls.o \
	src/mapping/compile.o \
	src/mapping/convert.o \
	src/mapping/evaluate.o \
	src/mapping/json_capture.o \
	src/mapping/login.o \
	src/mapping/mask.o \
	src/mapping/openpgp.o \
	src/mapping/openpgp_decrypt.o \
	src/mapping/codecs.o \
	src/mapping/recovery.o \
	src/mapping/transforms.o

EXTENSION = sqs_ingest
DATA = sqs_ingest--1.0.sql sqs_ingest--1.0--1.1.sql sqs_ingest--1.1--1.2.sql
PGFILEDESC = "sqs_ingest - ingest JSON messages from Amazon SQS into tables"

REGRESS = mask app_version mapping mapping_language mapping_transforms pipelines privileges secrets recovery
REGRESS_OPTS = --load-extension=pgcrypto
TAP_TESTS = 1
# The slowest TAP files first, so that a parallel run (prove -j, see
# test.sh) does not end with one of them running alone; then the others in
# order. PROVE_TESTS on the command line picks files as usual.
TAP_SLOW = t/706_hostile_query.pl t/704_hostile_worker.pl t/702_hostile_delete.pl \
	t/403_drain_backlog.pl t/701_hostile_receive.pl t/602_credential_refresh.pl
PROVE_TESTS = $(wildcard $(TAP_SLOW)) $(filter-out $(TAP_SLOW),$(sort $(wildcard t/*.pl)))

# src/ holds what every layer reads, each folder one layer (README.md,
# "Layout"); modules include each other's headers by file name alone.
SQS_INGEST_SRC_DIRS = src src/ingest src/aws src/store src/mapping
PG_CPPFLAGS = $(addprefix -I$(srcdir)/,$(SQS_INGEST_SRC_DIRS)) $(shell pkg-config --cflags libxml-2.0)
# the version the code shows (src/version.h): default_version of the control file
EXTVERSION = $(shell sed -n "s/^default_version = '\(.*\)'/\1/p" $(srcdir)/sqs_ingest.control)
PG_CPPFLAGS += -DSQS_INGEST_VERSION='"$(EXTVERSION)"'
PG_CFLAGS = -Wall -Wextra -Werror -Wno-unused-parameter -Wno-missing-field-initializers
SHLIB_LINK = -lcurl -lcrypto $(shell pkg-config --libs libxml-2.0)

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# every module sees the shared structs: rebuild all when a header changes
$(OBJS): $(foreach dir,$(SQS_INGEST_SRC_DIRS),$(wildcard $(srcdir)/$(dir)/*.h))
