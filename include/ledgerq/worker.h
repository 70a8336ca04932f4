/*
 * The worker: consume payment commands, apply them in batches, publish
 * result events, ack (docs/protocol.md sections 5-7).
 */
#ifndef LEDGERQ_WORKER_H
#define LEDGERQ_WORKER_H

#include "ledgerq/config.h"

/*
 * Run until SIGTERM or SIGINT (installed here), then drain and return.
 * Returns LQ_OK after a clean shutdown, or an error that stopped it for
 * good (a setting that cannot work).
 */
int lq_worker_run(const lq_config *cfg);

#endif
