
# Copyright (c) sqs_ingest contributors. PostgreSQL License.

# Where credentials come from: temporary credentials send their session
# token (X-Amz-Security-Token, signed with the request); with the GUCs
# empty, the server's AWS_* environment is used, as the AWS SDKs do.  And
# a signature over an endpoint path that AWS normalises.

use strict;
use warnings;
use lib 't';

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use SqsIngestTest;
use Test::More;

my $TOKEN = 'session-token-for-the-tests';
# the client tool sends the token too
$ENV{SQS_TEST_SESSION_TOKEN} = $TOKEN;
my $emu = start_emulator(session_token => $TOKEN);
my $url   = create_queue('credentials');

### session token from the GUC

my $node = new_node('token', queue_url => $url);
is(send_generated($url, 5, 601), 5, '5 events sent');
my $err = drain_error($node);
like($err, qr/security token|MissingAuthentication|token/i,
	'without the session token the emulator refuses the request');
my ($visible, $inflight) = queue_depth($url);
is($visible + $inflight, 5, 'nothing consumed');

set_gucs($node, { 'sqs_ingest.session_token' => $TOKEN });
my $r = drain($node);
is($r->{inserted}, 5, 'with sqs_ingest.session_token the drain stores all 5');
# (once the library is loaded: before that PostgreSQL keeps a plain
# placeholder, which is why the README asks for shared_preload_libraries)
is($node->safe_psql('postgres', "LOAD 'sqs_ingest'; SHOW sqs_ingest.session_token"),
	'(set)', 'SHOW does not print the token');
$node->stop;

### credentials from the server's environment

my $env_node = new_node('environment', queue_url => $url, credentials => 0);
is(send_generated($url, 4, 602), 4, '4 more events sent');
like(drain_error($env_node), qr/no AWS credentials/,
	'no GUCs and no environment: a clear error');

$env_node->stop;
{
	local $ENV{AWS_ACCESS_KEY_ID}     = $TEST_ACCESS_KEY_ID;
	local $ENV{AWS_SECRET_ACCESS_KEY} = $TEST_SECRET_ACCESS_KEY;
	local $ENV{AWS_SESSION_TOKEN}     = $TOKEN;
	$env_node->start;
}
$r = drain($env_node);
is($r->{inserted}, 4, 'AWS_* of the server environment are used when the GUCs are empty');
($visible, $inflight) = queue_depth($url);
is($visible + $inflight, 0, 'queue empty');

### an endpoint path that the signature normalises

# Requests go to the endpoint's path; AWS's signers (and the emulator's
# second check, AWS's own) drop empty and dot segments and encode each
# segment as written once more, so a signature over the path as sent is
# refused.
set_gucs($env_node, { 'sqs_ingest.endpoint' => $emu->endpoint . '//a//b/./c%20d/' });
is(send_generated($url, 3, 603), 3, '3 more events sent');
$r = drain($env_node);
is($r->{inserted}, 3,
	'an endpoint path with empty and dot segments and an escape is signed as AWS signs it');
($visible, $inflight) = queue_depth($url);
is($visible + $inflight, 0, 'queue empty again');

done_testing();
