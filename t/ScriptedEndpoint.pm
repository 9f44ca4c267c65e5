
# Copyright (c) sqs_ingest contributors. PostgreSQL License.

=pod

=head1 NAME

ScriptedEndpoint - an HTTP endpoint that answers each SQS action with what
the test scripted, byte for byte

=head1 SYNOPSIS

  use lib 't';
  use ScriptedEndpoint;

  my $ep = ScriptedEndpoint->start;
  $ep->answer('ReceiveMessage', 200, '');         # an empty 200 body
  $ep->answer('GetQueueAttributes', 200, '[]', 'application/x-amz-json-1.0');
  ... $ep->queue_url ...
  $ep->count('ReceiveMessage');                   # requests seen

=head1 DESCRIPTION

A forked Perl process on 127.0.0.1 serving one request per connection. The
action is read from C<X-Amz-Target> (JSON protocol) or the C<Action>
parameter (Query protocol). Answers live in files of a private directory, so
a test changes them between requests without restarting anything; an action
with no answer gets a 500. Signatures are not checked: this endpoint plays a
faulty server, not SQS.

=cut

package ScriptedEndpoint;

use strict;
use warnings;

use File::Temp qw(tempdir);
use IO::Socket::INET;
use POSIX ();

sub start
{
	my ($class) = @_;
	my $dir = tempdir(CLEANUP => 1);
	my $listen = IO::Socket::INET->new(
		LocalAddr => '127.0.0.1',
		LocalPort => 0,
		Listen    => 64,
		ReuseAddr => 1) or die "cannot listen: $!";
	my $self = bless { dir => $dir, port => $listen->sockport }, $class;
	my $pid = fork;
	die "fork: $!" unless defined $pid;
	if ($pid == 0)
	{
		_serve($listen, $dir);
		POSIX::_exit(0);
	}
	close $listen;
	$self->{pid} = $pid;
	return $self;
}

sub port      { return $_[0]->{port}; }
sub endpoint  { return "http://127.0.0.1:$_[0]->{port}"; }
sub queue_url { return "http://127.0.0.1:$_[0]->{port}/000000000000/scripted"; }

=pod

=over

=item answer($action, $status, $body, $content_type)

Answer every later request for $action with this status and body.

=item answer_once($action, $status, $body, $content_type)

Answer the next request for $action so, then go back to the standing answer.

=item answer_json_protocol($status, $body, $content_type)

Answer every request in the JSON protocol (with C<X-Amz-Target>) so,
whatever its action, as an endpoint that speaks only the Query protocol
would; they are counted as action C<json>.

=item count($action)

Number of requests for $action served so far.

=item last_request($action)

The body of the last request for $action.

=back

=cut

sub _write_answer
{
	my ($self, $file, $status, $body, $type) = @_;
	$type //= 'application/x-amz-json-1.0';
	open my $fh, '>:raw', "$self->{dir}/$file.tmp" or die $!;
	print $fh "$status\n$type\n$body";
	close $fh;
	rename "$self->{dir}/$file.tmp", "$self->{dir}/$file" or die $!;
	return;
}

sub answer
{
	my ($self, $action, @answer) = @_;
	return $self->_write_answer("$action.answer", @answer);
}

sub answer_json_protocol
{
	my ($self, @answer) = @_;
	return $self->_write_answer("json.answer", @answer);
}

sub answer_once
{
	my ($self, $action, @answer) = @_;
	return $self->_write_answer("$action.once", @answer);
}

sub count
{
	my ($self, $action) = @_;
	my $file = "$self->{dir}/$action.count";
	return 0 unless -e $file;
	return -s $file;
}

sub last_request
{
	my ($self, $action) = @_;
	open my $fh, '<:raw', "$self->{dir}/$action.request" or return undef;
	local $/;
	return <$fh>;
}

sub stop
{
	my ($self) = @_;
	return unless $self->{pid};
	kill 'TERM', $self->{pid};
	waitpid $self->{pid}, 0;
	delete $self->{pid};
	return;
}

sub DESTROY { $_[0]->stop; }

# the child: answer connections until killed
sub _serve
{
	my ($listen, $dir) = @_;
	$SIG{TERM} = sub { POSIX::_exit(0); };
	while (my $conn = $listen->accept)
	{
		binmode $conn;
		my $head = '';
		while ($head !~ /\r\n\r\n/)
		{
			my $n = sysread $conn, $head, 4096, length $head;
			last unless $n;
		}
		my ($headers, $body) = split /\r\n\r\n/, $head, 2;
		$body //= '';
		my ($length) = $headers =~ /^content-length:\s*(\d+)/mi;
		$length //= 0;
		while (length $body < $length)
		{
			my $n = sysread $conn, $body, $length - length $body, length $body;
			last unless $n;
		}
		my ($action) = $headers =~ /^x-amz-target:\s*AmazonSQS\.(\w+)/mi;
		$action = 'json' if $action && -e "$dir/json.answer";
		($action) = $body =~ /(?:^|&)Action=(\w+)/ unless $action;
		$action //= 'unknown';

		if (open my $c, '>>', "$dir/$action.count")
		{
			print $c 'x';
			close $c;
		}
		if (open my $r, '>:raw', "$dir/$action.request")
		{
			print $r $body;
			close $r;
		}

		my ($status, $type, $answer) = (500, 'text/plain', "no answer for $action");
		my $file = -e "$dir/$action.once" ? "$dir/$action.once" : "$dir/$action.answer";
		if (open my $fh, '<:raw', $file)
		{
			local $/;
			my $text = <$fh>;
			close $fh;
			unlink $file if $file =~ /\.once$/;
			($status, $type, $answer) = split /\n/, $text, 3;
			$answer //= '';
		}
		print $conn "HTTP/1.1 $status Scripted\r\n"
		  . "Content-Type: $type\r\n"
		  . "Content-Length: "
		  . length($answer) . "\r\n"
		  . "Connection: close\r\n\r\n"
		  . $answer;
		close $conn;
	}
	return;
}

1;
