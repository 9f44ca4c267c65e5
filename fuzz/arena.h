/* arena.h: free everything palloc'd since the last reset (see arena.c) */
#ifndef SQS_INGEST_FUZZ_ARENA_H
#define SQS_INGEST_FUZZ_ARENA_H

extern void arena_reset(void);

#endif
