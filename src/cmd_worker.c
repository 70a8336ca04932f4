/* cmd_worker: to be written */
#include "ledgerq/cli.h"
