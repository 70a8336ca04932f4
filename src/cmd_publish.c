/* cmd_publish: to be written */
#include "ledgerq/cli.h"
