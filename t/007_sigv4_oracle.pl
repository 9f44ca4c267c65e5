
# Copyright (c) sqs_ingest contributors. PostgreSQL License.

# The harness's signature check has two halves (test/sigv4.js verify()): the
# project's own reading of SigV4, then AWS's signer (@smithy/signature-v4)
# re-signing the request. This file shows the second half works: AWS's
# published SigV4 test vectors for POST requests pass the whole check, and a
# request signed by a wrong reading that the first half accepts is refused,
# by verify() itself and by the emulator in front of SQS. No cluster needed.

use strict;
use warnings;
use lib 't';

use IPC::Run;
use JSON::PP;
use PostgreSQL::Test::Utils;
use SqsIngestTest;
use Test::More;

my $emu = start_emulator();

# The program gets the emulator's endpoint and prints one JSON object per
# case: {name, ok, code, message} from verify(), or {name, status, body}
# from the emulator.
my $program = <<'JS';
'use strict';
const http = require('http');
const path = require('path');
const testDir = path.join(process.argv[2], 'test');
const sigv4 = require(path.join(testDir, 'sigv4'));
const { SignatureV4 } = require(require.resolve('@smithy/signature-v4', { paths: [testDir] }));

const emulator = process.argv[3];
const out = (doc) => process.stdout.write(JSON.stringify(doc) + '\n');

// AWS's SigV4 test suite (aws-sig-v4-test-suite, as the AWS documentation
// publishes it; smithy-typescript keeps the same cases in
// packages/signature-v4/src/suite.fixture.ts, which its npm package does not
// ship): every POST case. The query strings are the fixture's parameters as
// sent over the wire.
const AUTH = 'AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=';
const TOKEN = 'AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA==';
const vectors = [
  ['post-header-key-case', '/', [], '',
    'host;x-amz-date, Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b'],
  ['post-header-key-sort', '/', ['My-Header1', 'value1'], '',
    'host;my-header1;x-amz-date, Signature=c5410059b04c1ee005303aed430f6e6645f61f4dc9e1461ec8f8916fdf18852c'],
  ['post-header-value-case', '/', ['My-Header1', 'VALUE1'], '',
    'host;my-header1;x-amz-date, Signature=cdbc9802e29d2942e5e10b5bccfdd67c5f22c7c4e8ae67b53629efa58b974b7d'],
  ['post-sts-header-after', '/', ['X-Amz-Security-Token', TOKEN], '',
    'host;x-amz-date, Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b'],
  ['post-sts-header-before', '/', ['X-Amz-Security-Token', TOKEN], '',
    'host;x-amz-date;x-amz-security-token, Signature=85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead'],
  ['post-vanilla', '/', [], '',
    'host;x-amz-date, Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b'],
  ['post-vanilla-empty-query-value', '/?Param1=value1', [], '',
    'host;x-amz-date, Signature=28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11'],
  ['post-vanilla-query', '/?Param1=value1', [], '',
    'host;x-amz-date, Signature=28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11'],
  ['post-vanilla-query-nonunreserved',
    '/?%40%23%24%25%5E=&%2B=%2F%2C%3F%3E%3C%60%22%3B%3A%5C%7C%5D%5B%7B%7D', [], '',
    'host;x-amz-date, Signature=66c82657c86e26fb25238d0e69f011edc4c6df5ae71119d7cb98ed9b87393c1e'],
  ['post-vanilla-query-space', '/?p=', [], '',
    'host;x-amz-date, Signature=e71688addb58a26418614085fb730ba3faa623b461c17f48f2fbdb9361b94a9b'],
  ['post-x-www-form-urlencoded', '/', ['Content-Type', 'application/x-www-form-urlencoded'],
    'Param1=value1',
    'content-type;host;x-amz-date, Signature=ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a'],
  ['post-x-www-form-urlencoded-parameters', '/',
    ['Content-Type', 'application/x-www-form-urlencoded; charset=utf8'], 'Param1=value1',
    'content-type;host;x-amz-date, Signature=1a72ec8f64bd914b0e42e42607c7fbce7fb2c7465f63e3092b3b0d39fa77a6fe'],
];
const vectorOpts = {
  accessKeyId: 'AKIDEXAMPLE',
  secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY',
  region: 'us-east-1',
  service: 'service',
  // the vectors are dated 2015: the clock they are checked against
  now: new Date('2015-08-30T12:36:00Z'),
};

const creds = {
  accessKeyId: process.env.SQS_TEST_ACCESS_KEY_ID,
  secretAccessKey: process.env.SQS_TEST_SECRET_ACCESS_KEY,
};

// A ListQueues call to a path holding an escape ("a%20b"), signed by
// AWS's signer with SQS's path rule (the path encoded once more) or, a
// wrong reading for SQS, S3's (the path as sent).
async function listQueues(host, s3Rule) {
  const signer = new SignatureV4({
    credentials: creds, region: 'us-east-1', service: 'sqs', sha256: sigv4.Sha256,
    uriEscapePath: !s3Rule, applyChecksum: false,
  });
  const body = '{}';
  const signed = await signer.sign({
    method: 'POST',
    path: '/000000000000/a%20b',
    headers: {
      host, 'content-type': 'application/x-amz-json-1.0', 'x-amz-target': 'AmazonSQS.ListQueues',
    },
    body,
  }, { signingDate: new Date() });
  const signature = /Signature=([0-9a-f]+)$/.exec(signed.headers.authorization)[1];
  return {
    req: { method: 'POST', url: signed.path, rawHeaders: Object.entries(signed.headers).flat() },
    body: Buffer.from(body),
    signature,
  };
}

function send(call) {
  return new Promise((resolve, reject) => {
    const u = new URL(emulator);
    const r = http.request({
      host: u.hostname, port: u.port, method: 'POST', path: call.req.url,
      headers: call.req.rawHeaders,
    }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString() }));
    });
    r.on('error', reject);
    r.end(call.body);
  });
}

async function main() {
  for (const [name, url, extra, body, auth] of vectors) {
    const req = {
      method: 'POST',
      url,
      rawHeaders: ['Host', 'example.amazonaws.com', 'X-Amz-Date', '20150830T123600Z', ...extra,
        'Authorization', AUTH + auth],
    };
    out(Object.assign({ name }, await sigv4.verify(req, Buffer.from(body), vectorOpts)));
  }

  const host = new URL(emulator).host;
  const opts = Object.assign({ region: 'us-east-1', service: 'sqs' }, creds);
  const good = await listQueues(host, false);
  const bad = await listQueues(host, true);
  out(Object.assign({ name: 'sqs rule', signature: good.signature },
    await sigv4.verify(good.req, good.body, opts)));
  out(Object.assign({ name: 's3 rule', signature: bad.signature },
    await sigv4.verify(bad.req, bad.body, opts)));
  out(Object.assign({ name: 'emulator sqs rule' }, await send(good)));
  out(Object.assign({ name: 'emulator s3 rule' }, await send(bad)));
}
main().catch((err) => { process.stderr.write(String(err && err.stack) + '\n'); process.exit(1); });
JS

my ($stdout, $stderr) = ('', '');
IPC::Run::run([ 'node', '-', repo_root(), $emu->endpoint ],
	'<', \$program, '>', \$stdout, '2>', \$stderr,
	IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default))
  or BAIL_OUT("the check program failed: $stderr");
my %r = map { my $d = decode_json($_); ($d->{name} => $d) } split /\n/, $stdout;

### AWS's test vectors pass the whole check

for my $name (
	qw(post-header-key-case post-header-key-sort post-header-value-case
	post-sts-header-after post-sts-header-before post-vanilla
	post-vanilla-empty-query-value post-vanilla-query
	post-vanilla-query-nonunreserved post-vanilla-query-space
	post-x-www-form-urlencoded post-x-www-form-urlencoded-parameters))
{
	ok($r{$name}{ok}, "$name accepted")
	  or diag("$r{$name}{code}: $r{$name}{message}");
}

### a request the own check accepts but AWS's signer does not

# The own check reads a path signed as sent as curl signs it, and accepts
# it; only the second half words a refusal this way, and it runs once the
# first half has accepted.

ok($r{'sqs rule'}{ok}, 'path signed as SQS reads it: accepted')
  or diag("$r{'sqs rule'}{code}: $r{'sqs rule'}{message}");

my $bad = $r{'s3 rule'};
ok(!$bad->{ok}, 'path signed as S3 reads it: refused');
is($bad->{code}, 'SignatureDoesNotMatch', '... as SignatureDoesNotMatch');
like(
	$bad->{message},
	qr/^The AWS SDK signer \(\@smithy\/signature-v4\) computes Signature=\Q$r{'sqs rule'}{signature}\E for this request, not the Signature=\Q$bad->{signature}\E it carries\.$/,
	'... by AWS\'s signer, naming both signatures');
unlike($bad->{message}, qr/\Q$TEST_SECRET_ACCESS_KEY\E/,
	'... and not the secret');

### the emulator answers as verify() says

is($r{'emulator sqs rule'}{status}, 200, 'emulator: SQS path rule answered');
is($r{'emulator s3 rule'}{status}, 403, 'emulator: S3 path rule refused');
my $doc = eval { decode_json($r{'emulator s3 rule'}{body}) } // {};
is($doc->{__type}, 'com.amazon.coral.service#SignatureDoesNotMatch',
	'... as SignatureDoesNotMatch');
like($doc->{message}, qr/^The AWS SDK signer \(\@smithy\/signature-v4\) computes/,
	'... by AWS\'s signer');

$emu->stop;
done_testing();
