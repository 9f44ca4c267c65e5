
# Copyright (c) sqs_ingest contributors. PostgreSQL License.

# Known answers of the response decoders, built outside the server as
# frontend code (fuzz/build.sh test): documents that must decode to given
# values and documents that must fail with a given reason, JSON and XML.

use strict;
use warnings;
use lib 't';

use PostgreSQL::Test::Utils;
use SqsIngestTest;
use Test::More;

my $dir = PostgreSQL::Test::Utils::tempdir();
my $root = repo_root();

my ($out, $err) = run_command([ "$root/fuzz/build.sh", $dir, 'test' ]);
ok(-x "$dir/decode_test", 'the known-answer driver builds outside the server')
  or diag($err);

($out, $err) = run_command([ "$dir/decode_test" ]);
note($out);
my @failed = $out =~ /^(not ok .*)$/mg;
ok($out =~ /^1\.\.(\d+)$/m && $1 >= 70, 'every known-answer case ran');
is(scalar @failed, 0, 'every decoder case gives its known answer')
  or diag(join("\n", @failed));
like($out, qr/# \d+ passed, 0 failed/, 'the driver reports no failure');

done_testing();
