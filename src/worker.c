/* worker: to be written */
#include "ledgerq/worker.h"
