
# Copyright (c) sqs_ingest contributors. PostgreSQL License.

=pod

=head1 NAME

SqsIngestWorker - functions for the TAP tests of the background worker

=head1 SYNOPSIS

  use lib 't';
  use SqsIngestTest;
  use SqsIngestWorker;

  my $node = worker_node('w', queue_url => $url, workers => 1,
                         settings => { 'sqs_ingest.retry_interval' => 4 });
  my $pid  = worker_pid($node, 0);
  my $n    = worker_stat($node, 'inserted');

=head1 DESCRIPTION

Builds on F<t/SqsIngestTest.pm>: clusters whose library is preloaded so
that the background workers run, and small queries about them.

=cut

package SqsIngestWorker;

use strict;
use warnings;

use Carp;
use Digest::MD5 qw(md5_hex);
use Exporter 'import';
use IPC::Run;
use JSON::PP;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use SqsIngestTest;
use Test::More;
use Time::HiRes qw(usleep);

our @EXPORT = qw(
  worker_node wait_for_workers worker_pid worker_pids worker_stat
  log_offset log_since count_lines
  events_file send_events send_in_background user_ids_digest rows_digest
  worker_meets_hostile);

=pod

=head1 FUNCTIONS

=over

=item worker_node($name, queue_url => URL, workers => N, settings => {...}, conf => TEXT, extension_version => V, state => S)

A cluster as C<new_node> makes it (extension, pgcrypto, target table,
credentials, mask key, C<settings> through ALTER SYSTEM), then restarted with
C<shared_preload_libraries = 'sqs_ingest'> and C<sqs_ingest.workers = N>
(default 1), so that the workers find everything in place when they start.
Returns once every worker is polling (or in state C<S>: 'backing off' for
workers whose every call fails).

=cut

sub worker_node
{
	my ($name, %opts) = @_;
	my $workers = $opts{workers} // 1;
	my $node = new_node(
		$name,
		shared_preload => 0,
		(defined $opts{queue_url} ? (queue_url => $opts{queue_url}) : ()),
		settings => $opts{settings} // {},
		(defined $opts{create_table} ? (create_table => $opts{create_table}) : ()),
		(defined $opts{extension_version}
			? (extension_version => $opts{extension_version})
			: ()));
	$node->append_conf('postgresql.conf',
		    "shared_preload_libraries = 'sqs_ingest'\n"
		  . "sqs_ingest.workers = $workers\n"
		  . ($opts{conf} // ''));
	$node->restart;
	wait_for_workers($node, $workers, $opts{state}) if $workers > 0;
	return $node;
}

=pod

=item wait_for_workers($node, $n, $state)

Poll until C<$n> workers show in pg_stat_activity and in C<sqs_ingest.stats>
with a pid and state C<$state> (default 'polling'). Dies on timeout.

=cut

sub wait_for_workers
{
	my ($node, $n, $state) = @_;
	$state //= 'polling';
	$node->poll_query_until(
		'postgres', qq{
SELECT (SELECT count(*) FROM pg_stat_activity
        WHERE backend_type = 'sqs_ingest worker') = $n
   AND (SELECT count(*) FROM sqs_ingest.stats s
        JOIN pg_stat_activity a USING (pid)
        WHERE s.kind = 'worker' AND s.state = '$state') = $n})
	  or croak "$n sqs_ingest workers did not reach state $state";
	return;
}

=pod

=item worker_pid($node, $index)

The pid of worker C<$index> as pg_stat_activity shows it (by its
application_name), or '' if there is none.

=item worker_pids($node)

Pids of all workers, ordered by index.

=cut

sub worker_pid
{
	my ($node, $i) = @_;
	return $node->safe_psql('postgres', qq{
SELECT pid FROM pg_stat_activity
WHERE backend_type = 'sqs_ingest worker' AND application_name = 'sqs_ingest worker $i'});
}

sub worker_pids
{
	my ($node) = @_;
	return split /\n/, $node->safe_psql('postgres', q{
SELECT pid FROM pg_stat_activity WHERE backend_type = 'sqs_ingest worker'
ORDER BY application_name});
}

=pod

=item worker_stat($node, $expr, $index)

C<$expr> (a column or an expression of columns) of worker C<$index>
(default 0) in C<sqs_ingest.stats>.

=cut

sub worker_stat
{
	my ($node, $expr, $i) = @_;
	$i //= 0;
	return $node->safe_psql('postgres',
		"SELECT $expr FROM sqs_ingest.stats WHERE kind = 'worker' AND worker = $i");
}

=pod

=item log_offset($node), log_since($node, $offset), count_lines($text, $regexp)

The server log's current size; the log from an offset; how many lines of a
text match.

=cut

sub log_offset
{
	my ($node) = @_;
	return -s $node->logfile;
}

sub log_since
{
	my ($node, $offset) = @_;
	return slurp_file($node->logfile, $offset);
}

sub count_lines
{
	my ($text, $re) = @_;
	return scalar grep { /$re/ } split /\n/, $text;
}

=pod

=item events_file($events, $name)

Write the events as one JSON body a line into the test's temporary
directory; returns the file name.

=item send_events($url, $events)

Send the events, one message each; returns how many were sent.

=cut

my $file_seq = 0;

sub events_file
{
	my ($events, $name) = @_;
	$name //= 'events';
	my $file =
	  "$PostgreSQL::Test::Utils::tmp_check/${name}_$$" . '_' . ++$file_seq . '.jsonl';
	my $json = JSON::PP->new->utf8->canonical;
	open(my $fh, '>', $file) or croak "could not write $file: $!";
	print $fh $json->encode($_), "\n" for @$events;
	close($fh) or croak "could not write $file: $!";
	return $file;
}

sub send_events
{
	my ($url, $events) = @_;
	return send_lines($url, events_file($events));
}

=pod

=item send_in_background($emulator, $url, \@events, chunk => N, pause => S)

Start sending the events, one message each, in a separate process: in
chunks of C<chunk> messages (default: all at once) with C<pause> seconds
between chunks (default 0). Returns a handle whose C<finish> waits for the
end (true if all were sent) and whose C<running> tells whether it is still
sending.

=cut

sub send_in_background
{
	my ($emu, $url, $events, %opts) = @_;
	my $chunk = $opts{chunk} // scalar @$events;
	my $pause = $opts{pause} // 0;
	my @files;
	for (my $i = 0; $i < @$events; $i += $chunk)
	{
		my $last = $i + $chunk - 1;
		$last = $#$events if $last > $#$events;
		push @files, events_file([ @$events[ $i .. $last ] ], 'background');
	}
	my $script = q{
tool=$1; endpoint=$2; url=$3; pause=$4; shift 4
n=0
for f in "$@"; do
	[ $n -gt 0 ] && sleep "$pause"
	out=$(node "$tool" --endpoint "$endpoint" send "$url" --lines "$f") || exit 1
	n=$((n + out))
done
echo $n
};
	my ($out, $err) = ('', '');
	my $h = IPC::Run::start(
		[
			'bash', '-c', $script, 'sender', repo_root() . '/test/sqs-tool.js',
			$emu->endpoint, $url, $pause, @files
		],
		'<', '/dev/null', '>', \$out, '2>', \$err,
		IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
	return bless { h => $h, out => \$out, err => \$err, n => scalar @$events },
	  'SqsIngestWorker::Sender';
}

package SqsIngestWorker::Sender;

sub finish
{
	my ($self) = @_;
	my $ok = $self->{h}->finish;
	my $out = ${ $self->{out} };
	chomp $out;
	Test::More::note('background send failed: ' . ${ $self->{err} }) unless $ok;
	return $ok && $out eq $self->{n};
}

sub running
{
	my ($self) = @_;
	return $self->{h}->pumpable;
}

package SqsIngestWorker;

=pod

=item user_ids_digest(\@events)

MD5 of the events' user ids, sorted and joined with ','.

=item rows_digest($node)

The same of the user ids in the target table (with repetitions): equal to
the events' digest exactly when the table holds each of them once.

=cut

sub user_ids_digest
{
	my ($events) = @_;
	return md5_hex(join ',', sort map { $_->{user_id} } @$events);
}

sub rows_digest
{
	my ($node) = @_;
	return $node->safe_psql('postgres', q{
SELECT coalesce(md5(string_agg(user_id::text, ',' ORDER BY user_id COLLATE "C")), md5(''))
FROM public.user_logins});
}

=pod

=item worker_meets_hostile($node, $hostile, $url, $action, $case, $n, $seed, check => sub { ($offset) })

Script the hostile endpoint to answer the worker's next C<$action> with
C<$case>, send C<$n> events generated from C<$seed> to C<$url>, and test
that the case is served, no process of the cluster is terminated by a
signal, every event is stored, the worker still runs, a receive fault is
reported (in the log or the error count, never read as an empty queue) and
the queue ends empty (what was not deleted comes back and is deleted as a
duplicate). C<check>, if given, runs before the queue is waited for, with
the server log offset of the case. Returns the events.

=cut

sub worker_meets_hostile
{
	my ($node, $hostile, $url, $action, $case, $n, $seed, %opts) = @_;
	my $what = "$action $case";
	$hostile->reset_stats;
	my $offset = -s $node->logfile;
	my $errors = worker_stat($node, 'sqs_errors') || 0;
	$hostile->script({ $action => { case => $case, count => 1 } });
	my $events = generate_events($n, $seed);
	is(send_generated($url, $n, $seed), $n, "$what: $n events sent");

	ok($hostile->wait_served($action, $case), "$what: served");
	my $ids = join ',', map { "'$_->{user_id}'" } @$events;
	# (a crash shuts the cluster down under the poll)
	my $stored = eval {
		$node->poll_query_until('postgres',
			"SELECT count(*) FROM public.user_logins WHERE user_id IN ($ids)", $n);
	};
	no_crash($node, $offset, $what) or return $events;
	ok($stored, "$what: every message stored");
	ok( $node->poll_query_until(
			'postgres', q{SELECT count(*) FROM pg_stat_activity
			  WHERE backend_type = 'sqs_ingest worker'}, '1'),
		"$what: the worker runs");
	# libcurl itself retries a request whose reused connection dies
	# before any answer, so a reset may never reach the worker
	if ($action eq 'ReceiveMessage' && $case ne 'empty' && $case ne 'reset')
	{
		my $deadline = time() + 15;
		my $reported = 0;
		while (!$reported && time() < $deadline)
		{
			$reported = slurp_file($node->logfile, $offset) =~ /ReceiveMessage|SQS/
			  || (worker_stat($node, 'sqs_errors') || 0) > $errors;
			usleep(200_000) unless $reported;
		}
		ok($reported, "$what: the fault is reported, not read as an empty queue");
	}
	is($hostile->stats->{redirectsFollowed}, 0, "$what: no redirect followed")
	  if $case eq 'redirect';
	$opts{check}->($offset) if $opts{check};
	ok(wait_for_depth($url, 0, 0, 0), "$what: queue empty");
	return $events;
}

=pod

=back

=cut

1;
