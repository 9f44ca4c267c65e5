/*-------------------------------------------------------------------------
 *
 * standby.c
 *	  How far the standbys have flushed this server's WAL, for deletes that
 *	  wait for them (sqs_ingest.delete_after = standby_flush).
 *
 * A batch's deletes wait for its commit to be flushed here.  That is not
 * enough when the server can fail over: an asynchronous standby promoted
 * before it received the commit has neither the rows nor, once SQS has
 * deleted them, the messages.  With delete_after = standby_flush the
 * pipeline also waits for the position returned here:
 *
 * - with synchronous_standby_names set, the position the synchronous
 *   standbys have confirmed flushing, as PostgreSQL chooses them (first N
 *   by priority, or any N) to release its own synchronous commits;
 * - without, the least flush position of the physical standbys streaming
 *   from this server, since any of them may be the one promoted.  Logical
 *   subscribers are not standbys; walsenders that report no flush position
 *   (the WAL stream of pg_basebackup) are not counted either.  With no
 *   standby at all nothing is known to be safe anywhere else: deletes wait
 *   (InvalidXLogRecPtr), and a warning says why, once.
 *
 * Positions are read from shared memory, as pg_stat_replication reads them,
 * rather than through SQL: the pipeline polls them outside any transaction,
 * and the workers' role needs no pg_read_all_stats.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "replication/syncrep.h"
#include "replication/walsender.h"
#include "replication/walsender_private.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "storage/spin.h"

#include "standby.h"

/* has this process said that deletes wait for a standby to connect? */
static bool warned_no_standby = false;

/*
 * Is this walsender's process connected to no database?  A physical
 * standby's is not; a logical subscriber's is.  (PostgreSQL 16 records the
 * kind in WalSnd by the same test; 15 does not record it.)
 */
static bool
is_physical_walsender(pid_t pid)
{
	PGPROC	   *proc = BackendPidGetProc(pid);

	return proc != NULL && proc->databaseId == InvalidOid;
}

/* the least flush position of the physical standbys streaming from here */
static XLogRecPtr
streaming_standbys_flushed_upto(void)
{
	XLogRecPtr	least = InvalidXLogRecPtr;
	bool		found = false;

	for (int i = 0; i < max_wal_senders; i++)
	{
		WalSnd	   *walsnd = &WalSndCtl->walsnds[i];
		pid_t		pid;
		WalSndState state;
		XLogRecPtr	flush;

		SpinLockAcquire(&walsnd->mutex);
		pid = walsnd->pid;
		state = walsnd->state;
		flush = walsnd->flush;
		SpinLockRelease(&walsnd->mutex);

		/* a standby catching up counts: it may be promoted too */
		if (pid == 0 ||
			(state != WALSNDSTATE_CATCHUP && state != WALSNDSTATE_STREAMING &&
			 state != WALSNDSTATE_STOPPING) ||
			XLogRecPtrIsInvalid(flush) || !is_physical_walsender(pid))
			continue;
		if (!found || flush < least)
			least = flush;
		found = true;
	}

	if (!found && !warned_no_standby)
		ereport(WARNING,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("sqs_ingest waits for a standby before deleting stored messages from SQS"),
				 errdetail("sqs_ingest.delete_after is \"standby_flush\" and no standby is streaming from this server; the messages stay in SQS until one has flushed the commit that stored them."),
				 errhint("Start a standby, or set sqs_ingest.delete_after to \"local_flush\".")));
	else if (found && warned_no_standby)
		ereport(LOG,
				(errcode(ERRCODE_SUCCESSFUL_COMPLETION),
				 errmsg("sqs_ingest deletes stored messages from SQS again: a standby is streaming from this server")));
	warned_no_standby = !found;
	return least;
}

/*
 * The WAL position up to which the standbys that a failover could promote
 * have flushed, or InvalidXLogRecPtr if none has (see the top of the file).
 */
XLogRecPtr
standby_flushed_upto(void)
{
	XLogRecPtr	flushed;

	if (SyncRepStandbyNames == NULL || SyncRepStandbyNames[0] == '\0')
		return streaming_standbys_flushed_upto();

	LWLockAcquire(SyncRepLock, LW_SHARED);
	flushed = WalSndCtl->lsn[SYNC_REP_WAIT_FLUSH];
	LWLockRelease(SyncRepLock);
	return flushed;
}
