# sqs_ingest: PGXS build
MODULE_big = sqs_ingest
OBJS = \
	sqs_ingest.o \
	src/aws_credentials.o \
	src/aws_files.o \
	src/catalog.o \
	src/config.o \
	src/credential_http.o \
	src/drain.o \
	src/json_capture.o \
	src/launcher.o \
	src/mapping/calls.o \
	src/mapping/compile.o \
	src/mapping/convert.o \
	src/mapping/evaluate.o \
	src/mapping/login.o \
	src/mapping/transforms.o \
	src/mask.o \
	src/openpgp.o \
	src/pipeline.o \
	src/queue_grants.o \
	src/record.o \
	src/recovery.o \
	src/redact.o \
	src/runner.o \
	src/secrets.o \
	src/security.o \
	src/sink.o \
	src/sqs_client.o \
	src/sqs_decode.o \
	src/sqs_decode_xml.o \
	src/standby.o \
	src/subxact.o \
	src/stats.o \
	src/wait_events.o \
	src/worker.o

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

PG_CPPFLAGS = -I$(srcdir)/src $(shell pkg-config --cflags libxml-2.0)
# the version the code shows (src/version.h): default_version of the control file
EXTVERSION = $(shell sed -n "s/^default_version = '\(.*\)'/\1/p" $(srcdir)/sqs_ingest.control)
PG_CPPFLAGS += -DSQS_INGEST_VERSION='"$(EXTVERSION)"'
PG_CFLAGS = -Wall -Wextra -Werror -Wno-unused-parameter -Wno-missing-field-initializers
SHLIB_LINK = -lcurl -lcrypto $(shell pkg-config --libs libxml-2.0)

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# every module sees the shared structs: rebuild all when a header changes
$(OBJS): $(wildcard $(srcdir)/src/*.h) $(wildcard $(srcdir)/src/mapping/*.h)
