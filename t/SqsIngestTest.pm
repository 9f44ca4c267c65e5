
# Copyright (c) sqs_ingest contributors. PostgreSQL License.

=pod

=head1 NAME

SqsIngestTest - test fixtures for sqs_ingest: SQS emulator, fault proxy, clusters

=head1 SYNOPSIS

  use lib 't';
  use SqsIngestTest;

  my $emu  = start_emulator();
  my $url  = create_queue('logins');
  send_json_array($url, sample_file());
  my $node = new_node('main', queue_url => $url);
  my $r    = drain($node);          # {received => .., inserted => .., ...}
  my ($visible, $inflight, $delayed) = queue_depth($url);

=head1 DESCRIPTION

Starts the SQS emulator (F<test/sqs-emulator.js>) and the fault proxy
(F<test/fault-proxy.js>) as background processes, drives F<test/sqs-tool.js>,
and sets up clusters with the extension and the target table. Every process
started here is stopped when the test script ends, whether it passed or not.

=cut

package SqsIngestTest;

use strict;
use warnings;

use Carp;
use Cwd qw(abs_path);
use Exporter 'import';
use File::Basename qw(dirname);
use HTTP::Tiny;
use IPC::Run;
use POSIX qw(WNOHANG);
use JSON::PP;
use Time::HiRes qw(usleep);

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

our @EXPORT = qw(
  start_emulator start_proxy start_standins restart_with_env start_hostile start_http_proxy
  make_certificates sqs_tool create_queue send_json_array
  send_generated send_lines queue_depth wait_for_depth receive_messages
  generate_events
  new_node set_gucs drain drain_error repo_root sample_file sample_events
  app_version_code rows_mismatch rows_sent_today no_crash hostile_settings try_drain drain_until_stored
  drain_meets_hostile depth_meets_hostile
  $TEST_ACCESS_KEY_ID $TEST_SECRET_ACCESS_KEY $TEST_MASK_KEY
  $TARGET_TABLE_DDL);

our $TEST_ACCESS_KEY_ID = $ENV{SQS_TEST_ACCESS_KEY_ID} // 'AKIDSQSINGESTTEST';
our $TEST_SECRET_ACCESS_KEY =
  $ENV{SQS_TEST_SECRET_ACCESS_KEY} // 'sqs-ingest-test-secret';
our $TEST_MASK_KEY = 'test-mask-key';

# The target table exactly as the contract (DESIGN.md) gives it.
our $TARGET_TABLE_DDL = do
{
	my $file = dirname(dirname(abs_path(__FILE__))) . '/examples/user_logins.sql';
	open my $fh, '<', $file or die "cannot read $file: $!";
	local $/;
	<$fh>;
};

# Credentials must come only from what a test sets: an AWS_* variable in the
# caller's environment would leak into the servers started here.
# The rest of the credential chain is off unless a test turns it on: no
# instance metadata (nothing but loopback may be reached) and no shared
# files of whoever runs the tests.
delete $ENV{$_} for grep { /^AWS_/ } keys %ENV;
$ENV{AWS_EC2_METADATA_DISABLED}   = 'true';
$ENV{AWS_SHARED_CREDENTIALS_FILE} = '/nonexistent/aws/credentials';
$ENV{AWS_CONFIG_FILE}             = '/nonexistent/aws/config';
# Nor may a proxy: the servers reach SQS directly unless a test says not.
delete $ENV{$_} for grep { /^(https?|all|no)_proxy$/i } keys %ENV;
$ENV{SQS_TEST_ACCESS_KEY_ID}     = $TEST_ACCESS_KEY_ID;
$ENV{SQS_TEST_SECRET_ACCESS_KEY} = $TEST_SECRET_ACCESS_KEY;

# SQS_INGEST_SERVER_PRELOAD (scripts/sanitize.sh sets it to the ASan
# runtime) is preloaded into every cluster's postmaster, and so into all of
# its processes, but into nothing else the tests run.
if (my $preload = $ENV{SQS_INGEST_SERVER_PRELOAD})
{
	no strict 'refs';
	no warnings 'redefine';
	for my $method (qw(start restart))
	{
		my $orig = \&{"PostgreSQL::Test::Cluster::$method"};
		*{"PostgreSQL::Test::Cluster::$method"} = sub {
			local $ENV{LD_PRELOAD} = $preload;
			return $orig->(@_);
		};
	}
}

my $ROOT = dirname(dirname(abs_path(__FILE__)));
my @live;                  # background processes still running
my $default_emulator;      # the endpoint sqs_tool() talks to by default

=pod

=head1 FUNCTIONS

=over

=item repo_root()

Absolute path of the repository.

=item sample_file()

Path of the real 100-event sample (F<test/data/fetch_sample_data.json>
in the repository; C<SQS_INGEST_SAMPLE> overrides it).

=item sample_events()

The sample, decoded: an array reference of hashes.

=cut

sub repo_root { return $ROOT; }

sub sample_file
{
	my $f = $ENV{SQS_INGEST_SAMPLE}
	  // "$ROOT/test/data/fetch_sample_data.json";
	croak "sample data not found at $f" unless -r $f;
	return $f;
}

sub sample_events
{
	return decode_json(slurp_file(sample_file()));
}

=pod

=item app_version_code($text)

The integer a version string maps to: "M.m.p" to M*1000000 + m*1000 + p,
"M.m" to M*1000000 + m*1000. Undef for anything else.

=cut

sub app_version_code
{
	my ($v) = @_;
	return undef
	  unless defined $v && $v =~ /^([0-9]{1,3})\.([0-9]{1,3})(?:\.([0-9]{1,3}))?$/;
	return $1 * 1000000 + $2 * 1000 + ($3 // 0);
}

# Run node on one of the scripts in test/, output to a log file, and wait
# for its "READY <port>" line. Returns (pid, port, log).
sub _start_node_process
{
	my ($kind, $script, @args) = @_;
	my $log = "$PostgreSQL::Test::Utils::log_path/${kind}_"
	  . time() . "_$$" . "_" . int(rand(1e6)) . ".log";
	my @cmd = ('node', "$ROOT/test/$script", @args, '--exit-with-parent');
	my $pid = fork();
	croak "fork failed: $!" unless defined $pid;
	if ($pid == 0)
	{
		open(STDIN,  '<',  '/dev/null') or POSIX::_exit(127);
		open(STDOUT, '>',  $log)        or POSIX::_exit(127);
		open(STDERR, '>&', \*STDOUT)    or POSIX::_exit(127);
		exec(@cmd) or POSIX::_exit(127);
	}
	my $deadline = time() + $PostgreSQL::Test::Utils::timeout_default;
	while (1)
	{
		my $out = -e $log ? slurp_file($log) : '';
		return ($pid, $1, $log) if $out =~ /^READY (\d+)$/m;
		my $gone = waitpid($pid, WNOHANG) == $pid;
		if ($gone || time() > $deadline)
		{
			_stop_node_process($pid) unless $gone;
			croak "@cmd did not start: $out";
		}
		usleep(50_000);
	}
}

# Stop a process started above: SIGTERM, then SIGKILL if it lingers.
sub _stop_node_process
{
	my ($pid) = @_;
	return unless $pid;
	kill 'TERM', $pid;
	for (1 .. 100)
	{
		return if waitpid($pid, WNOHANG) != 0;
		usleep(50_000);
	}
	kill 'KILL', $pid;
	waitpid($pid, 0);
	return;
}

=pod

=item start_emulator(%opts)

Start the SQS emulator on a free port (or C<port =E<gt> N>); C<queues =E<gt> [...]>
creates queues at start, C<session_token =E<gt> T> requires that token
(or one of them, given an array reference),
C<default =E<gt> 0> leaves the current emulator the default one,
C<front =E<gt> 0> serves the emulator package exactly as it answers (no
signature check, none of the front's adjustments).
Returns an object with C<endpoint>, C<port>, C<queue_url(NAME)>, C<stop>,
C<start> (again on the same port; queues of C<queues> are recreated, others
and all messages are gone). The last emulator started is the one the
functions below talk to.

=cut

sub start_emulator
{
	my (%opts) = @_;
	my $self = bless {
		port => $opts{port} // PostgreSQL::Test::Cluster::get_free_port(),
		queues => $opts{queues} // [],
		session_token => $opts{session_token},
		front => $opts{front} // 1,
	}, 'SqsIngestTest::Emulator';
	$self->start;
	$default_emulator = $self unless defined $opts{default} && !$opts{default};
	return $self;
}

=pod

=item start_standins(%opts)

Start F<test/aws-standins.js>: one local server playing the EC2 instance
metadata service, the container credentials endpoint and STS, vending the
test access key id with session tokens C<imds-N>, C<container-N>, C<webid-N>
and C<assumed-N>, each with a secret of its own, as AWS's temporary
credentials come (derived from the token and the test secret: see
C<secretFor> in F<test/sigv4.js>, which the emulator checks them with). Options: C<lifetime> (seconds until the vended credentials
expire), C<container_auth> (the authorization token required),
C<web_identity_token> (the JWT STS accepts). Returns an object with
C<endpoint>, C<stats> (hash reference of request counts), C<fail(\%what)>
(C<{imds =E<gt> 1}> makes those endpoints answer 500; C<{}> heals), C<stop>.

=cut

sub start_standins
{
	my (%opts) = @_;
	my $self = bless {
		port => PostgreSQL::Test::Cluster::get_free_port(),
		%opts,
	}, 'SqsIngestTest::Standins';
	$self->start;
	return $self;
}

=pod

=item restart_with_env($node, NAME =E<gt> value, ...)

Restart the server with these environment variables on top of the test's
(undef: unset), as a service manager would set them.

=cut

sub restart_with_env
{
	my ($node, %env) = @_;
	$node->stop;
	local %ENV = %ENV;
	for my $k (keys %env)
	{
		if (defined $env{$k}) { $ENV{$k} = $env{$k}; }
		else                  { delete $ENV{$k}; }
	}
	$node->start;
	return;
}

=pod

=item start_proxy($target_endpoint)

Start the fault proxy in front of C<$target_endpoint>. Returns an object
with C<endpoint>, C<port>, C<set_fault(\%fault)>, C<clear_faults>,
C<stats> (hash reference: action =E<gt> {forwarded, failed}),
C<reset_stats>, C<stop>, C<start>.

=cut

sub start_proxy
{
	my ($target, %opts) = @_;
	$target = $target->endpoint if ref $target;
	my $self = bless {
		port => $opts{port} // PostgreSQL::Test::Cluster::get_free_port(),
		target => $target,
	}, 'SqsIngestTest::Proxy';
	$self->start;
	return $self;
}

=pod

=item start_hostile($target_endpoint)

Start the scripted hostile endpoint (F<test/hostile-endpoint.js>) in front
of C<$target_endpoint>. Returns an object with C<endpoint>, C<port>,
C<script(\%script)> (action =E<gt> {case =E<gt> NAME, count =E<gt> N}),
C<clear>, C<stats>, C<reset_stats>, C<cases> (case =E<gt> {actions, protocols,
invents}), C<served($action, $case)> (how often that case was served),
C<wait_served($action, $case)> (true once it was, false after the
harness's timeout), C<transport_cases($action, $protocol)> (the cases for that action that have a
form in C<$protocol>, C<json> (default) or C<query>, sorted, but those that
answer with messages of their own making), C<entity_file> ({path, marker}:
the local file the C<external-entity> case points at), C<stop>,
C<start>. With C<cert =E<gt> FILE, key =E<gt> FILE> it serves HTTPS (its
C<endpoint> is https://127.0.0.1:PORT): a TLS front for the target.

=cut

sub start_hostile
{
	my ($target, %opts) = @_;
	$target = $target->endpoint if ref $target;
	my $self = bless {
		port => $opts{port} // PostgreSQL::Test::Cluster::get_free_port(),
		target => $target,
		cert   => $opts{cert},
		key    => $opts{key},
	}, 'SqsIngestTest::Hostile';
	$self->start;
	return $self;
}

=pod

=item start_http_proxy()

Start the forward proxy (F<test/http-proxy.js>: CONNECT and absolute-form
HTTP, loopback only). Returns an object with C<endpoint>, C<port>,
C<stats> ({connect =E<gt> n, http =E<gt> n, targets =E<gt> {"host:port" =E<gt> n}}),
C<reset_stats>, C<stop>.

=cut

sub start_http_proxy
{
	my (%opts) = @_;
	my $self = bless {
		port => $opts{port} // PostgreSQL::Test::Cluster::get_free_port(),
	}, 'SqsIngestTest::HttpProxy';
	$self->start;
	return $self;
}

=pod

=item make_certificates($dir)

With openssl, make in C<$dir>: a test CA (F<ca.pem>), a certificate it
issued for the IP address 127.0.0.1 (F<server.pem>, F<server.key>), and
another CA that issued nothing here (F<other-ca.pem>). Returns a hash
reference of those paths.

=cut

sub make_certificates
{
	my ($dir) = @_;
	my %f = map { $_ => "$dir/$_.pem" } qw(ca ca-key server server-csr other-ca other-ca-key);
	$f{server_key} = "$dir/server.key";
	my $ext = "$dir/server.ext";
	open my $fh, '>', $ext or croak "cannot write $ext: $!";
	print $fh "subjectAltName = IP:127.0.0.1\nbasicConstraints = CA:FALSE\n"
	  . "keyUsage = digitalSignature, keyEncipherment\nextendedKeyUsage = serverAuth\n";
	close $fh;
	my @cmds = (
		[ qw(openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=sqs_ingest-test-CA),
		  '-keyout', $f{'ca-key'}, '-out', $f{ca} ],
		[ qw(openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=some-other-CA),
		  '-keyout', $f{'other-ca-key'}, '-out', $f{'other-ca'} ],
		[ qw(openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1),
		  '-keyout', $f{server_key}, '-out', $f{'server-csr'} ],
		[ qw(openssl x509 -req -days 2 -set_serial 2), '-in', $f{'server-csr'},
		  '-CA', $f{ca}, '-CAkey', $f{'ca-key'}, '-extfile', $ext, '-out', $f{server} ],
	);
	for my $cmd (@cmds)
	{
		my ($out, $err) = ('', '');
		IPC::Run::run($cmd, '<', '/dev/null', '>', \$out, '2>', \$err)
		  or croak "@$cmd failed: $err";
	}
	chmod 0600, $f{server_key}, $f{'ca-key'}, $f{'other-ca-key'};
	return { ca => $f{ca}, other_ca => $f{'other-ca'}, cert => $f{server}, key => $f{server_key} };
}

=pod

=item no_crash($node, $log_offset, $what)

Test that no process of the cluster was terminated by a signal since
C<$log_offset> of its server log, and that it accepts connections (waiting
out a crash restart, which fails the first test anyway). Returns true when
both hold.

=cut

sub no_crash
{
	my ($node, $offset, $what) = @_;
	my $log = slurp_file($node->logfile, $offset);
	my $ok = unlike($log,
		qr/terminated by signal|terminated by exception|\(PID \d+\) exited with exit code (?![01]\b)\d+/,
		"$what: no server process terminated by a signal");
	unless ($ok)
	{
		# a crash shuts a test cluster down (restart_after_crash = off):
		# wait for that, and start it again so that the next case runs
		my $pid = $node->{_pid};
		for (1 .. 600)
		{
			last unless $pid && kill(0, $pid);
			usleep(100_000);
		}
		$node->_update_pid(-1);
		$node->start unless defined $node->{_pid};
	}
	my $up = eval { $node->poll_query_until('postgres', 'SELECT 1', '1') };
	ok($up, "$what: the cluster accepts connections");
	return $ok && $up;
}

=pod

=item sqs_tool(@args)

Run F<test/sqs-tool.js> with C<@args> against the current emulator (unless
C<@args> has its own C<--endpoint>). Returns its standard output; dies with
its standard error if it fails.

=cut

sub sqs_tool
{
	my (@args) = @_;
	unless (grep { $_ eq '--endpoint' } @args)
	{
		croak 'no emulator started' unless $default_emulator;
		unshift @args, '--endpoint', $default_emulator->endpoint;
	}
	my ($out, $err) = ('', '');
	my $ok = IPC::Run::run([ 'node', "$ROOT/test/sqs-tool.js", @args ],
		'<', '/dev/null', '>', \$out, '2>', \$err,
		IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
	croak "sqs-tool @args failed: $err" unless $ok;
	return $out;
}

=pod

=item create_queue($name, visibility_timeout => S)

Create a queue, return its URL.

=item send_json_array($url, $file), send_lines($url, $file), send_generated($url, $n, $seed)

Send messages (see F<test/sqs-tool.js>); return how many were sent.

=item generate_events($n, $seed)

The events C<send_generated> sends for the same C<$n> and C<$seed>.

=item queue_depth($url)

Returns (visible, in flight, delayed).

=item wait_for_depth($url, $visible, $in_flight, $delayed)

Poll until the queue depth is exactly that; false (with a diag) on timeout.

=item receive_messages($url, max => N, visibility_timeout => S)

Receive without deleting; returns the messages (array reference).

=cut

sub create_queue
{
	my ($name, %opts) = @_;
	my @vt = defined $opts{visibility_timeout}
	  ? ('--visibility-timeout', $opts{visibility_timeout}) : ();
	my $url = sqs_tool('create-queue', $name, @vt);
	chomp $url;
	return $url;
}

sub _sent
{
	my ($out) = @_;
	chomp $out;
	croak "unexpected sqs-tool output: $out" unless $out =~ /^\d+$/;
	return $out + 0;
}

sub send_json_array
{
	my ($url, $file) = @_;
	return _sent(sqs_tool('send', $url, '--json-array', $file));
}

sub send_lines
{
	my ($url, $file) = @_;
	return _sent(sqs_tool('send', $url, '--lines', $file));
}

sub send_generated
{
	my ($url, $n, $seed) = @_;
	return _sent(
		sqs_tool('send', $url, '--generate', $n, '--seed', $seed // 1));
}

sub generate_events
{
	my ($n, $seed) = @_;
	return decode_json(sqs_tool('generate', $n, '--seed', $seed // 1));
}

sub queue_depth
{
	my ($url) = @_;
	my $out = sqs_tool('depth', $url);
	croak "unexpected depth output: $out"
	  unless $out =~ /^(\d+) (\d+) (\d+)$/m;
	return ($1 + 0, $2 + 0, $3 + 0);
}

sub wait_for_depth
{
	my ($url, @want) = @_;
	my $deadline = time() + $PostgreSQL::Test::Utils::timeout_default;
	my @got;
	while (time() < $deadline)
	{
		@got = queue_depth($url);
		return 1 if "@got" eq "@want";
		usleep(200_000);
	}
	diag("queue depth still (@got), waited for (@want)");
	return 0;
}

sub receive_messages
{
	my ($url, %opts) = @_;
	my @args = ('receive', $url, '--max', $opts{max} // 10);
	push @args, '--visibility-timeout', $opts{visibility_timeout}
	  if defined $opts{visibility_timeout};
	push @args, '--wait', $opts{wait} if defined $opts{wait};
	return decode_json(sqs_tool(@args));
}

=pod

=item new_node($name, %opts)

Initialise (UTF8) and start a cluster, create pgcrypto, sqs_ingest and the
target table, and set through ALTER SYSTEM: C<sqs_ingest.queue_url>
(C<queue_url>), the test credentials (unless C<credentials =E<gt> 0>) and
C<sqs_ingest.mask_key> = 'test-mask-key' (C<mask_key> overrides). Options:
C<shared_preload =E<gt> 1> to load the library at start, C<conf =E<gt> TEXT>
appended to postgresql.conf before start, C<settings =E<gt> {guc =E<gt> value}>
more ALTER SYSTEM settings, C<create_table =E<gt> 0> to skip the table,
C<extension_version =E<gt> '1.0'> to create an older version of the extension.
With C<SQS_INGEST_TEST_PRELOAD=1> in the environment, nodes preload the
library by default (with C<sqs_ingest.workers = 0>).

=cut

sub new_node
{
	my ($name, %opts) = @_;
	# SQS_INGEST_TEST_PRELOAD=1 runs every test with the library preloaded
	# (as in production), background workers off so they take nothing.
	if ($ENV{SQS_INGEST_TEST_PRELOAD} && !exists $opts{shared_preload})
	{
		$opts{shared_preload} = 1;
		$opts{conf} = "sqs_ingest.workers = 0\n" . ($opts{conf} // '');
	}
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init(extra => [ '--encoding=UTF8', '--locale=C' ]);
	$node->append_conf('postgresql.conf',
		"shared_preload_libraries = 'sqs_ingest'\n")
	  if $opts{shared_preload};
	$node->append_conf('postgresql.conf', $opts{conf}) if $opts{conf};
	$node->start;

	$node->safe_psql('postgres', 'CREATE EXTENSION pgcrypto');
	$node->safe_psql('postgres',
		'CREATE EXTENSION sqs_ingest'
		  . ($opts{extension_version} ? " VERSION '$opts{extension_version}'" : ''));
	$node->safe_psql('postgres', $TARGET_TABLE_DDL)
	  unless defined $opts{create_table} && !$opts{create_table};

	my %gucs;
	$gucs{'sqs_ingest.queue_url'} = $opts{queue_url}
	  if defined $opts{queue_url};
	unless (defined $opts{credentials} && !$opts{credentials})
	{
		$gucs{'sqs_ingest.access_key_id'}     = $TEST_ACCESS_KEY_ID;
		$gucs{'sqs_ingest.secret_access_key'} = $TEST_SECRET_ACCESS_KEY;
	}
	$gucs{'sqs_ingest.mask_key'} = $opts{mask_key} // $TEST_MASK_KEY;
	%gucs = (%gucs, %{ $opts{settings} }) if $opts{settings};
	set_gucs($node, \%gucs);
	return $node;
}

=pod

=item set_gucs($node, {name =E<gt> value, ...})

ALTER SYSTEM SET each (undef: RESET), reload, and wait until new sessions
see the change.

=cut

sub _literal
{
	my ($v) = @_;
	$v =~ s/'/''/g;
	return "'$v'";
}

sub set_gucs
{
	my ($node, $gucs) = @_;
	# ALTER SYSTEM accepts only parameters the session knows: load the
	# library so that its settings are defined.
	my $sql = '';
	$sql .= "LOAD 'sqs_ingest';\n" if grep { /^sqs_ingest\./ } keys %$gucs;
	for my $name (sort keys %$gucs)
	{
		croak "bad setting name $name" unless $name =~ /^[a-z_][a-z0-9_.]*$/;
		$sql .= defined $gucs->{$name}
		  ? "ALTER SYSTEM SET $name = " . _literal($gucs->{$name}) . ";\n"
		  : "ALTER SYSTEM RESET $name;\n";
	}
	$sql .= "SELECT pg_conf_load_time();\n";
	my $before = $node->safe_psql('postgres', $sql);
	$before = (split /\n/, $before)[-1];
	$node->safe_psql('postgres', 'SELECT pg_reload_conf()');
	# New sessions inherit the postmaster's configuration: once they see a
	# newer load time, the settings above are in force.
	$node->poll_query_until('postgres',
		"SELECT pg_conf_load_time() > '$before'::timestamptz")
	  or croak 'configuration reload was not seen';
	return;
}

=pod

=item drain($node, $max_messages, $sql_prefix)

Run C<SELECT * FROM sqs_ingest_drain(...)> (dies on error); returns a hash
reference with received, inserted, duplicates, dead_lettered.

=item drain_error($node, $max_messages)

Run the drain expecting it to fail; returns its stderr (with the ERROR,
DETAIL and HINT lines), or undef if it succeeded.

=cut

sub _drain_sql
{
	my ($max) = @_;
	my $arg = defined $max ? "$max" : '';
	return "SELECT received, inserted, duplicates, dead_lettered "
	  . "FROM sqs_ingest_drain($arg)";
}

sub drain
{
	my ($node, $max, $prefix) = @_;
	my $out =
	  $node->safe_psql('postgres', ($prefix // '') . _drain_sql($max));
	my @f = split /\|/, (split /\n/, $out)[-1] // '';
	croak "unexpected drain output: $out" unless @f == 4;
	my %r;
	@r{qw(received inserted duplicates dead_lettered)} = map { $_ + 0 } @f;
	return \%r;
}

sub drain_error
{
	my ($node, $max) = @_;
	my ($ret, $out, $err) = $node->psql('postgres', _drain_sql($max),
		on_error_stop => 1);
	return $ret == 0 ? undef : $err;
}

=pod

=item hostile_settings($hostile)

Settings for a node that reaches SQS through the hostile endpoint: one
receive at a time (so that a scripted answer is the next receive's),
visibility timeout 2 s, no long poll for the drain, and connect and request
timeouts of 1 s and 3 s, so that stalls end soon.

=item try_drain($node, $max_messages, timeout => S)

Run the drain, which may fail. Returns a hash reference: C<ok> (it
returned), C<result> (as C<drain> gives it, when ok), C<stderr>,
C<timed_out> (it had not returned after C<timeout> seconds, default the
harness's).

=item drain_until_stored($node, \@events)

Drain (errors allowed) until every one of the events is in the target
table, or the harness's timeout passes; true if they all arrived.

=cut

sub hostile_settings
{
	my ($hostile) = @_;
	return {
		'sqs_ingest.endpoint'                => $hostile->endpoint,
		'sqs_ingest.max_inflight'            => 1,
		'sqs_ingest.visibility_timeout'      => 2,
		'sqs_ingest.drain_wait_time_seconds' => 0,
		'sqs_ingest.connect_timeout'         => 1000,
		'sqs_ingest.request_timeout'         => 3000,
	};
}

sub try_drain
{
	my ($node, $max, %opts) = @_;
	my ($ret, $out, $err);
	my $timed_out = 0;
	$ret = $node->psql('postgres', _drain_sql($max),
		stdout        => \$out,
		stderr        => \$err,
		on_error_stop => 1,
		timeout       => $opts{timeout} // $PostgreSQL::Test::Utils::timeout_default,
		timed_out     => \$timed_out);
	my %r = (ok => ($ret == 0 && !$timed_out), stderr => $err // '',
		timed_out => $timed_out);
	if ($r{ok})
	{
		my @f = split /\|/, (split /\n/, $out // '')[-1] // '';
		@{ $r{result} }{qw(received inserted duplicates dead_lettered)} =
		  map { $_ + 0 } @f;
	}
	return \%r;
}

sub drain_until_stored
{
	my ($node, $events) = @_;
	my $ids = join ',', map { _literal($_->{user_id}) } @$events;
	my $want = scalar @$events;
	my $deadline = time() + $PostgreSQL::Test::Utils::timeout_default;
	while (time() < $deadline)
	{
		my $have = $node->safe_psql('postgres',
			"SELECT count(DISTINCT user_id) FROM public.user_logins WHERE user_id IN ($ids)");
		return 1 if $have == $want;
		try_drain($node, undef, timeout => 60);
		usleep(300_000);
	}
	return 0;
}

=pod

=item rows_sent_today($node)

How many rows of the target table have as C<create_date> the UTC date of
today or yesterday (a run may straddle midnight): events without a
C<create_date> take the date their message was sent.

=cut

sub rows_sent_today
{
	my ($node) = @_;
	return $node->safe_psql(
		'postgres', q{
SELECT count(*) FROM public.user_logins
WHERE create_date BETWEEN (now() AT TIME ZONE 'UTC')::date - 1
                      AND (now() AT TIME ZONE 'UTC')::date});
}

=pod

=item rows_mismatch($node, \@events)

Compare the target table with the rows the events should give (masks
computed with pgcrypto and the test mask key, app_version with
C<app_version_code>), restricted to the events' user ids. Returns the
number of rows missing plus the number unexpected: 0 when they agree.

=cut

sub rows_mismatch
{
	my ($node, $events) = @_;
	my @exp = map { { %$_, code => app_version_code($_->{app_version}) } } @$events;
	my $json = JSON::PP->new->utf8->canonical->encode(\@exp);
	croak 'dollar-quote tag inside data' if $json =~ /\$sqs_json\$/;
	my $key = _literal($TEST_MASK_KEY);
	return $node->safe_psql('postgres', <<"SQL") + 0;
WITH exp AS (
  SELECT e->>'user_id' AS user_id, e->>'device_type' AS device_type,
         encode(hmac(e->>'ip', $key, 'sha256'), 'hex') AS masked_ip,
         encode(hmac(e->>'device_id', $key, 'sha256'), 'hex') AS masked_device_id,
         e->>'locale' AS locale, (e->>'code')::integer AS app_version
  FROM jsonb_array_elements(\$sqs_json\$$json\$sqs_json\$::jsonb) AS e),
act AS (
  SELECT user_id::text, device_type::text, masked_ip::text, masked_device_id::text,
         locale::text, app_version
  FROM public.user_logins WHERE user_id IN (SELECT user_id FROM exp))
SELECT (SELECT count(*) FROM (SELECT * FROM exp EXCEPT ALL SELECT * FROM act) AS missing)
     + (SELECT count(*) FROM (SELECT * FROM act EXCEPT ALL SELECT * FROM exp) AS unexpected)
SQL
}

=pod

=item drain_meets_hostile($node, $hostile, $url, $case, $n, $seed, what => TEXT, check => sub { ($offset) })

Send C<$n> events generated from C<$seed> to C<$url>, script the hostile
endpoint to answer the drain's next ReceiveMessage with C<$case>, drain,
and test that the case is served once, the drain returns within the
timeouts, no process of the cluster is terminated by a signal, and the
drain either fails with a clean error naming the call or receives (never
reads a fault as an empty queue; only C<empty> is an empty queue), that no
redirect is followed and a stalled connection is given up. C<check>, if
given, runs next with the server log offset of the case. Then, the
endpoint cleared, every event must be stored. C<what> (default the case)
starts each test's name. Returns the events.

=item depth_meets_hostile($node, $hostile, $case, $sql, \%may_answer, what => TEXT, check => sub { ($offset) })

Script the hostile endpoint to answer the next GetQueueAttributes with
C<$case>, run C<$sql> (which calls C<sqs_ingest_queue_depth()>), and test
that the case is served once, the call returns within the timeouts, no
process is terminated by a signal, and the call either fails with a clean
error naming the call or answers, with no negative count, for a case in
C<%may_answer> only.

=cut

sub drain_meets_hostile
{
	my ($node, $hostile, $url, $case, $n, $seed, %opts) = @_;
	my $what = $opts{what} // $case;
	my $events = generate_events($n, $seed);
	is(send_generated($url, $n, $seed), $n, "$what: $n events sent");

	$hostile->reset_stats;
	$hostile->script({ ReceiveMessage => { case => $case, count => 1 } });
	my $offset = -s $node->logfile;
	my $r = try_drain($node, undef, timeout => 120);
	note("$what: " . ($r->{ok} ? "drain returned @{$r->{result}}{qw(received inserted)}" : $r->{stderr}));

	is($hostile->served('ReceiveMessage', $case), 1, "$what: served once");
	ok(!$r->{timed_out}, "$what: the drain returns within the timeouts");
	if (no_crash($node, $offset, $what))
	{
		if ($case eq 'empty')
		{
			# an empty 200 is an empty document, as the AWS SDKs read it
			ok($r->{ok}, "$what: read as an empty queue, no error")
			  or diag($r->{stderr});
		}
		elsif ($r->{ok})
		{
			cmp_ok($r->{result}{received}, '>', 0,
				"$what: not read as an empty queue (retried and received)");
		}
		else
		{
			like($r->{stderr}, qr/^psql:.*ERROR:  .*(ReceiveMessage|SQS)/m,
				"$what: a clean error naming the call");
		}
		is($hostile->stats->{redirectsFollowed}, 0, "$what: no redirect followed")
		  if $case eq 'redirect';
		cmp_ok($hostile->stats->{clientClosed}, '>=', 1,
			"$what: the client gave up the stalled connection")
		  if $case =~ /^stall/;
		$opts{check}->($offset) if $opts{check};
	}
	$hostile->clear;
	ok(drain_until_stored($node, $events), "$what: every message stored in the end");
	return $events;
}

sub depth_meets_hostile
{
	my ($node, $hostile, $case, $sql, $may_answer, %opts) = @_;
	my $what = $opts{what} // $case;
	$hostile->reset_stats;
	$hostile->script({ GetQueueAttributes => { case => $case, count => 1 } });
	my $offset = -s $node->logfile;
	my ($timed_out, $out, $err) = (0);
	my $ret = $node->psql('postgres', $sql,
		stdout    => \$out,
		stderr    => \$err,
		timeout   => 120,
		timed_out => \$timed_out);
	note("$what: " . ($ret == 0 ? $out : $err));

	is($hostile->served('GetQueueAttributes', $case), 1, "$what: served once");
	ok(!$timed_out, "$what: returns within the timeouts");
	no_crash($node, $offset, $what) or return;
	if ($ret == 0)
	{
		ok($may_answer->{$case}, "$what: answered only when the document allows it");
		unlike($out, qr/-/, "$what: no negative count");
	}
	else
	{
		like($err, qr/ERROR:  .*(GetQueueAttributes|SQS)/,
			"$what: a clean error naming the call");
	}
	is($hostile->stats->{redirectsFollowed}, 0, "$what: no redirect followed")
	  if $case eq 'redirect';
	$opts{check}->($offset) if $opts{check};
	return;
}

=pod

=back

=cut

# Stop whatever is still running when the script ends, pass or fail,
# without changing its exit status.
END
{
	my $exit = $?;
	my @procs = reverse @live;    # stop() edits @live
	for my $p (@procs)
	{
		$p->stop if $p->{pid};
	}
	$? = $exit;
}

package SqsIngestTest::Process;

use Carp;
use JSON::PP;

sub port     { return $_[0]->{port}; }
sub pid      { return $_[0]->{pid}; }
sub logfile  { return $_[0]->{log}; }
sub endpoint { return "http://127.0.0.1:$_[0]->{port}"; }

sub stop
{
	my ($self) = @_;
	SqsIngestTest::_stop_node_process($self->{pid});
	$self->{pid} = undef;
	@live = grep { $_ != $self } @live;
	return;
}

# a call to the control interface of a helper process
sub _control
{
	my ($self, $method, $path, $doc) = @_;
	my $http = HTTP::Tiny->new(timeout => 30);
	my $res = $http->request($method, $self->endpoint . $path,
		defined $doc
		? {
			content => encode_json($doc),
			headers => { 'Content-Type' => 'application/json' }
		  }
		: {});
	croak ref($self) . " $method $path: $res->{status} $res->{content}"
	  unless $res->{success};
	return decode_json($res->{content});
}

sub _register
{
	my ($self, $pid, $port, $log) = @_;
	if ($port != $self->{port})
	{
		SqsIngestTest::_stop_node_process($pid);
		croak "started on port $port, wanted $self->{port}";
	}
	$self->{pid} = $pid;
	$self->{log}     = $log;
	push @live, $self;
	return;
}

package SqsIngestTest::Emulator;

our @ISA = ('SqsIngestTest::Process');

sub queue_url
{
	my ($self, $name) = @_;
	return $self->endpoint . "/000000000000/$name";
}

sub start
{
	my ($self) = @_;
	my @args = ('--port', $self->{port}, '--host', '127.0.0.1');
	push @args, map { ('--queue', $_) } @{ $self->{queues} };
	my $tokens = $self->{session_token};
	push @args, map { ('--session-token', $_) }
	  ref $tokens ? @$tokens : defined $tokens ? ($tokens) : ();
	push @args, '--front', 'off' unless $self->{front};
	$self->_register(
		SqsIngestTest::_start_node_process('emulator', 'sqs-emulator.js', @args));
	return $self;
}

package SqsIngestTest::Proxy;

use Carp;
use JSON::PP;

our @ISA = ('SqsIngestTest::Process');

sub start
{
	my ($self) = @_;
	$self->_register(
		SqsIngestTest::_start_node_process(
			'proxy', 'fault-proxy.js',
			'--listen', $self->{port},
			'--host',   '127.0.0.1',
			'--target', $self->{target}));
	return $self;
}

sub set_fault
{
	my ($self, $fault) = @_;
	return $self->_control('POST', '/__fault', $fault);
}

sub clear_faults { return $_[0]->set_fault({}); }
sub stats        { return $_[0]->_control('GET', '/__fault/stats'); }
sub reset_stats  { return $_[0]->_control('POST', '/__fault/stats/reset', {}); }

package SqsIngestTest::Standins;

use Carp;
use JSON::PP;

our @ISA = ('SqsIngestTest::Process');

sub start
{
	my ($self) = @_;
	my @args = ('--port', $self->{port}, '--host', '127.0.0.1');
	push @args, '--lifetime', $self->{lifetime} if defined $self->{lifetime};
	push @args, '--container-auth', $self->{container_auth}
	  if defined $self->{container_auth};
	push @args, '--web-identity-token', $self->{web_identity_token}
	  if defined $self->{web_identity_token};
	$self->_register(
		SqsIngestTest::_start_node_process('standins', 'aws-standins.js', @args));
	return $self;
}

sub stats { return $_[0]->_control('GET', '/__stats'); }
sub fail  { return $_[0]->_control('POST', '/__fail', $_[1]); }

package SqsIngestTest::Hostile;

our @ISA = ('SqsIngestTest::Process');

sub endpoint
{
	my ($self) = @_;
	return ($self->{cert} ? 'https' : 'http') . "://127.0.0.1:$self->{port}";
}

sub start
{
	my ($self) = @_;
	my @tls = $self->{cert} ? ('--cert', $self->{cert}, '--key', $self->{key}) : ();
	$self->_register(
		SqsIngestTest::_start_node_process(
			'hostile', 'hostile-endpoint.js',
			'--listen', $self->{port},
			'--host',   '127.0.0.1',
			'--target', $self->{target}, @tls));
	return $self;
}

sub script      { return $_[0]->_control('POST', '/__hostile', $_[1]); }
sub clear       { return $_[0]->script({}); }
sub stats       { return $_[0]->_control('GET', '/__hostile/stats'); }
sub reset_stats { return $_[0]->_control('POST', '/__hostile/stats/reset', {}); }
sub cases       { return $_[0]->_control('GET', '/__hostile/cases'); }

sub entity_file { return $_[0]->_control('GET', '/__hostile/entity-file'); }

# wait until the case has been served to $action (true), or the harness's
# timeout passes (false)
sub wait_served
{
	my ($self, $action, $case) = @_;
	my $deadline = time() + $PostgreSQL::Test::Utils::timeout_default;
	while (time() < $deadline)
	{
		return 1 if $self->served($action, $case) >= 1;
		Time::HiRes::usleep(100_000);
	}
	return 0;
}

sub transport_cases
{
	my ($self, $action, $protocol) = @_;
	$protocol //= 'json';
	my $cases = $self->cases;
	return grep {
		my $c = $cases->{$_};
		!$c->{invents}
		  && (grep { $_ eq $action } @{ $c->{actions} })
		  && grep { $_ eq $protocol } @{ $c->{protocols} }
	} sort keys %$cases;
}

sub served
{
	my ($self, $action, $case) = @_;
	return $self->stats->{$action}{served}{$case} // 0;
}

package SqsIngestTest::HttpProxy;

our @ISA = ('SqsIngestTest::Process');

sub start
{
	my ($self) = @_;
	$self->_register(
		SqsIngestTest::_start_node_process(
			'http_proxy', 'http-proxy.js',
			'--listen', $self->{port},
			'--host',   '127.0.0.1'));
	return $self;
}

sub stats       { return $_[0]->_control('GET', '/__proxy/stats'); }
sub reset_stats { return $_[0]->_control('POST', '/__proxy/stats/reset', {}); }

1;
