/* db.h - internals of the database handle (lumadb.h is its public face).
 * For tests that simulate crashes and for replication, which drives the log itself.
 * Threading: as lumadb.h. */
#ifndef LM_DB_H
#define LM_DB_H

#include "lumadb.h"

/* Frees the handle without syncing, checkpointing or touching storage again: what a
 * process that dies leaves behind. The directory lock is released. */
void lm__db_abandon(lm_db *db);

#endif
